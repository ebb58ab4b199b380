# Quickstart: the ADM-style discrete teacher that DKDM distils (cosine schedule, T = 1000, learned-range variance,
# hybrid loss) on the 16x16 digits: a 345K-parameter ADMUNet (16 channels, 8 GroupNorm groups) sized for the CPU
# budget of `make demo`; 50-step ancestral sampling.
_base_ = ['../methods/ddpm/toy_digits.py', '../_base_/evaluation/digits_classifier.py']

# EMA: score_sde's warm-up EMA (decay (1 + n) / (10 + n), capped at 0.999). A constant-momentum EMA keeps a share
# of the random initialisation in so short a run (0.998^800 = 20 %: FD 66 instead of 18 for the raw weights).
model = dict(net=dict(model_channels=16, num_head_channels=-1, num_heads=1, norm_groups=8),
             ema=dict(_delete_=True, type='WarmupEMA', decay=0.999))
train_cfg = dict(max_iters=800)
default_hooks = dict(checkpoint=dict(interval=800, max_keep_ckpts=1), logger=dict(interval=100))
custom_hooks = [dict(type='SampleGridHook', interval=800, num_samples=64, nrow=8)]
