# Baseline "data-free training" on CelebA-64 (DKDM Table 2, CelebA64-57M-Baseline-0.yaml): the 57M-CelebA student
# trained with the hybrid loss on 202,599 teacher samples made with the 100-step ancestral sampler
# (cifar10_teacher_samples.py's recipe with celeba64_teacher_samples.py), saved as
# data/dkdm/celeba64_teacher_100t/samples_202599x64x64x3.npz. Same optimiser, EMA, batch and evaluation as the DKDM run.
_base_ = ['./celeba64_57m_rho0.4.py']

synthetic_npz = 'data/dkdm/celeba64_teacher_100t/samples_202599x64x64x3.npz'
model = dict(
    _delete_=True,
    type='DDPMTrainer',
    net={{_base_.adm_57m_celeba}},
    diffusion=dict(schedule='cosine', steps=1000, learn_sigma=True, loss_type='rescaled_mse'),
    input_perturbation=0.0,
    hflip=0.5,
    ema=dict(type='ConstantEMA', momentum=1e-4),
    sample_steps='50',
    clip_denoised=True,
    img_shape=(3, 64, 64))
train_dataloader = dict(
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, type='NpzDataset', path=synthetic_npz))
optim_wrapper = dict(
    _delete_=True,
    constructor='MultiNetOptimWrapperConstructor',
    net=dict(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)))
