# Baseline "data-based training" on ImageNet-32 (100 % real, ImageNet32-14M-Baseline-1.yaml).
_base_ = ['./imagenet32_14m_baseline_datafree.py']
train_dataloader = dict(dataset=dict(_delete_=True, type='NpzDataset',
                                     path='data/imagenet32/ImageNet32_train_all.npz'))
