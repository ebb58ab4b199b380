# DKDM on CIFAR-10, 32M student (channels 128 -> 96), dynamic pool rho = 0.4: the paper's architecture sweep
# (DKDM yaml/arch/32M-CNN.yaml). Everything else as cifar10_57m_rho0.4.py.
_base_ = ['./cifar10_57m_rho0.4.py']
model = dict(student={{_base_.adm_32m}})
