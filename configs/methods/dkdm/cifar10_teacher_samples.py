# The teacher as a sampler: the synthetic CIFAR-10 of the data-free / data-limited baselines (spec 4.1: 50,000
# images, full 1000-step ancestral sampling, learned variance, x0 clipped) and the teacher's Table 2 row (50 steps).
# Convert the released file once, then sample (one image per seed, uint8 NHWC 'arr_0' npz):
#   python tools/convert.py checkpoints/dkdm/32x32_diffusion_cifar10.pt checkpoints/dkdm/adm_cifar10_teacher.pth \
#       --teacher-config configs/_base_/models/adm_cifar10_teacher.py
#   python tools/sample.py configs/methods/dkdm/cifar10_teacher_samples.py checkpoints/dkdm/adm_cifar10_teacher.pth \
#       --seeds 0-49999 --batch-size 500 --no-png --outdir data/dkdm/cifar10_teacher_1000t
#   -> data/dkdm/cifar10_teacher_1000t/samples_50000x32x32x3.npz (cifar10_57m_baseline_datafree.py reads it)
#   python tools/test.py configs/methods/dkdm/cifar10_teacher_samples.py checkpoints/dkdm/adm_cifar10_teacher.pth \
#       --cfg-options model.sample_steps=50                                          (teacher FID, paper: 4.45)
# The converted checkpoint holds the network as `net.*`, which is exactly this model without EMA.
_base_ = ['./cifar10_57m_rho0.4.py']
model = dict(
    _delete_=True,
    type='DDPMTrainer',
    net={{_base_.teacher.network}},
    diffusion={{_base_.teacher.diffusion}},
    ema=None,
    sample_ema=None,
    sample_steps='1000',
    clip_denoised=True,
    img_shape=(3, 32, 32))
