# Test-only config: a tiny denoiser on fixed random 8x8 images, registered through custom_imports.
_base_ = ['../../../configs/_base_/default_runtime.py', '../../../configs/_base_/schedules/iter_based.py']
custom_imports = dict(imports=['tests.engine.toy_model'], allow_failed_imports=False)

model = dict(type='EngineToyModel', channels=8, noise_std=0.1, ema=dict(type='ConstantEMA', momentum=0.1))
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='EngineToyDataset', size=64),
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True, seed=7),
    collate_fn=dict(type='default_collate'))
optim_wrapper = dict(constructor='MultiNetOptimWrapperConstructor',
                     net=dict(optimizer=dict(type='Adam', lr=1e-2)))
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4)]
train_cfg = dict(max_iters=6, val_interval=1000)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3))
custom_hooks = [dict(type='SampleGridHook', interval=3, num_samples=4, nrow=2)]
