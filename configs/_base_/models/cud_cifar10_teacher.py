# A Catch-Up Distillation CIFAR-10 velocity network (shared/spec/cud_slimflow_rf.md 2.3): EDM's DDPM++ SongUNet
# (128 channels, [2,2,2], 4 blocks, dropout 0.13, 55.73M) with the deterministic "ShakeDrop" (phi 0.75) it was
# trained with; convention 'cud' (data at t = 0, the network is fed t). CUD publishes no weights: use the EMA file of
# your own run (runs/<name>/flow_model_500000_ema.pth), saved here as checkpoints/cud/flow_model_ema.pth.
teacher = dict(
    type='flow',
    path='checkpoints/cud/flow_model_ema.pth',
    convention='cud',
    network=dict(type='SongUNet', img_resolution=32, in_channels=3, out_channels=3, label_dim=0, model_channels=128,
                 channel_mult=(2, 2, 2), channel_mult_emb=4, num_blocks=4, attn_resolutions=(16, ), dropout=0.13,
                 embedding_type='positional', channel_mult_noise=1, encoder_type='standard', decoder_type='standard',
                 resample_filter=(1, 1), prior_shakedrop=True, phi=0.75))
