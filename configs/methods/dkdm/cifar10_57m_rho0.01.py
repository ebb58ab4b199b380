# DKDM ablation (paper Fig. 4b): pool size rho = 0.01, i.e. 10 batches = 1,280 entries at batch 128.
# The README lists these 57M configs but the yaml files are not in the reference repository (quirk 5): as there,
# only `teacher.BATCH` (rho) differs from the main run. Prepare with tools/dkdm_prepare.py for this rho.
_base_ = ['./cifar10_57m_rho0.4.py']
model = dict(rho=0.01)
