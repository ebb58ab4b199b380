# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""ADMUNet against the guided-diffusion checkpoint layout (shared/spec/dkdm_adm.md 2.5-2.6).

The reference state dict is generated here from the spec's key grammar, independently of ``ADMUNet``, so that a
layout or naming slip in the network makes ``load_state_dict(strict=True)`` fail.
"""
from collections import OrderedDict

import pytest
import torch

from kdm.models.networks import ADMUNet


def guided_diffusion_shapes(C, num_res_blocks, channel_mult, attn_ds, head_ch, in_ch=3, out_ch=6, num_classes=None):
    """Key -> shape of a guided-diffusion UNetModel with scale-shift norm and resblock_updown (spec 2.6 grammar)."""
    shapes, E = OrderedDict(), 4 * C

    def pair(name, w, b):
        shapes[name + '.weight'], shapes[name + '.bias'] = w, b

    def res(p, cin, cout):
        pair(p + '.in_layers.0', (cin, ), (cin, ))
        pair(p + '.in_layers.2', (cout, cin, 3, 3), (cout, ))
        pair(p + '.emb_layers.1', (2 * cout, E), (2 * cout, ))
        pair(p + '.out_layers.0', (cout, ), (cout, ))
        pair(p + '.out_layers.3', (cout, cout, 3, 3), (cout, ))
        if cin != cout:
            pair(p + '.skip_connection', (cout, cin, 1, 1), (cout, ))

    def attn(p, c):
        pair(p + '.norm', (c, ), (c, ))
        pair(p + '.qkv', (3 * c, c, 1), (3 * c, ))
        pair(p + '.proj_out', (c, c, 1), (c, ))

    pair('time_embed.0', (E, C), (E, ))
    pair('time_embed.2', (E, E), (E, ))
    if num_classes:
        shapes['label_emb.weight'] = (num_classes, E)
    pair('input_blocks.0.0', (C * channel_mult[0], in_ch, 3, 3), (C * channel_mult[0], ))
    blk, ch, ds, skips = 1, C * channel_mult[0], 1, [C * channel_mult[0]]
    for level, m in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            res(f'input_blocks.{blk}.0', ch, C * m)
            ch = C * m
            if ds in attn_ds:
                attn(f'input_blocks.{blk}.1', ch)
            skips.append(ch)
            blk += 1
        if level < len(channel_mult) - 1:
            res(f'input_blocks.{blk}.0', ch, ch)  # ResDown
            skips.append(ch)
            blk, ds = blk + 1, ds * 2
    res('middle_block.0', ch, ch)
    attn('middle_block.1', ch)
    res('middle_block.2', ch, ch)
    blk = 0
    for level in reversed(range(len(channel_mult))):
        for i in range(num_res_blocks + 1):
            res(f'output_blocks.{blk}.0', ch + skips.pop(), C * channel_mult[level])
            ch = C * channel_mult[level]
            sub = 1
            if ds in attn_ds:
                attn(f'output_blocks.{blk}.1', ch)
                sub = 2
            if level and i == num_res_blocks:
                res(f'output_blocks.{blk}.{sub}', ch, ch)  # ResUp
                ds //= 2
            blk += 1
    pair('out.0', (ch, ), (ch, ))
    pair('out.2', (out_ch, C, 3, 3), (out_ch, ))
    return shapes


def dkdm_unet(image_size, C, nres, attn_px, head_ch, mult, **kw):
    return ADMUNet(image_size=image_size, in_channels=3, model_channels=C, out_channels=6, num_res_blocks=nres,
                   attention_resolutions=tuple(image_size // r for r in attn_px), channel_mult=mult, num_heads=4,
                   num_head_channels=head_ch, use_scale_shift_norm=True, resblock_updown=True,
                   use_new_attention_order=True, **kw)


@pytest.mark.parametrize('cfg', [(32, 128, 3, (16, 8), 32, (1, 2, 2, 2)), (32, 96, 2, (16, 8), 32, (1, 2, 2, 2)),
                                 (64, 96, 2, (32, 16, 8), 32, (1, 2, 3, 4))])
def test_key_grammar_matches_reference_layout(cfg):
    image_size, C, nres, attn_px, head_ch, mult = cfg
    ref = guided_diffusion_shapes(C, nres, mult, {image_size // r for r in attn_px}, head_ch)
    with torch.device('meta'):
        net = dkdm_unet(*cfg)
    ours = OrderedDict((k, tuple(v.shape)) for k, v in net.state_dict().items())
    assert list(ours) == list(ref)
    assert ours == ref


def test_spec_block_layout_57m():
    """Spot checks of spec 2.5 (index -> content) for the 32 px, 3-block layout."""
    with torch.device('meta'):
        keys = set(dkdm_unet(32, 128, 3, (16, 8), 32, (1, 2, 2, 2)).state_dict())
    assert 'input_blocks.4.0.in_layers.2.weight' in keys and 'input_blocks.4.1.qkv.weight' not in keys  # ResDown
    assert 'input_blocks.5.1.qkv.weight' in keys and 'input_blocks.13.1.qkv.weight' not in keys
    assert 'output_blocks.3.1.in_layers.2.weight' in keys  # ResUp at sub-index 1 (no attention at 4x4)
    assert 'output_blocks.7.1.qkv.weight' in keys and 'output_blocks.7.2.in_layers.2.weight' in keys
    assert 'output_blocks.15.0.skip_connection.weight' in keys and 'output_blocks.16.0.in_layers.0.weight' not in keys
    assert len(keys) == 494  # 247 weight/bias pairs


def test_guided_diffusion_state_dict_loads_strictly_and_runs():
    torch.manual_seed(0)
    ref = guided_diffusion_shapes(32, 1, (1, 2), {2}, 16, num_classes=10)
    sd = OrderedDict((k, torch.randn(s) * 0.05) for k, s in ref.items())
    net = ADMUNet(image_size=16, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
                  attention_resolutions=(2, ), channel_mult=(1, 2), num_classes=10, num_head_channels=16,
                  use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=True)
    net.load_state_dict(sd, strict=True)
    out = net(torch.randn(2, 3, 16, 16), torch.tensor([3, 999]), torch.tensor([0, 9]))
    assert out.shape == (2, 6, 16, 16) and torch.isfinite(out).all()


def test_attention_orders_differ_and_heads():
    """Legacy and new qkv orders give different numbers with the same weights (a silent mismatch otherwise)."""
    torch.manual_seed(0)
    kw = dict(image_size=8, in_channels=3, model_channels=32, out_channels=3, num_res_blocks=1,
              attention_resolutions=(1, ), channel_mult=(1, ), num_heads=2)
    new, old = ADMUNet(use_new_attention_order=True, **kw), ADMUNet(**kw)
    for p in new.parameters():
        torch.nn.init.normal_(p, std=0.1)
    old.load_state_dict(new.state_dict())
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 20])
    assert not torch.allclose(new(x, t), old(x, t))
    assert new.input_blocks[1][1].num_heads == 2
    with torch.device('meta'):
        net = ADMUNet(**{**kw, 'num_head_channels': 8})
    assert net.input_blocks[1][1].num_heads == 4


def test_conditioning_flags_and_errors():
    kw = dict(image_size=8, in_channels=3, model_channels=32, out_channels=3, num_res_blocks=1,
              attention_resolutions=(), channel_mult=(1, 2))
    net = ADMUNet(num_classes=5, **kw)
    with pytest.raises(ValueError, match='class-conditional'):
        net(torch.randn(1, 3, 8, 8), torch.tensor([1]))
    plain = ADMUNet(conv_resample=True, **kw)
    assert 'input_blocks.2.0.op.weight' in plain.state_dict()  # resblock_updown=False -> strided conv 'op'
    assert 'output_blocks.1.1.conv.weight' in plain.state_dict()
    emb_out = ADMUNet(use_scale_shift_norm=False, **kw).state_dict()['input_blocks.1.0.emb_layers.1.weight']
    assert emb_out.shape == (32, 128)
    with pytest.raises(ValueError, match='dims=2'):
        ADMUNet(dims=3, **kw)
    # a scalar timestep broadcasts over the batch
    assert plain(torch.randn(2, 3, 8, 8), torch.tensor(5)).shape == (2, 3, 8, 8)


def test_gradient_checkpointing_matches():
    torch.manual_seed(0)
    kw = dict(image_size=8, in_channels=3, model_channels=32, out_channels=3, num_res_blocks=1,
              attention_resolutions=(2, ), channel_mult=(1, 2))
    a = ADMUNet(**kw)
    for p in a.parameters():
        torch.nn.init.normal_(p, std=0.05)
    b = ADMUNet(use_checkpoint=True, **kw)
    b.load_state_dict(a.state_dict())
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([1, 2])
    a(x, t).square().sum().backward()
    b(x, t).square().sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=n)


def test_norm_groups_extension_for_tiny_networks():
    """kdm's ``norm_groups`` (default 32 = guided-diffusion) lets 16-channel toy nets build; keys are unchanged."""
    from torch import nn

    from kdm.models.networks import ADMUNet
    kw = dict(image_size=16, in_channels=1, model_channels=16, out_channels=2, num_res_blocks=1,
              attention_resolutions=(2, ), channel_mult=(1, 2), use_scale_shift_norm=True, resblock_updown=True,
              use_new_attention_order=True)
    with pytest.raises(ValueError, match='divisible'):
        ADMUNet(**kw)  # 16 channels cannot form the reference's 32 groups
    net = ADMUNet(**kw, norm_groups=8)
    groups = {m.num_groups for m in net.modules() if isinstance(m, nn.GroupNorm)}
    assert groups == {8}
    ref = ADMUNet(**dict(kw, model_channels=32))
    assert [k for k in net.state_dict()] == [k for k in ref.state_dict()]
    out = net(torch.randn(2, 1, 16, 16), torch.tensor([3, 500]))
    assert out.shape == (2, 2, 16, 16)
