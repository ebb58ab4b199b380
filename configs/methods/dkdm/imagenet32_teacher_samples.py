# The teacher as a sampler on ImageNet-32: the synthetic set of the baselines (spec 4.1: 1,281,167 images with the
# 100-step ancestral sampler) and, with model.sample_steps=50, the teacher's Table 2 row (paper FID 4.67):
#   python tools/convert.py checkpoints/dkdm/DDPM_IP_imageNet32.pt checkpoints/dkdm/adm_imagenet32_teacher.pth \
#       --teacher-config configs/_base_/models/adm_imagenet32_teacher.py
#   python tools/sample.py configs/methods/dkdm/imagenet32_teacher_samples.py \
#       checkpoints/dkdm/adm_imagenet32_teacher.pth --seeds 0-1281166 --batch-size 1000 --no-png \
#       --outdir data/dkdm/imagenet32_teacher_100t
#   -> data/dkdm/imagenet32_teacher_100t/samples_1281167x32x32x3.npz (read by imagenet32_14m_baseline_datafree.py)
_base_ = ['./imagenet32_14m_rho0.4.py']
model = dict(
    _delete_=True,
    type='DDPMTrainer',
    net={{_base_.teacher.network}},
    diffusion={{_base_.teacher.diffusion}},
    ema=None,
    sample_ema=None,
    sample_steps='100',
    clip_denoised=True,
    img_shape=(3, 32, 32))
