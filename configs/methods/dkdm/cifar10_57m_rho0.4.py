# DKDM on CIFAR-10: 57M student distilled data-free from the 57M ADM baseline teacher with the dynamic iterative
# pool, rho = 0.4 (DKDM yaml/cifar10_32/exp/CIFAR10-57M-Dynamic*.yaml; shared/spec/dkdm_adm.md 3).
#   tools/train.py configs/methods/dkdm/cifar10_57m_rho0.4.py [--amp]                  (reference: 1 GPU, batch 128)
#   tools/dist_train.sh configs/methods/dkdm/cifar10_57m_rho0.4.py 4 \
#       --cfg-options train_dataloader.batch_size=32 model.batch_size=32                (same global batch on 4 GPUs)
# Pool: 400 batches = 51,200 entries (0.63 GB, kept on the GPU and in every checkpoint). It is prepared by the
# teacher at the first iteration (~25.6M teacher evaluations); do it once with
#   python tools/dkdm_prepare.py configs/methods/dkdm/cifar10_57m_rho0.4.py \
#       --out checkpoints/dkdm/CIFAR10-Dynamic-0.4.pt
# and train with --cfg-options model.pool_cache=checkpoints/dkdm/CIFAR10-Dynamic-0.4.pt (one cache serves every
# student of the same rho and global batch).
# Evaluation (reference protocol): 50,000 samples of the EMA student with 50 respaced ancestral steps, x0 clipped;
# IS / FID / sFID against the 50,000 training images: tools/test.py CONFIG CHECKPOINT. The teacher's row:
# cifar10_teacher_samples.py with model.sample_steps=50.
_base_ = ['../../_base_/models/adm_cifar10_teacher.py', '../../_base_/models/adm_students.py',
          '../../_base_/schedules/dkdm.py', '../../_base_/evaluation/cifar10_adm_eval.py']

batch_size = 128  # per process; the reference: 128 on one GPU
model = dict(
    type='DKDM',
    teacher={{_base_.teacher}},
    student={{_base_.adm_57m}},
    rho=0.4,
    variant='dynamic',
    batch_size=batch_size,
    teacher_clip_denoised=True,
    student_clip_denoised=False,
    pool_cache=None,
    prepare_batch_size=3072,
    ema=dict(type='ConstantEMA', momentum=1e-4),  # EMA 0.9999
    sample_steps='50',
    sample_clip_denoised=True,
    sample_ema='ema')
train_dataloader = dict(batch_size=batch_size)

# Evaluation: configs/_base_/evaluation/cifar10_adm_eval.py (ADM evaluator protocol: IS / FID / sFID, plus
# precision/recall, of 50,000 samples against the full training set; its reference file is made once with
# tools/fid_ref.py). No validation during training, as in the reference.
val_dataloader = None
