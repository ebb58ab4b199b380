# Baseline "data-free training" (DKDM paper Table 2 / spec 4.1) for the 57M student: train it from scratch with the
# standard hybrid loss (DDPMTrainer, uniform t, no input perturbation, random flips) on a synthetic CIFAR-10 made
# by the teacher: 50,000 images with the 1000-step ancestral sampler, e.g.
#   python tools/sample.py configs/methods/dkdm/cifar10_teacher_samples.py ...  -> one uint8 NHWC npz ('arr_0')
# saved as data/dkdm/cifar10_teacher_1000t/samples_50000x32x32x3.npz. Same optimiser, EMA, batch, schedule and
# evaluation as the DKDM run (cifar10_57m_rho0.4.py).
_base_ = ['./cifar10_57m_rho0.4.py']

synthetic_npz = 'data/dkdm/cifar10_teacher_1000t/samples_50000x32x32x3.npz'
model = dict(
    _delete_=True,
    type='DDPMTrainer',
    net={{_base_.adm_57m}},
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
