# RectifiedFlow's CIFAR-10 1-rectified flow (shared/spec/cud_slimflow_rf.md 5.2, 6.3): score_sde NCSN++ with DDPM++
# settings (61.8M), converted onto SongUNet by the `flow` loader; convention 'rf' (noise at t = 0, the network is fed
# 999 t); EMA weights. RK45 FID 2.58. Get the 1-RF checkpoint from the links in the README of
# https://github.com/gnobitab/RectifiedFlow and save it as checkpoints/rectified_flow/cifar10_1rf.pth.
teacher = dict(
    type='flow',
    path='checkpoints/rectified_flow/cifar10_1rf.pth',
    convention='rf',
    ema=True,
    network=dict(type='SongUNet', img_resolution=32, in_channels=3, out_channels=3, label_dim=0, model_channels=128,
                 channel_mult=(1, 2, 2, 2), channel_mult_emb=4, num_blocks=4, attn_resolutions=(16, ), dropout=0.15,
                 embedding_type='positional', channel_mult_noise=1, encoder_type='standard', decoder_type='standard',
                 resample_filter=(1, 1)))
