# DKDM's CIFAR-10 teacher (shared/spec/dkdm_adm.md 2.3): the ADM *baseline* of DDPM-IP, 57M-CNN, cosine schedule,
# T = 1000, learned-range variance, fp16 trunk. Get `ADM_cifar10_baseline.pt` from the links in the README of
# https://github.com/forever208/DDPM-IP and save it as checkpoints/dkdm/32x32_diffusion_cifar10.pt (DKDM's name).
# FID 4.45 with 50 respaced ancestral steps (DKDM Table 2).
teacher = dict(
    type='adm',
    path='checkpoints/dkdm/32x32_diffusion_cifar10.pt',
    network=dict(type='ADMUNet', image_size=32, in_channels=3, model_channels=128, out_channels=6, num_res_blocks=3,
                 attention_resolutions=(2, 4), dropout=0.3, channel_mult=(1, 2, 2, 2), num_heads=4,
                 num_head_channels=32, num_heads_upsample=-1, use_scale_shift_norm=True, resblock_updown=True,
                 use_new_attention_order=True, use_fp16=True),
    diffusion=dict(schedule='cosine', steps=1000, learn_sigma=True))
