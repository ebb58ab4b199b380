# ADM-style discrete diffusion teacher on the 16x16 digits (quickstart, DKDM's toy teacher): a small ADMUNet with
# learned-range variance, cosine schedule, T = 1000, hybrid loss; samples with 50 respaced ancestral steps.
_base_ = ['../../_base_/datasets/digits.py', '../../_base_/schedules/iter_based.py',
          '../../_base_/default_runtime.py']

model = dict(
    type='DDPMTrainer',
    net=dict(type='ADMUNet', image_size=16, in_channels=1, model_channels=32, out_channels=2, num_res_blocks=1,
             attention_resolutions=(2, ), dropout=0.0, channel_mult=(1, 2, 2), num_heads=1, num_head_channels=32,
             use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=True),
    diffusion=dict(schedule='cosine', steps=1000, learn_sigma=True),
    hflip=0.0,
    ema=dict(type='ConstantEMA', momentum=2e-3),
    sample_steps='50',
    img_shape=(1, 16, 16))

optim_wrapper = dict(constructor='MultiNetOptimWrapperConstructor',
                     net=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0)))
train_cfg = dict(max_iters=3000, val_interval=10**9)
default_hooks = dict(checkpoint=dict(interval=1000, max_keep_ckpts=1), logger=dict(interval=50))
custom_hooks = [dict(type='SampleGridHook', interval=1000, num_samples=64, nrow=8)]
