# Baseline "data-free training" for the 24M student (DKDM yaml/cifar10_32/exp/CIFAR10-24M-Baseline.yaml):
# cifar10_57m_baseline_datafree.py with the 24M network.
_base_ = ['./cifar10_57m_baseline_datafree.py']
model = dict(net={{_base_.adm_24m}})
