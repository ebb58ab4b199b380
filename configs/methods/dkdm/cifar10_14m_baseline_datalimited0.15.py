# Baseline "data-limited training" with 15 % real CIFAR-10 images (14M student);
# otherwise as cifar10_14m_baseline_datalimited0.05.py.
_base_ = ['./cifar10_14m_baseline_datalimited0.05.py']
train_dataloader = dict(dataset=dict(real_fraction=0.15))
