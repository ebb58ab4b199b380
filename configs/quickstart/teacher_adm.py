# Quickstart: the ADM-style discrete teacher (cosine schedule, T = 1000, learned-range variance) that DKDM distils,
# trained on the 16x16 digits. Sized for the CPU budget of `make demo`.
_base_ = ['../methods/ddpm/toy_digits.py', '../_base_/evaluation/digits_classifier.py']

train_cfg = dict(max_iters=1200)
default_hooks = dict(checkpoint=dict(interval=1200, max_keep_ckpts=1), logger=dict(interval=100))
custom_hooks = [dict(type='SampleGridHook', interval=600, num_samples=64, nrow=8)]
