# ADM (Improved DDPM) teacher training on CIFAR-10 as DDPM-IP's baseline: 57M ADMUNet, cosine schedule, T = 1000,
# learned-range variance, hybrid loss (spec dkdm_adm.md 1.4, 2.3): the DKDM CIFAR-10 teacher architecture.
# Reference: batch 128, lr 1e-4, EMA 0.9999, dropout 0.3, random flips; ~460K iterations (DDPM-IP issue #26).
_base_ = ['../../_base_/datasets/cifar10.py', '../../_base_/schedules/iter_based.py',
          '../../_base_/default_runtime.py']

model = dict(
    type='DDPMTrainer',
    net=dict(type='ADMUNet', image_size=32, in_channels=3, model_channels=128, out_channels=6, num_res_blocks=3,
             attention_resolutions=(2, 4), dropout=0.3, channel_mult=(1, 2, 2, 2), num_heads=4, num_head_channels=32,
             use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=True),
    diffusion=dict(schedule='cosine', steps=1000, learn_sigma=True),
    input_perturbation=0.0,
    hflip=0.5,
    ema=dict(type='ConstantEMA', momentum=1e-4),
    sample_steps='50',  # DKDM evaluates every model with 50 respaced ancestral steps
    img_shape=(3, 32, 32))

train_dataloader = dict(batch_size=128)
optim_wrapper = dict(constructor='MultiNetOptimWrapperConstructor',
                     net=dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.0)))
train_cfg = dict(max_iters=460000, val_interval=10**9)
default_hooks = dict(checkpoint=dict(interval=10000))
custom_hooks = [dict(type='SampleGridHook', interval=10000, num_samples=64, nrow=8)]
