# EDM teacher on the 16x16 handwritten digits (quickstart / CI): a ~100k-parameter ToyUNet, EDM loss and Heun sampler.
_base_ = ['../../_base_/datasets/digits.py', '../../_base_/schedules/iter_based.py',
          '../../_base_/default_runtime.py']

label_dim = 0
model = dict(
    type='EDMTrainer',
    net=dict(type='EDMPrecond', img_resolution=16, img_channels=1, label_dim=label_dim, sigma_data=0.5,
             model=dict(type='ToyUNet', img_resolution=16, in_channels=1, out_channels=1, label_dim=label_dim,
                        model_channels=32, channel_mult=(1, 2, 2), num_blocks=1)),
    loss=dict(type='EDMLoss', P_mean=-1.2, P_std=1.2, sigma_data=0.5),
    ema=dict(type='HalfLifeEMA', batch_size=64, halflife_kimg=20, rampup_ratio=0.05),
    hflip=0.0,  # digits are not mirror-symmetric
    solver='heun', num_steps=18, sigma_min=0.002, sigma_max=80.0, rho=7.0)

optim_wrapper = dict(constructor='MultiNetOptimWrapperConstructor',
                     net=dict(optimizer=dict(type='Adam', lr=2e-3, betas=(0.9, 0.999), eps=1e-8)))
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200)]
train_cfg = dict(max_iters=3000, val_interval=10**9)
default_hooks = dict(checkpoint=dict(interval=1000, max_keep_ckpts=1), logger=dict(interval=50))
custom_hooks = [dict(type='SampleGridHook', interval=1000, num_samples=64, nrow=8)]
