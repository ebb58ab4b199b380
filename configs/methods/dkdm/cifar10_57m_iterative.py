# DKDM ablation (paper Fig. 4a): iterative distillation. 128 fresh noises walked by the teacher together from
# t = 999 to 0, one step per iteration, the student trained on every state (every batch has a single t), then
# restarted. No pool preparation. Reference name: iter_choice 'iterative_distillation'.
_base_ = ['./cifar10_57m_rho0.4.py']
model = dict(variant='iterative')
