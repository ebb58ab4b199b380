# Baseline "data-limited training" on CelebA-64 with real_fraction 0.1; otherwise as
# celeba64_57m_baseline_datalimited0.05.py.
_base_ = ['./celeba64_57m_baseline_datalimited0.05.py']
train_dataloader = dict(dataset=dict(real_fraction=0.1))
