# The teacher as a sampler on CelebA-64: the synthetic set of the baselines (spec 4.1: 202,599 images with the
# 100-step ancestral sampler) and, with model.sample_steps=50, the teacher's Table 2 row (paper FID 4.43):
#   python tools/convert.py checkpoints/dkdm/DDPM_IP_celeba64.pt checkpoints/dkdm/adm_celeba64_teacher.pth \
#       --teacher-config configs/_base_/models/adm_celeba64_teacher.py
#   python tools/sample.py configs/methods/dkdm/celeba64_teacher_samples.py checkpoints/dkdm/adm_celeba64_teacher.pth \
#       --seeds 0-202598 --batch-size 300 --no-png --outdir data/dkdm/celeba64_teacher_100t
#   -> data/dkdm/celeba64_teacher_100t/samples_202599x64x64x3.npz (read by celeba64_57m_baseline_datafree.py)
_base_ = ['./celeba64_57m_rho0.4.py']
model = dict(
    _delete_=True,
    type='DDPMTrainer',
    net={{_base_.teacher.network}},
    diffusion={{_base_.teacher.diffusion}},
    ema=None,
    sample_ema=None,
    sample_steps='100',
    clip_denoised=True,
    img_shape=(3, 64, 64))
