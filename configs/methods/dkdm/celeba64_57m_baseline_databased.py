# Baseline "data-based training" on CelebA-64 (100 % real, CelebA64-57M-Baseline-1.yaml).
_base_ = ['./celeba64_57m_baseline_datafree.py']
train_dataloader = dict(dataset=dict(_delete_=True, type='NpzDataset', path='data/celeba64/celeba64_train.npz'))
