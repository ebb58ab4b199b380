# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Parameter counts of the reference architectures against the published numbers (docs/teachers.md table).

Every network is built on the ``meta`` device (no memory, no initialisation). ``published`` is the number the paper,
README or spec gives (in millions, to its precision); ``exact`` is our count, pinned so that any layout change is
noticed. The test asserts |exact - published| < 0.1M and the exact count.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from kdm.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

_DDPMPP = dict(type='SongUNet', embedding_type='positional', channel_mult_noise=1, encoder_type='standard',
               decoder_type='standard', resample_filter=[1, 1], model_channels=128, in_channels=3, out_channels=3)
_DKDM32 = dict(type='ADMUNet', image_size=32, in_channels=3, out_channels=6, attention_resolutions=(2, 4),
               channel_mult=(1, 2, 2, 2), num_heads=4, num_head_channels=32, use_scale_shift_norm=True,
               resblock_updown=True, use_new_attention_order=True)
_DKDM64 = dict(_DKDM32, image_size=64, attention_resolutions=(2, 4, 8), channel_mult=(1, 2, 3, 4))
_SLIM = 'configs/_base_/models/slimflow_students.py'

# name: (config, published parameters in millions, exact count)
TABLE = {
    'EDM CIFAR-10 uncond DDPM++': (dict(_DDPMPP, img_resolution=32, augment_dim=9, channel_mult=[2, 2, 2]), 55.73,
                                   55_733_891),
    'EDM CIFAR-10 cond DDPM++': (dict(_DDPMPP, img_resolution=32, augment_dim=9, label_dim=10,
                                      channel_mult=[2, 2, 2]), 55.74, 55_735_299),
    'EDM FFHQ/AFHQv2-64 DDPM++': (dict(_DDPMPP, img_resolution=64, augment_dim=9, channel_mult=[1, 2, 2, 2]), 61.81,
                                  61_805_571),
    'EDM ImageNet-64 ADM': (dict(type='DhariwalUNet', img_resolution=64, in_channels=3, out_channels=3,
                                 label_dim=1000), 295.90, 295_899_267),
    'CUD MNIST velocity net': (dict(_DDPMPP, img_resolution=28, in_channels=1, out_channels=1, model_channels=32,
                                    channel_mult=[2, 2, 2], num_blocks=2), 2.16, 2_155_201),
    'CUD CIFAR-10 encoder': (dict(_DDPMPP, img_resolution=32, out_channels=6, model_channels=32,
                                  channel_mult=[2, 2, 2], num_blocks=2), 2.21, 2_208_966),
    'DKDM 57M': (dict(_DKDM32, model_channels=128, num_res_blocks=3), 57.094662, 57_094_662),
    'DKDM 44M': (dict(_DKDM32, model_channels=128, num_res_blocks=2), 44.177286, 44_177_286),
    'DKDM 32M': (dict(_DKDM32, model_channels=96, num_res_blocks=3), 32.136582, 32_136_582),
    'DKDM 24M': (dict(_DKDM32, model_channels=96, num_res_blocks=2), 24.866214, 24_866_214),
    'DKDM 14M': (dict(_DKDM32, model_channels=64, num_res_blocks=3), 14.301446, 14_301_446),
    'DKDM 57M-CelebA': (dict(_DKDM64, model_channels=96, num_res_blocks=2), 57.213606, 57_213_606),
    'DKDM 295M (CelebA teacher)': (dict(_DKDM64, model_channels=192, num_res_blocks=3, num_head_channels=64),
                                   295.136454, 295_136_454),
    'SlimFlow 27.9M': ((_SLIM, 'slimflow_27_9m'), 27.9, 27_906_179),
    'SlimFlow 15.7M': ((_SLIM, 'slimflow_15_7m'), 15.7, 15_707_235),
    'SlimFlow 7.0M': ((_SLIM, 'slimflow_7_0m'), 7.0, 6_989_891),
    'SlimFlow 3.4M': ((_SLIM, 'slimflow_3_4m'), 3.4, 3_437_123),
    'SlimFlow ImageNet 80.7M': ((_SLIM, 'slimflow_imagenet_80_7m'), 80.7, 80_685_315),
    'SlimFlow ImageNet 44.7M': ((_SLIM, 'slimflow_imagenet_44_7m'), 44.7, 44_685_827),
    'EDM2 XS': (dict(type='EDM2Precond', preset='xs'), 124.7, 124_713_253),
    'EDM2 S': (dict(type='EDM2Precond', preset='s'), 280.2, 280_212_837),
    'EDM2 M': (dict(type='EDM2Precond', preset='m'), 497.8, 497_807_781),
    'EDM2 L': (dict(type='EDM2Precond', preset='l'), 777.5, 777_498_085),
    'EDM2 XL': (dict(type='EDM2Precond', preset='xl'), 1119.3, 1_119_283_749),
    'EDM2 XXL': (dict(type='EDM2Precond', preset='xxl'), 1523.2, 1_523_164_773),
}


def resolve(cfg):
    if isinstance(cfg, tuple):  # (config file, variable)
        return Config.fromfile(osp.join(ROOT, cfg[0]))[cfg[1]].to_dict()
    return cfg


@pytest.mark.parametrize('name', list(TABLE))
def test_parameter_count_matches_published(name):
    cfg, published, exact = TABLE[name]
    with torch.device('meta'):
        net = MODELS.build(resolve(cfg))
    count = sum(p.numel() for p in net.parameters())
    assert abs(count - published * 1e6) < 0.1e6, f'{name}: {count:,} vs published {published}M'
    assert count == exact, f'{name}: {count:,} parameters, pinned {exact:,}'
