# Quickstart teacher, unconditional variant of teacher_edm_cond.py (scored with FD only).
_base_ = ['../methods/edm/toy_digits.py', '../_base_/evaluation/digits_classifier.py']

model = dict(net=dict(model=dict(model_channels=16)),
             ema=dict(type='HalfLifeEMA', batch_size=64, halflife_kimg=10, rampup_ratio=0.05))
train_cfg = dict(max_iters=1200)
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100)]
default_hooks = dict(checkpoint=dict(interval=1200, max_keep_ckpts=1), logger=dict(interval=100))
custom_hooks = [dict(type='SampleGridHook', interval=600, num_samples=64, nrow=8)]
