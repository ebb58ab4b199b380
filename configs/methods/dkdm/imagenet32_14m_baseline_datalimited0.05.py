# Baseline "data-limited training" on ImageNet-32 with 5 % real images (ImageNet32-14M-Baseline-0.05.yaml):
# 1,281,167 images, round(0.05 * 1,281,167) real, the rest teacher samples, mixed as DKDM's datasets/mix.py.
_base_ = ['./imagenet32_14m_baseline_datafree.py']
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MixedDataset',
        real=dict(type='NpzDataset', path='data/imagenet32/ImageNet32_train_all.npz'),
        synthetic=dict(type='NpzDataset', path={{_base_.synthetic_npz}}),
        real_fraction=0.05,
        seed=0))
