# DKDM on CelebA-64: the 57M-CelebA student (C = 96, 2 res blocks, attention 32/16/8 px, dropout 0.1) distilled
# data-free from the 295M DDPM-IP teacher, dynamic pool rho = 0.4 (DKDM yaml/celeba_64/exp/CelebA64-57M-Dynamic*;
# paper Table 2: FID 7.07).
#   tools/dist_train.sh configs/methods/dkdm/celeba64_57m_rho0.4.py 4 [--amp]        (reference: 4 GPUs x 64 = 256)
# Pool: 400 batches of 64 per process = 25,600 entries per GPU; every GPU holds the whole pool of the run
# (4 x 25,600 x 3 x 64 x 64 float32 = 5.0 GB, also in every checkpoint). Preparing it costs ~51M evaluations of
# the 295M teacher: do it once with
#   python tools/dkdm_prepare.py configs/methods/dkdm/celeba64_57m_rho0.4.py --world-size 4 \
#       --out checkpoints/dkdm/CelebA64-Dynamic-0.4.pt
# and pass --cfg-options model.pool_cache=checkpoints/dkdm/CelebA64-Dynamic-0.4.pt.
# Evaluation: 50K samples, 50 respaced ancestral steps, FID / IS / sFID against all 202,599 training images
# resized to 64x64 (DDPM-IP's celeba64_npz.py, see configs/_base_/datasets/celeba64.py).
_base_ = ['../../_base_/models/adm_celeba64_teacher.py', '../../_base_/models/adm_students.py',
          '../../_base_/schedules/dkdm.py', '../../_base_/datasets/generation.py']

batch_size = 64  # per process; the reference: 4 GPUs x 64
model = dict(
    type='DKDM',
    teacher={{_base_.teacher}},
    student={{_base_.adm_57m_celeba}},
    diffusion=dict(schedule='cosine', steps=1000, learn_sigma=True, loss_type='rescaled_mse'),
    rho=0.4,
    variant='dynamic',
    batch_size=batch_size,
    teacher_clip_denoised=True,
    student_clip_denoised=False,
    pool_cache=None,
    prepare_batch_size=3072,
    ema=dict(type='ConstantEMA', momentum=1e-4),
    sample_steps='50',
    sample_clip_denoised=True,
    sample_ema='ema')
train_dataloader = dict(batch_size=batch_size)

inception = dict(type='FIDInceptionV3')  # local weights: weights=PATH or $KDM_INCEPTION (docs/metrics.md)
reference = dict(type='NpzDataset', path='data/celeba64/celeba64_train.npz')
val_dataloader = None
test_cfg = dict(type='TestLoop')
test_dataloader = dict(batch_size=250, dataset=dict(seeds='0-49999'))
test_evaluator = [
    dict(type='FID', detector=inception, real=reference),
    dict(type='InceptionScore', detector=inception, splits=10),
    dict(type='SFID', detector=inception, real=reference),
]
