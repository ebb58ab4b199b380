# DKDM ablation (paper Fig. 4a): shuffled iterative distillation. A pool of exactly one batch (128 entries per
# process) with uniform timesteps; every iteration advances all of them by one teacher step, each restarting from
# noise on its own. Prepared like the dynamic pool, or the first 128 x world-size rows of a dynamic cache (as the
# reference, which spells it iter_choice 'shffled_iterative_distillation'; kdm accepts both spellings).
_base_ = ['./cifar10_57m_rho0.4.py']
model = dict(variant='shuffled')
