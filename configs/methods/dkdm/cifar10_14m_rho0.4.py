# DKDM on CIFAR-10, 14M student (channels 128 -> 64; the Table 2 student (FID 9.56)), dynamic pool rho = 0.4: the paper's architecture sweep
# (DKDM yaml/arch/14M-CNN.yaml). Everything else as cifar10_57m_rho0.4.py.
_base_ = ['./cifar10_57m_rho0.4.py']
model = dict(student={{_base_.adm_14m}})
