# EDM's CIFAR-10 denoiser (train.py --arch=ddpmpp --precond=edm): DDPM++ SongUNet inside EDMPrecond.
# 55.7M parameters (EDM builds it with augment_dim=9 for its augmentation pipeline; kdm's trainer uses x-flips only,
# so augment_dim=0 here: 2,304 parameters fewer).
edm_ddpmpp_cifar10 = dict(
    type='EDMPrecond', img_resolution=32, img_channels=3, label_dim=0, sigma_data=0.5,
    model=dict(type='SongUNet', img_resolution=32, in_channels=3, out_channels=3, label_dim=0, augment_dim=0,
               model_channels=128, channel_mult=(2, 2, 2), channel_mult_emb=4, num_blocks=4, attn_resolutions=(16, ),
               dropout=0.13, embedding_type='positional', channel_mult_noise=1, encoder_type='standard',
               decoder_type='standard', resample_filter=(1, 1)))
