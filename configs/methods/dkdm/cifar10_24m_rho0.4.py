# DKDM on CIFAR-10, 24M student (channels 128 -> 96 and res blocks 3 -> 2), dynamic pool rho = 0.4: the paper's
# architecture sweep
# (DKDM yaml/arch/24M-CNN.yaml). Everything else as cifar10_57m_rho0.4.py.
_base_ = ['./cifar10_57m_rho0.4.py']
model = dict(student={{_base_.adm_24m}})
