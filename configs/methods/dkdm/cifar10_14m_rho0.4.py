# DKDM on CIFAR-10, 14M student (channels 128 -> 64), dynamic pool rho = 0.4: the Table 2 student (paper FID 9.56)
# and the smallest of the paper's architecture sweep
# (DKDM yaml/arch/14M-CNN.yaml). Everything else as cifar10_57m_rho0.4.py.
_base_ = ['./cifar10_57m_rho0.4.py']
model = dict(student={{_base_.adm_14m}})
