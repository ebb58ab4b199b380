# Baseline "data-limited training" on CelebA-64 with 5 % real images (CelebA64-57M-Baseline-0.05.yaml): 202,599
# images, round(0.05 * 202,599) real, the rest teacher samples, mixed as DKDM's datasets/mix.py (NumPy seed 0).
_base_ = ['./celeba64_57m_baseline_datafree.py']
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MixedDataset',
        real=dict(type='NpzDataset', path='data/celeba64/celeba64_train.npz'),
        synthetic=dict(type='NpzDataset', path={{_base_.synthetic_npz}}),
        real_fraction=0.05,
        seed=0))
