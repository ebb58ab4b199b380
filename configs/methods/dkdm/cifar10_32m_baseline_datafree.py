# Baseline "data-free training" for the 32M student (DKDM yaml/cifar10_32/exp/CIFAR10-32M-Baseline.yaml):
# cifar10_57m_baseline_datafree.py with the 32M network.
_base_ = ['./cifar10_57m_baseline_datafree.py']
model = dict(net={{_base_.adm_32m}})
