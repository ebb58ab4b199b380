# SlimFlow's student architectures (shared/spec/cud_slimflow_rf.md 4.7, README "Model Configurations"): score_sde
# NCSN++ with DDPM++ settings (positional embedding, BigGAN residual blocks, no FIR, attention at 16x16,
# dropout 0.15) expressed as EDM's SongUNet (same parameters; tools/convert.py and the `flow` teacher loader rename
# score_sde checkpoints onto it), and EDM's DhariwalUNet for ImageNet-64 (dropout 0.13, 1000 classes).
# The CIFAR-10 sizes are also the FFHQ-64 sizes (set img_resolution=64; attention stays at 16x16).
# Parameter counts (asserted by tests/models/test_param_counts.py) in the comments.
_ddpmpp = dict(type='SongUNet', img_resolution=32, in_channels=3, out_channels=3, label_dim=0, augment_dim=0,
               channel_mult_emb=4, attn_resolutions=(16, ), dropout=0.15, embedding_type='positional',
               channel_mult_noise=1, encoder_type='standard', decoder_type='standard', resample_filter=(1, 1))
_adm64 = dict(type='DhariwalUNet', img_resolution=64, in_channels=3, out_channels=3, label_dim=1000, augment_dim=0,
              model_channels=128, num_blocks=2, attn_resolutions=(32, 16), dropout=0.13)

slimflow_27_9m = dict(_ddpmpp, model_channels=128, num_blocks=2, channel_mult=(1, 2, 2))  # 27,906,179
slimflow_15_7m = dict(_ddpmpp, model_channels=96, num_blocks=2, channel_mult=(1, 2, 2))  # 15,707,235
slimflow_7_0m = dict(_ddpmpp, model_channels=64, num_blocks=2, channel_mult=(1, 2, 2))  # 6,989,891
slimflow_3_4m = dict(_ddpmpp, model_channels=64, num_blocks=1, channel_mult=(1, 1, 2))  # 3,437,123
slimflow_imagenet_80_7m = dict(_adm64, channel_mult=(1, 2, 2, 4))  # 80,685,315
slimflow_imagenet_44_7m = dict(_adm64, channel_mult=(1, 2, 2, 2))  # 44,685,827
del _ddpmpp, _adm64
