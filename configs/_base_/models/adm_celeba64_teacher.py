# DKDM's CelebA-64 teacher (shared/spec/dkdm_adm.md 2.3): DDPM-IP (input perturbation 0.1), 295M-CNN (C = 192,
# 3 res blocks, 64 channels per head, attention at 32/16/8 px, dropout 0.1), cosine, T = 1000, learned-range
# variance; its diffusion yaml uses RESCALED_MSE (vb x T/1000 = 1 at T = 1000). Get `DDPM_IP_celeba64.pt` from the
# links in the README of https://github.com/forever208/DDPM-IP and save it as checkpoints/dkdm/DDPM_IP_celeba64.pt.
# FID 4.43 with 50 respaced ancestral steps (DKDM Table 2).
teacher = dict(
    type='adm',
    path='checkpoints/dkdm/DDPM_IP_celeba64.pt',
    network=dict(type='ADMUNet', image_size=64, in_channels=3, model_channels=192, out_channels=6, num_res_blocks=3,
                 attention_resolutions=(2, 4, 8), dropout=0.1, channel_mult=(1, 2, 3, 4), num_heads=4,
                 num_head_channels=64, num_heads_upsample=-1, use_scale_shift_norm=True, resblock_updown=True,
                 use_new_attention_order=True, use_fp16=True),
    diffusion=dict(schedule='cosine', steps=1000, learn_sigma=True, loss_type='rescaled_mse'))
