# The data-free baseline on the digits (toy benchmark): the toy_digits_dkdm.py student trained from scratch with the
# hybrid loss on 1,438 teacher samples (the size of the real training split) drawn with the 100-step ancestral
# sampler, for the same number of iterations, batch, learning rate and EMA:
#   python tools/sample.py configs/methods/ddpm/toy_digits.py work_dirs/ddpm_toy_digits/iter_3000.pth \
#       --seeds 0-1437 --no-png --outdir work_dirs/dkdm_toy/teacher_samples --cfg-options model.sample_steps=100
#   python tools/train.py configs/methods/dkdm/toy_digits_baseline_datafree.py
_base_ = ['./toy_digits_dkdm.py']

synthetic_npz = 'work_dirs/dkdm_toy/teacher_samples/samples_1438x16x16x1.npz'
model = dict(
    _delete_=True,
    type='DDPMTrainer',
    net={{_base_.model.student}},
    diffusion=dict(schedule='cosine', steps=1000, learn_sigma=True),
    hflip=0.0,
    ema=dict(type='ConstantEMA', momentum=5e-3),
    sample_steps='50',
    img_shape=(1, 16, 16))
train_dataloader = dict(
    sampler=dict(type='ResumableInfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, type='NpzDataset', path=synthetic_npz))
optim_wrapper = dict(
    _delete_=True,
    constructor='MultiNetOptimWrapperConstructor',
    net=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0)))
