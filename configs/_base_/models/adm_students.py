# The ADMUNet (guided-diffusion UNetModel) architectures of DKDM: its teachers and students
# (shared/spec/dkdm_adm.md 2.4, DKDM guided-diffusion/yaml/arch/*.yaml). Every yaml shares num_heads 4,
# channel_mult '' (= (1, 2, 2, 2) at 32 px, (1, 2, 3, 4) at 64 px), scale-shift norm, resblock up/down, the new
# attention order and learn_sigma (6 output channels). Attention resolutions are given in pixels in the yamls
# ("16,8" at 32 px, "32,16,8" at 64 px) and here as downsample factors. Parameter counts in the comments are
# asserted by tests/methods/test_dkdm.py.
# Students train in float32 here; the reference trains them with fp16 weights and loss scaling: use
# `tools/train.py ... --amp` on GPUs. Teachers run with use_fp16=True (fp16 trunk on CUDA, as the reference).
_adm32 = dict(type='ADMUNet', image_size=32, in_channels=3, out_channels=6, attention_resolutions=(2, 4),
              channel_mult=(1, 2, 2, 2), num_heads=4, num_head_channels=32, num_heads_upsample=-1,
              use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=True, use_checkpoint=False,
              use_fp16=False, dropout=0.3)
_adm64 = dict(type='ADMUNet', image_size=64, in_channels=3, out_channels=6, attention_resolutions=(2, 4, 8),
              channel_mult=(1, 2, 3, 4), num_heads=4, num_head_channels=32, num_heads_upsample=-1,
              use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=True, use_checkpoint=False,
              use_fp16=False, dropout=0.1)

adm_57m = dict(_adm32, model_channels=128, num_res_blocks=3)  # 57,094,662: 57M-CNN (also the CIFAR/ImageNet teacher)
adm_44m = dict(_adm32, model_channels=128, num_res_blocks=2)  # 44,177,286: 44M-CNN
adm_32m = dict(_adm32, model_channels=96, num_res_blocks=3)  # 32,136,582: 32M-CNN
adm_24m = dict(_adm32, model_channels=96, num_res_blocks=2)  # 24,866,214: 24M-CNN
adm_14m = dict(_adm32, model_channels=64, num_res_blocks=3)  # 14,301,446: 14M-CNN (Table 2 CIFAR/ImageNet student)
adm_57m_celeba = dict(_adm64, model_channels=96, num_res_blocks=2)  # 57,213,606: 57M-CNN-CelebA
adm_295m = dict(_adm64, model_channels=192, num_res_blocks=3, num_head_channels=64)  # 295,136,454: CelebA teacher
del _adm32, _adm64  # only the named architectures above are part of a config
