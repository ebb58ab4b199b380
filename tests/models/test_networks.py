# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""SongUNet, DhariwalUNet and EDM2UNet: layouts from the spec, the optional extras, EDM2's magnitude preservation."""
import math

import pytest
import torch

from kdm.models.networks import DhariwalUNet, EDM2Precond, EDM2UNet, SongUNet
from kdm.models.networks.edm2_unet import Block, mp_cat, mp_silu, mp_sum, normalize
from kdm.models.networks.layers import FourierEmbedding, PositionalEmbedding


def top_level(keys, part):
    seen = []
    for k in keys:
        if k.startswith(part + '.'):
            name = k.split('.')[1]
            if name not in seen:
                seen.append(name)
    return seen


def test_songunet_cifar10_key_order_matches_spec():
    with torch.device('meta'):
        net = SongUNet(img_resolution=32, in_channels=3, out_channels=3, augment_dim=9, channel_mult=[2, 2, 2])
    keys = list(net.state_dict())
    assert top_level(keys, 'enc') == ['32x32_conv'] + [f'32x32_block{i}' for i in range(4)] + ['16x16_down'] + \
        [f'16x16_block{i}' for i in range(4)] + ['8x8_down'] + [f'8x8_block{i}' for i in range(4)]
    assert top_level(keys, 'dec') == ['8x8_in0', '8x8_in1'] + [f'8x8_block{i}' for i in range(5)] + ['16x16_up'] + \
        [f'16x16_block{i}' for i in range(5)] + ['32x32_up'] + [f'32x32_block{i}' for i in range(5)] + \
        ['32x32_aux_norm', '32x32_aux_conv']
    assert keys[:7] == ['map_augment.weight', 'map_layer0.weight', 'map_layer0.bias', 'map_layer1.weight',
                        'map_layer1.bias', 'enc.32x32_conv.weight', 'enc.32x32_conv.bias']
    assert 'enc.16x16_down.conv0.resample_filter' in keys and 'enc.16x16_block0.qkv.weight' in keys
    assert 'dec.16x16_block4.qkv.weight' in keys and 'dec.16x16_block3.qkv.weight' not in keys  # last block only
    assert 'dec.8x8_in0.qkv.weight' in keys and 'dec.8x8_in1.qkv.weight' not in keys


def test_ncsnpp_variant_layout():
    with torch.device('meta'):
        net = SongUNet(img_resolution=32, in_channels=3, out_channels=3, channel_mult=[2, 2, 2],
                       embedding_type='fourier', channel_mult_noise=2, encoder_type='residual',
                       resample_filter=[1, 3, 3, 1])
    sd = net.state_dict()
    assert sd['map_noise.freqs'].shape == (128, ) and sd['enc.16x16_aux_residual.weight'].shape == (256, 3, 3, 3)
    assert sd['enc.16x16_down.conv0.resample_filter'].shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match='encoder_type'):
        SongUNet(img_resolution=8, in_channels=3, out_channels=3, encoder_type='fancy')


def test_embeddings_follow_the_formulas():
    x = torch.tensor([0.0, 0.3, -2.0])
    emb = PositionalEmbedding(8, endpoint=True)(x)
    freqs = torch.tensor([(1 / 10000)**(i / 3) for i in range(4)])
    torch.testing.assert_close(emb, torch.cat([torch.cos(x[:, None] * freqs), torch.sin(x[:, None] * freqs)], 1))
    four = FourierEmbedding(8)
    arg = 2 * math.pi * x[:, None] * four.freqs[None]
    torch.testing.assert_close(four(x), torch.cat([arg.cos(), arg.sin()], 1))


def _randomised(net, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net.eval()


def test_cud_shakedrop_reweights_skips():
    kw = dict(img_resolution=8, in_channels=3, out_channels=3, model_channels=16, channel_mult=[1, 2], num_blocks=1,
              attn_resolutions=[])
    plain = _randomised(SongUNet(**kw))
    shake = SongUNet(prior_shakedrop=True, phi=0.75, **kw).eval()
    shake.load_state_dict(plain.state_dict())  # no parameters of its own
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        t = torch.full((2, ), 0.5)  # phi(0.5) = 0.5: both weights are 1
        torch.testing.assert_close(shake(x, t), plain(x, t))
        t = torch.zeros(2)  # phi(0) = 0.75: main path x 1.5, skip x 0.5
        assert not torch.allclose(shake(x, t), plain(x, t))
        half = SongUNet(prior_shakedrop=True, phi=0.5, **kw).eval()
        half.load_state_dict(plain.state_dict())
        torch.testing.assert_close(half(x, t), plain(x, t))
        out, feat = shake(x, t, return_features=True)
        assert feat.shape == (2, 16, 8, 8)


def test_songunet_progressive_skip_paths():
    kw = dict(img_resolution=8, in_channels=3, out_channels=2, model_channels=16, channel_mult=[1, 2, 2], num_blocks=1,
              attn_resolutions=[], embedding_type='fourier', encoder_type='skip', decoder_type='skip',
              resample_filter=[1, 3, 3, 1])
    net = _randomised(SongUNet(**kw))
    enc, dec = top_level(net.state_dict(), 'enc'), top_level(net.state_dict(), 'dec')
    assert enc[:4] == ['8x8_conv', '8x8_block0', '4x4_down', '4x4_aux_down'] and '2x2_aux_skip' in enc
    # an output head on every level, the lower ones upsampled and summed into the next
    assert [k for k in dec if 'aux' in k] == ['2x2_aux_norm', '2x2_aux_conv', '4x4_aux_up', '4x4_aux_norm',
                                              '4x4_aux_conv', '8x8_aux_up', '8x8_aux_norm', '8x8_aux_conv']
    x, t = torch.randn(2, 3, 8, 8), torch.randn(2)
    with torch.no_grad():
        out, feat = net(x, t, return_features=True)
        assert out.shape == (2, 2, 8, 8) and feat.shape == (2, 16, 8, 8) and torch.isfinite(out).all()
        torch.testing.assert_close(net(x, t[:1]), net(x, t[:1].expand(2)))  # one noise level for the batch


@pytest.mark.parametrize('cls', [SongUNet, DhariwalUNet])
def test_step_condition_needs_the_step_layers(cls):
    net = cls(img_resolution=8, in_channels=3, out_channels=3, model_channels=64, channel_mult=[1], num_blocks=1)
    with pytest.raises(ValueError, match='use_step_condition=False'):
        net(torch.randn(1, 3, 8, 8), torch.randn(1), step_condition=4)


@pytest.mark.parametrize('cls', [SongUNet, DhariwalUNet])
def test_sfd_step_condition(cls):
    kw = dict(img_resolution=8, in_channels=3, out_channels=3, model_channels=64, channel_mult=[1, 2], num_blocks=1,
              attn_resolutions=[4])
    net = _randomised(cls(use_step_condition=True, **kw))
    base = cls(**kw).eval()
    missing, unexpected = base.load_state_dict(net.state_dict(), strict=False)
    assert not missing and unexpected and all('step' in k for k in unexpected)
    x, t = torch.randn(2, 3, 8, 8), torch.randn(2)
    with torch.no_grad():
        torch.testing.assert_close(net(x, t), base(x, t))  # no condition given: the step layers are unused
        assert not torch.allclose(net(x, t, step_condition=4), net(x, t, step_condition=5))


def test_dhariwal_layout_and_labels():
    with torch.device('meta'):
        net = DhariwalUNet(img_resolution=64, in_channels=3, out_channels=3, label_dim=1000)
    sd = net.state_dict()
    assert sd['map_label.weight'].shape == (768, 1000) and 'map_label.bias' not in sd
    assert sd['enc.64x64_conv.weight'].shape == (192, 3, 3, 3) and sd['out_conv.weight'].shape == (3, 192, 3, 3)
    assert sd['enc.32x32_block0.qkv.weight'].shape == (1152, 384, 1, 1)  # 6 heads of 64 channels
    assert 'enc.8x8_down.skip.resample_filter' in sd and 'enc.8x8_down.skip.weight' not in sd  # resample-only skip
    small = _randomised(DhariwalUNet(img_resolution=8, in_channels=3, out_channels=3, label_dim=3, model_channels=64,
                                     channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4]))
    x, t = torch.randn(2, 3, 8, 8), torch.randn(2)
    with torch.no_grad():
        a = small(x, t, torch.eye(3)[[0, 1]])
        assert not torch.allclose(a, small(x, t, torch.eye(3)[[2, 2]]))
        torch.testing.assert_close(small(x, t, None), small(x, t, torch.zeros(2, 3)))


def test_edm2_layout_matches_spec_and_presets():
    with torch.device('meta'):
        unet = EDM2UNet(preset='xs')
    keys = list(unet.state_dict())
    enc = top_level(keys, 'enc')
    assert enc[:5] == ['64x64_conv', '64x64_block0', '64x64_block1', '64x64_block2', '32x32_down']
    assert enc[-1] == '8x8_block2'
    dec = top_level(keys, 'dec')
    assert dec[:7] == ['8x8_in0', '8x8_in1', '8x8_block0', '8x8_block1', '8x8_block2', '8x8_block3', '16x16_up']
    assert dec[-1] == '64x64_block3'
    assert keys[:3] == ['out_gain', 'emb_fourier.freqs', 'emb_fourier.phases']
    assert unet.state_dict()['enc.64x64_conv.weight'].shape == (128, 5, 3, 3)  # image channels + the ones channel
    with pytest.raises(ValueError, match='sets model_channels=128'):
        EDM2UNet(preset='xs', model_channels=192)
    with pytest.raises(ValueError, match='unknown EDM2 preset'):
        EDM2UNet(preset='huge')
    with pytest.raises(ValueError, match="resample mode must be keep, up or down, got 'side'"):
        Block(8, 8, 8, resample_mode='side')
    with torch.device('meta'):
        assert EDM2UNet(preset='edm2-img512-m').enc['64x64_block0'].dropout == 0.1


def test_edm2_magnitude_preserving_ops():
    torch.manual_seed(0)
    a, b = torch.randn(4096, 16), torch.randn(4096, 48)
    assert abs(mp_sum(a[:, :16], b[:, :16], 0.3).std().item() - 1) < 0.05
    assert abs(mp_cat(a, b, t=0.5).square().mean().sqrt().item() - 1) < 0.05
    assert abs(mp_silu(torch.randn(100000)).square().mean().sqrt().item() - 1) < 0.05
    w = normalize(torch.randn(8, 4, 3, 3) * 7)
    torch.testing.assert_close(w.square().mean(dim=[1, 2, 3]), torch.ones(8), atol=1e-3, rtol=0)


def test_edm2_forced_weight_normalisation():
    torch.manual_seed(0)
    kw = dict(img_resolution=8, img_channels=4, label_dim=0, model_channels=32, channel_mult=[1, 2], num_blocks=1,
              attn_resolutions=[4], channels_per_head=16)
    unet = EDM2UNet(**kw)
    w = unet.enc['8x8_block0'].conv_res0.weight
    with torch.no_grad():
        w.mul_(3)
    x, t = torch.randn(2, 4, 8, 8), torch.randn(2)
    unet.eval()(x, t, None)
    assert w.square().mean(dim=[1, 2, 3]).min() > 5  # eval: stored weights untouched
    unet.train()(x, t, None)
    torch.testing.assert_close(w.square().mean(dim=[1, 2, 3]), torch.ones(32), atol=1e-3, rtol=0)
    manual = EDM2UNet(force_normalization=False, **kw).train()
    m = manual.enc['8x8_block0'].conv_res0.weight
    with torch.no_grad():
        m.mul_(3)
    manual(x, t, None)
    assert m.square().mean().item() > 5
    manual.normalize_weights_()
    torch.testing.assert_close(m.square().mean(dim=[1, 2, 3]), torch.ones(32), atol=1e-3, rtol=0)


def test_edm2_precond_is_a_denoiser_with_logvar():
    torch.manual_seed(0)
    pre = EDM2Precond(img_resolution=8, img_channels=4, label_dim=3, model_channels=32, channel_mult=[1, 2],
                      num_blocks=1, attn_resolutions=[4], channels_per_head=16).eval()
    x = torch.randn(2, 4, 8, 8)
    d, u = pre(x, 1.5, torch.tensor([0, 2]), return_logvar=True)
    assert d.shape == x.shape and u.shape == (2, 1, 1, 1)
    with torch.no_grad():
        pre.unet.out_gain.fill_(0)  # F = 0: D = c_skip x
        torch.testing.assert_close(pre(x, 1.5, torch.tensor([0, 2])), x * 0.25 / (1.5**2 + 0.25))
    assert [k for k in pre.state_dict() if not k.startswith('unet.')] == [
        'logvar_fourier.freqs', 'logvar_fourier.phases', 'logvar_linear.weight']
    gen = EDM2Precond(img_resolution=8, img_channels=4, label_dim=0, logvar_channels=0, model_channels=32,
                      channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], channels_per_head=16)
    with pytest.raises(AttributeError, match='logvar_channels=0'):
        gen.logvar(torch.ones(1))
