# EDM teacher training, CIFAR-10 unconditional, DDPM++ / EDM preconditioning (Karras et al. 2022, Table 2: FID 1.97
# with augmentation). Reference: 8 GPUs x 64 = batch 512, Adam lr 1e-3 (10 Mimg warm-up), EMA half-life 500 kimg,
# 200 Mimg = 390,625 iterations. Launch: tools/dist_train.sh configs/methods/edm/cifar10_uncond_ddpmpp.py 8
_base_ = ['../../_base_/datasets/cifar10.py', '../../_base_/models/edm_ddpmpp_cifar10.py',
          '../../_base_/schedules/iter_based.py', '../../_base_/default_runtime.py']

model = dict(
    type='EDMTrainer',
    net={{_base_.edm_ddpmpp_cifar10}},
    loss=dict(type='EDMLoss', P_mean=-1.2, P_std=1.2, sigma_data=0.5),
    ema=dict(type='HalfLifeEMA', batch_size=512, halflife_kimg=500, rampup_ratio=0.05),  # batch = global batch
    hflip=0.5,
    solver='heun', num_steps=18, sigma_min=0.002, sigma_max=80.0, rho=7.0)  # 35 NFE

train_dataloader = dict(batch_size=64)  # per GPU; 8 GPUs give EDM's 512
optim_wrapper = dict(constructor='MultiNetOptimWrapperConstructor',
                     net=dict(optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999), eps=1e-8)))
# lr ramp-up over 10 Mimg (19,531 iterations at batch 512)
param_scheduler = [dict(type='LinearLR', start_factor=1 / 19531, by_epoch=False, begin=0, end=19531)]
train_cfg = dict(max_iters=390625, val_interval=10**9)
default_hooks = dict(checkpoint=dict(interval=10000), logger=dict(interval=100))
custom_hooks = [dict(type='SampleGridHook', interval=10000, num_samples=64, nrow=8)]
