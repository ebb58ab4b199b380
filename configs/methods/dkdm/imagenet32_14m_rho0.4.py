# DKDM on ImageNet-32 (unconditional): the 14M student distilled data-free from the 57M DDPM-IP teacher, dynamic
# pool rho = 0.4 (DKDM yaml/imagenet_32/exp/ImageNet32-14M-Dynamic*; paper Table 2: FID 11.33).
#   tools/train.py configs/methods/dkdm/imagenet32_14m_rho0.4.py [--amp]              (README: 1 process x 512)
#   tools/dist_train.sh ... 4 --cfg-options train_dataloader.batch_size=128 model.batch_size=128  (4 x 128)
# Pool: 400 batches = 204,800 entries in all (2.5 GB on every GPU and in every checkpoint); prepare it once with
#   python tools/dkdm_prepare.py configs/methods/dkdm/imagenet32_14m_rho0.4.py \
#       --out checkpoints/dkdm/ImageNet32-Dynamic-0.4.pt
# Evaluation: 50K samples, 50 respaced ancestral steps, FID / IS / sFID against all 1,281,167 training images.
_base_ = ['../../_base_/models/adm_imagenet32_teacher.py', '../../_base_/models/adm_students.py',
          '../../_base_/schedules/dkdm.py', '../../_base_/datasets/generation.py']

batch_size = 512  # per process; the README runs one process with the global batch 512
model = dict(
    type='DKDM',
    teacher={{_base_.teacher}},
    student={{_base_.adm_14m}},
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
reference = dict(type='NpzDataset', path='data/imagenet32/ImageNet32_train_all.npz')
val_dataloader = None
test_cfg = dict(type='TestLoop')
test_dataloader = dict(batch_size=250, dataset=dict(seeds='0-49999'))
test_evaluator = [
    dict(type='FID', detector=inception, real=reference),
    dict(type='InceptionScore', detector=inception, splits=10),
    dict(type='SFID', detector=inception, real=reference),
]
