# 1-Rectified Flow on CIFAR-10 (RectifiedFlow cifar10_rf_gaussian_ddpmpp.py; spec cud_slimflow_rf.md 4.1, 5.1-5.2):
# batch 128, Adam 2e-4 with 5k warm-up, grad clip 1, EMA 0.999999 (score_sde warm-up), RK45 sampling (rtol=atol=1e-5).
_base_ = ['../../_base_/datasets/cifar10.py', '../../_base_/models/rf_ddpmpp_cifar10.py',
          '../../_base_/schedules/iter_based.py', '../../_base_/default_runtime.py']

model = dict(
    type='RectifiedFlowTrainer',
    net={{_base_.rf_ddpmpp_cifar10}},
    convention='rf', eps=1e-3, time_scale=999.0, noise_scale=1.0, hflip=0.5,
    ema=dict(type='WarmupEMA', decay=0.999999),
    solver='rk45', solver_kwargs=dict(rtol=1e-5, atol=1e-5),
    img_shape=(3, 32, 32))

train_dataloader = dict(batch_size=128)
optim_wrapper = dict(constructor='MultiNetOptimWrapperConstructor',
                     net=dict(optimizer=dict(type='Adam', lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
                              clip_grad=dict(max_norm=1.0)))
param_scheduler = [dict(type='LinearLR', start_factor=1 / 5000, by_epoch=False, begin=0, end=5000)]
train_cfg = dict(max_iters=1300001, val_interval=10**9)
default_hooks = dict(checkpoint=dict(interval=20000))
custom_hooks = [dict(type='SampleGridHook', interval=20000, num_samples=64, nrow=8)]
