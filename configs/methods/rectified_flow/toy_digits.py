# 1-rectified flow on the 16x16 digits (quickstart / CI); Euler sampling with 50 steps.
_base_ = ['../../_base_/datasets/digits.py', '../../_base_/schedules/iter_based.py',
          '../../_base_/default_runtime.py']

model = dict(
    type='RectifiedFlowTrainer',
    net=dict(type='ToyUNet', img_resolution=16, in_channels=1, out_channels=1, model_channels=32,
             channel_mult=(1, 2, 2), num_blocks=1),
    convention='rf', eps=1e-3, time_scale=999.0, hflip=0.0,
    ema=dict(type='WarmupEMA', decay=0.999),
    solver='flow_euler', num_steps=50,
    img_shape=(1, 16, 16))

optim_wrapper = dict(constructor='MultiNetOptimWrapperConstructor',
                     net=dict(optimizer=dict(type='Adam', lr=2e-3), clip_grad=dict(max_norm=1.0)))
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200)]
train_cfg = dict(max_iters=3000, val_interval=10**9)
default_hooks = dict(checkpoint=dict(interval=1000, max_keep_ckpts=1), logger=dict(interval=50))
custom_hooks = [dict(type='SampleGridHook', interval=1000, num_samples=64, nrow=8)]
