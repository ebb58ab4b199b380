# Baseline "data-limited training" on ImageNet-32 with real_fraction 0.15; otherwise as
# imagenet32_14m_baseline_datalimited0.05.py.
_base_ = ['./imagenet32_14m_baseline_datalimited0.05.py']
train_dataloader = dict(dataset=dict(real_fraction=0.15))
