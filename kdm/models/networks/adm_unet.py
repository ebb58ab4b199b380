# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The guided-diffusion ``UNetModel`` (ADM), as used by DDPM-IP teachers and the DKDM students.

Written from the layout in ``shared/spec/dkdm_adm.md`` section 2. Constructor arguments, defaults and state-dict keys
follow the reference, so a guided-diffusion ``.pt`` state dict loads with ``strict=True``::

    time_embed.{0,2}                      Linear(C, 4C), Linear(4C, 4C)
    label_emb.weight                      Embedding(num_classes, 4C)        (class-conditional only)
    input_blocks.0.0                      conv3x3 in_channels -> C * channel_mult[0]
    input_blocks.<i>.<j>                  ResBlock / AttentionBlock / downsampler
    middle_block.{0,1,2}                  ResBlock, AttentionBlock, ResBlock
    output_blocks.<i>.<j>                 ResBlock / AttentionBlock / upsampler
    out.{0,2}                             GroupNorm, conv3x3 -> out_channels

``forward(x, timesteps, y=None)`` takes integer (or float) timesteps and int64 class indices ``y``. With
``learn_sigma`` the reference sets ``out_channels = 2 * in_channels``; the first half is epsilon, the second the
learned-range variance interpolation ``v``.

``use_fp16`` reproduces the reference's half-precision trunk on CUDA: the convolutions of ``input_blocks``,
``middle_block`` and ``output_blocks`` run in float16 with float32 master weights cast on the fly (what
``convert_to_fp16`` stores), group norms compute in float32, the time embedding and the output head stay float32.
On CPU the flag is ignored (float32 throughout).
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from kdm.registry import MODELS

__all__ = ['ADMUNet', 'timestep_embedding']


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[cos(t f_i), sin(t f_i)]`` with ``f_i = max_period^(-i / (dim/2))`` (spec 2.2)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.reshape(-1, 1).float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back to the input dtype; 32 groups as in guided-diffusion."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__(groups, channels)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


class _CastConv2d(nn.Conv2d):
    """Conv2d whose weights follow the activation dtype (float32 masters, float16 compute under ``use_fp16``)."""

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return self._conv_forward(x, self.weight.to(x.dtype), bias)


class _CastConv1d(nn.Conv1d):

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return self._conv_forward(x, self.weight.to(x.dtype), bias)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TimestepBlock(nn.Module):
    """Marker base class: a layer whose ``forward(x, emb)`` also takes the timestep embedding."""


class TimestepEmbedSequential(nn.Sequential):
    """``nn.Sequential`` that hands the embedding to the layers that take one (keys ``<blk>.<index>``)."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Downsample(nn.Module):
    """Stride-2 3x3 conv (key ``op``) when ``use_conv``, else 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool, out_channels: Optional[int] = None):
        super().__init__()
        out_channels = out_channels or channels
        if use_conv:
            self.op = _CastConv2d(channels, out_channels, 3, stride=2, padding=1)
        else:
            if out_channels != channels:
                raise ValueError('a pooling downsampler cannot change the channel count')
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 upsampling followed by a 3x3 conv (key ``conv``) when ``use_conv``."""

    def __init__(self, channels: int, use_conv: bool, out_channels: Optional[int] = None):
        super().__init__()
        out_channels = out_channels or channels
        self.use_conv = use_conv
        if use_conv:
            self.conv = _CastConv2d(channels, out_channels, 3, padding=1)
        elif out_channels != channels:
            raise ValueError('an upsampler without conv cannot change the channel count')

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode='nearest')
        return self.conv(x) if self.use_conv else x


class ResBlock(TimestepBlock):
    """Residual block with timestep conditioning (additive, or ``[scale, shift]`` with ``use_scale_shift_norm``).

    Keys: ``in_layers.{0,2}`` (GN, conv), ``emb_layers.1`` (Linear), ``out_layers.{0,3}`` (GN, zero-init conv),
    ``skip_connection`` (1x1 conv, or 3x3 with ``use_conv``) when the channel count changes.
    ``up``/``down`` resample both paths (nearest / average pooling) without extra parameters.
    """

    def __init__(self,
                 channels: int,
                 emb_channels: int,
                 dropout: float,
                 out_channels: Optional[int] = None,
                 use_conv: bool = False,
                 use_scale_shift_norm: bool = False,
                 use_checkpoint: bool = False,
                 up: bool = False,
                 down: bool = False,
                 norm_groups: int = 32):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.use_checkpoint = use_checkpoint
        self.in_layers = nn.Sequential(GroupNorm32(channels, norm_groups), nn.SiLU(),
                                       _CastConv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels, norm_groups), nn.SiLU(), nn.Dropout(p=dropout),
            _zero(_CastConv2d(out_channels, out_channels, 3, padding=1)))
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        elif use_conv:
            self.skip_connection = _CastConv2d(channels, out_channels, 3, padding=1)
        else:
            self.skip_connection = _CastConv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, emb, use_reentrant=False)
        return self._forward(x, emb)

    def _forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


def qkv_attention(qkv: Tensor, num_heads: int, legacy: bool) -> Tensor:
    """Multi-head attention on a fused ``(B, 3*C, T)`` tensor.

    ``legacy=False`` (``use_new_attention_order``): the rows are ``[q | k | v]``, each split into heads.
    ``legacy=True``: the rows are grouped per head as ``[q_h, k_h, v_h]``. q and k are both scaled by ``ch^(-1/4)``
    and the softmax is computed in float32 (spec 2.2).
    """
    bs, width, length = qkv.shape
    ch = width // (3 * num_heads)
    if legacy:
        q, k, v = qkv.reshape(bs * num_heads, 3 * ch, length).split(ch, dim=1)
    else:
        q, k, v = (t.reshape(bs * num_heads, ch, length) for t in qkv.chunk(3, dim=1))
    scale = ch**-0.25
    weight = torch.einsum('bct,bcs->bts', q * scale, k * scale)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return torch.einsum('bts,bcs->bct', weight, v).reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    """Spatial self-attention: ``norm``, ``qkv`` (Conv1d C -> 3C), ``proj_out`` (zero-init Conv1d), residual.

    ``num_head_channels != -1`` overrides ``num_heads`` (heads = channels / num_head_channels).
    """

    def __init__(self,
                 channels: int,
                 num_heads: int = 1,
                 num_head_channels: int = -1,
                 use_checkpoint: bool = False,
                 use_new_attention_order: bool = False,
                 norm_groups: int = 32):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f'channels {channels} not divisible by num_head_channels {num_head_channels}')
            self.num_heads = channels // num_head_channels
        if channels % self.num_heads:
            raise ValueError(f'channels {channels} not divisible by num_heads {self.num_heads}')
        self.legacy = not use_new_attention_order
        self.use_checkpoint = use_checkpoint
        self.norm = GroupNorm32(channels, norm_groups)
        self.qkv = _CastConv1d(channels, channels * 3, 1)
        self.proj_out = _zero(_CastConv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = qkv_attention(self.qkv(self.norm(x)), self.num_heads, self.legacy)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


@MODELS.register_module()
class ADMUNet(nn.Module):
    """guided-diffusion ``UNetModel`` (Dhariwal & Nichol 2021), the DKDM / DDPM-IP architecture.

    Args:
        image_size (int): Input resolution (informational, as in the reference).
        in_channels (int): Image channels.
        model_channels (int): Base channel count C.
        out_channels (int): Output channels; ``2 * in_channels`` for ``learn_sigma`` models.
        num_res_blocks (int): Residual blocks per level.
        attention_resolutions (Sequence[int]): Downsample factors (``image_size // pixels``) with attention.
        dropout (float): Dropout in the residual blocks.
        channel_mult (Sequence[int]): Channel multiplier per level.
        conv_resample (bool): Learned (conv) up/downsampling when ``resblock_updown`` is False.
        dims (int): Spatial dimensions; only 2 is supported.
        num_classes (int, optional): Number of classes for class conditioning (``label_emb``).
        use_checkpoint (bool): Gradient checkpointing of every block while training.
        use_fp16 (bool): Half-precision trunk on CUDA (see the module docstring).
        num_heads (int): Attention heads (when ``num_head_channels == -1``).
        num_head_channels (int): Channels per head; overrides ``num_heads`` unless -1.
        num_heads_upsample (int): Heads in the decoder; -1 means ``num_heads``.
        use_scale_shift_norm (bool): FiLM-style ``GN(h) * (1 + scale) + shift`` conditioning.
        resblock_updown (bool): Resample with residual blocks instead of (conv) up/downsamplers.
        use_new_attention_order (bool): Split qkv before heads (``QKVAttention``) instead of the legacy order.
        norm_groups (int): GroupNorm groups. guided-diffusion fixes 32 (so channels must be multiples of 32); kdm's
            extension lets tiny toy networks (16 channels, quickstart) use fewer. No state-dict key changes.
    """

    def __init__(self,
                 image_size: int,
                 in_channels: int,
                 model_channels: int,
                 out_channels: int,
                 num_res_blocks: int,
                 attention_resolutions: Sequence[int],
                 dropout: float = 0.0,
                 channel_mult: Sequence[int] = (1, 2, 4, 8),
                 conv_resample: bool = True,
                 dims: int = 2,
                 num_classes: Optional[int] = None,
                 use_checkpoint: bool = False,
                 use_fp16: bool = False,
                 num_heads: int = 1,
                 num_head_channels: int = -1,
                 num_heads_upsample: int = -1,
                 use_scale_shift_norm: bool = False,
                 resblock_updown: bool = False,
                 use_new_attention_order: bool = False,
                 norm_groups: int = 32):
        super().__init__()
        if dims != 2:
            raise ValueError(f'ADMUNet supports dims=2 only, got dims={dims}')
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.image_size = image_size
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.num_res_blocks = num_res_blocks
        self.attention_resolutions = tuple(attention_resolutions)
        self.channel_mult = tuple(channel_mult)
        self.num_classes = num_classes
        self.use_fp16 = use_fp16

        emb_ch = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb_ch)

        def res(cin, cout, **kw):
            return ResBlock(cin, emb_ch, dropout, out_channels=cout, use_scale_shift_norm=use_scale_shift_norm,
                            use_checkpoint=use_checkpoint, norm_groups=norm_groups, **kw)

        def attn(ch, heads):
            return AttentionBlock(ch, num_heads=heads, num_head_channels=num_head_channels,
                                  use_checkpoint=use_checkpoint, use_new_attention_order=use_new_attention_order,
                                  norm_groups=norm_groups)

        ch = input_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(_CastConv2d(in_channels, ch, 3, padding=1))])
        skip_chans = [ch]
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in self.attention_resolutions:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                down = res(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(res(ch, ch), attn(ch, num_heads), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), int(model_channels * mult))]
                ch = int(model_channels * mult)
                if ds in self.attention_resolutions:
                    layers.append(attn(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch, norm_groups), nn.SiLU(),
                                 _zero(nn.Conv2d(input_ch, out_channels, 3, padding=1)))

    def forward(self, x: Tensor, timesteps: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """Apply the UNet: ``x`` (N, C, H, W), ``timesteps`` (N,) or scalar, ``y`` int64 (N,) class indices."""
        if (y is not None) != (self.num_classes is not None):
            raise ValueError('y must be given if and only if the model is class-conditional '
                             f'(num_classes={self.num_classes})')
        timesteps = torch.as_tensor(timesteps, device=x.device)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y.reshape(-1).long())
        dtype = torch.float16 if (self.use_fp16 and x.is_cuda) else torch.float32
        h = x.type(dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.type(x.dtype))
