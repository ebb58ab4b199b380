# RectifiedFlow's CIFAR-10 velocity network: score_sde "ncsnpp" configured as DDPM++ (nf 128, ch_mult (1,2,2,2),
# 4 res blocks, attention at 16, dropout 0.15, positional embedding) — expressed as EDM's SongUNet DDPM++ variant.
rf_ddpmpp_cifar10 = dict(
    type='SongUNet', img_resolution=32, in_channels=3, out_channels=3, label_dim=0, model_channels=128,
    channel_mult=(1, 2, 2, 2), channel_mult_emb=4, num_blocks=4, attn_resolutions=(16, ), dropout=0.15,
    embedding_type='positional', channel_mult_noise=1, encoder_type='standard', decoder_type='standard',
    resample_filter=(1, 1))
