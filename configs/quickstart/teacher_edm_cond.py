# Quickstart teacher: EDM formulation, class-conditional, on the 16x16 digits (tools/quickstart.py, make demo).
# A ~140k-parameter ToyUNet, EDM loss, half-life EMA, 35-NFE Heun sampling; sized to train in about 3 minutes on one
# CPU core. Scored with the digits classifier (FD in its feature space, class accuracy of conditional samples).
_base_ = ['../methods/edm/toy_digits_cond.py', '../_base_/evaluation/digits_classifier_cond.py']

model = dict(net=dict(model=dict(model_channels=16)),
             ema=dict(type='HalfLifeEMA', batch_size=64, halflife_kimg=10, rampup_ratio=0.05))
train_cfg = dict(max_iters=1600)
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100)]
default_hooks = dict(checkpoint=dict(interval=1600, max_keep_ckpts=1), logger=dict(interval=100))
custom_hooks = [dict(type='SampleGridHook', interval=800, num_samples=100, nrow=10)]
