# Baseline "data-free training" on ImageNet-32 (DKDM Table 2, ImageNet32-14M-Baseline-0.yaml): the 14M student
# trained with the hybrid loss on 1,281,167 teacher samples made with the 100-step ancestral sampler
# (imagenet32_teacher_samples.py), saved as data/dkdm/imagenet32_teacher_100t/samples_1281167x32x32x3.npz.
_base_ = ['./imagenet32_14m_rho0.4.py']

synthetic_npz = 'data/dkdm/imagenet32_teacher_100t/samples_1281167x32x32x3.npz'
model = dict(
    _delete_=True,
    type='DDPMTrainer',
    net={{_base_.adm_14m}},
    diffusion=dict(schedule='cosine', steps=1000, learn_sigma=True),
    input_perturbation=0.0,
    hflip=0.5,
    ema=dict(type='ConstantEMA', momentum=1e-4),
    sample_steps='50',
    clip_denoised=True,
    img_shape=(3, 32, 32))
train_dataloader = dict(
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, type='NpzDataset', path=synthetic_npz))
optim_wrapper = dict(
    _delete_=True,
    constructor='MultiNetOptimWrapperConstructor',
    net=dict(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)))
