# Baseline "data-free training" for the 14M student (DKDM yaml/cifar10_32/exp/CIFAR10-14M-Baseline.yaml):
# cifar10_57m_baseline_datafree.py with the 14M network.
_base_ = ['./cifar10_57m_baseline_datafree.py']
model = dict(net={{_base_.adm_14m}})
