# Baseline "data-free training" for the 44M student (DKDM yaml/cifar10_32/exp/CIFAR10-44M-Baseline.yaml):
# cifar10_57m_baseline_datafree.py with the 44M network.
_base_ = ['./cifar10_57m_baseline_datafree.py']
model = dict(net={{_base_.adm_44m}})
