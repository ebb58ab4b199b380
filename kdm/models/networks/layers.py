# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""EDM's building blocks (``shared/spec/sid_edm.md`` section 2.2), shared by ``SongUNet`` and ``DhariwalUNet``.

Attribute names, parameter shapes and buffers match the reference layers, so that state dicts and pickled EDM
networks map 1:1 onto these modules. Weights are stored in float32 and cast to the activation dtype in ``forward``
(EDM's manual float16 path: the preconditioner casts the network input, each layer follows it).
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    'weight_init', 'Linear', 'Conv2d', 'GroupNorm', 'PositionalEmbedding', 'FourierEmbedding', 'UNetBlock',
    'attention_weights'
]


def weight_init(shape: Sequence[int], mode: str, fan_in: int, fan_out: int) -> Tensor:
    """EDM's initialisers: ``xavier_uniform``, ``xavier_normal``, ``kaiming_uniform``, ``kaiming_normal``."""
    if mode == 'xavier_uniform':
        return math.sqrt(6 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1)
    if mode == 'xavier_normal':
        return math.sqrt(2 / (fan_in + fan_out)) * torch.randn(*shape)
    if mode == 'kaiming_uniform':
        return math.sqrt(3 / fan_in) * (torch.rand(*shape) * 2 - 1)
    if mode == 'kaiming_normal':
        return math.sqrt(1 / fan_in) * torch.randn(*shape)
    raise ValueError(f'invalid init mode "{mode}"; expected xavier_uniform, xavier_normal, kaiming_uniform or '
                     'kaiming_normal')


def _param(shape, init_mode, fan_in, fan_out, scale):
    return nn.Parameter(weight_init(shape, init_mode, fan_in, fan_out) * scale)


class Linear(nn.Module):
    """``x @ W^T + b`` with EDM initialisation (weights follow the input dtype)."""

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 bias: bool = True,
                 init_mode: str = 'kaiming_normal',
                 init_weight: float = 1.0,
                 init_bias: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        fans = dict(fan_in=in_features, fan_out=out_features)
        self.weight = _param([out_features, in_features], init_mode, scale=init_weight, **fans)
        self.bias = _param([out_features], init_mode, scale=init_bias, **fans) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        x = x @ self.weight.to(x.dtype).t()
        return x if self.bias is None else x + self.bias.to(x.dtype)


class Conv2d(nn.Module):
    """Convolution with optional 2x FIR up/downsampling (EDM ``Conv2d``).

    ``kernel == 0`` gives a pure resampler (no weight). The buffer ``resample_filter`` (``outer(f, f) / sum(f)^2``,
    shape ``[1, 1, k, k]``) exists only when ``up`` or ``down``. ``fused_resample`` reorders the resampling and the
    convolution as the reference does for NCSN++'s auxiliary residual path.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel: int,
                 bias: bool = True,
                 up: bool = False,
                 down: bool = False,
                 resample_filter: Sequence[int] = (1, 1),
                 fused_resample: bool = False,
                 init_mode: str = 'kaiming_normal',
                 init_weight: float = 1.0,
                 init_bias: float = 0.0):
        if up and down:
            raise ValueError('Conv2d cannot both upsample and downsample')
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.down = down
        self.fused_resample = fused_resample
        fans = dict(fan_in=in_channels * kernel * kernel, fan_out=out_channels * kernel * kernel)
        self.weight = _param([out_channels, in_channels, kernel, kernel], init_mode, scale=init_weight, **fans) \
            if kernel else None
        self.bias = _param([out_channels], init_mode, scale=init_bias, **fans) if kernel and bias else None
        f = torch.as_tensor(list(resample_filter), dtype=torch.float32)
        f = f.ger(f).unsqueeze(0).unsqueeze(1) / f.sum().square()
        self.register_buffer('resample_filter', f if up or down else None)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) if self.weight is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        f = self.resample_filter.to(x.dtype) if self.resample_filter is not None else None
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0
        if self.fused_resample and self.up and w is not None:
            x = F.conv_transpose2d(x, f.mul(4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2,
                                   padding=max(f_pad - w_pad, 0))
            x = F.conv2d(x, w, padding=max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = F.conv2d(x, w, padding=w_pad + f_pad)
            x = F.conv2d(x, f.tile([self.out_channels, 1, 1, 1]), groups=self.out_channels, stride=2)
        else:
            if self.up:
                x = F.conv_transpose2d(x, f.mul(4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels,
                                       stride=2, padding=f_pad)
            if self.down:
                x = F.conv2d(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2, padding=f_pad)
            if w is not None:
                x = F.conv2d(x, w, padding=w_pad)
        if b is not None:
            x = x + b.reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    """GroupNorm with ``min(num_groups, C // min_channels_per_group)`` groups (EDM ``GroupNorm``)."""

    def __init__(self, num_channels: int, num_groups: int = 32, min_channels_per_group: int = 4, eps: float = 1e-5):
        super().__init__()
        self.num_groups = max(1, min(num_groups, num_channels // min_channels_per_group))
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, num_groups=self.num_groups, weight=self.weight.to(x.dtype),
                            bias=self.bias.to(x.dtype), eps=self.eps)


def attention_weights(q: Tensor, k: Tensor) -> Tensor:
    """``softmax_k(q^T k / sqrt(c))`` for ``q, k`` of shape (N, c, L), computed in float32, returned in q's dtype."""
    w = torch.einsum('ncq,nck->nqk', q.to(torch.float32), (k / math.sqrt(k.shape[1])).to(torch.float32))
    return w.softmax(dim=2).to(q.dtype)


class PositionalEmbedding(nn.Module):
    """``[cos(x f_i), sin(x f_i)]`` with ``f_i = (1 / max_positions)^(i / (C/2 - endpoint))``."""

    def __init__(self, num_channels: int, max_positions: int = 10000, endpoint: bool = False):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions
        self.endpoint = endpoint

    def forward(self, x: Tensor) -> Tensor:
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device) / (half - (1 if self.endpoint else 0))
        freqs = (1 / self.max_positions)**freqs
        x = x.reshape(-1).ger(freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features ``[cos(2 pi x f), sin(2 pi x f)]``, buffer ``freqs ~ N(0, scale^2)`` (NCSN++)."""

    def __init__(self, num_channels: int, scale: float = 16):
        super().__init__()
        self.register_buffer('freqs', torch.randn(num_channels // 2) * scale)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(-1).ger((2 * math.pi * self.freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class UNetBlock(nn.Module):
    """EDM's residual block with optional resampling and self-attention (keys ``norm0, conv0, affine, norm1,
    conv1, skip, norm2, qkv, proj``).

    Conditioning is additive (``silu(norm1(h + affine(emb)))``) or, with ``adaptive_scale``, a scale/shift
    ``silu(shift + norm1(h) * (scale + 1))``. The attention's qkv output channels are interleaved per head as
    ``(head * C/heads + c) * 3 + j`` (spec 2.2). ``step_emb_channels > 0`` adds SFD-v's ``affine_step`` layer
    (spec sfd_solvers 2.8), fed by ``forward(x, emb, step_emb)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 emb_channels: int,
                 up: bool = False,
                 down: bool = False,
                 attention: bool = False,
                 num_heads: Optional[int] = None,
                 channels_per_head: int = 64,
                 dropout: float = 0.0,
                 skip_scale: float = 1.0,
                 eps: float = 1e-5,
                 resample_filter: Sequence[int] = (1, 1),
                 resample_proj: bool = False,
                 adaptive_scale: bool = True,
                 init: Optional[dict] = None,
                 init_zero: Optional[dict] = None,
                 init_attn: Optional[dict] = None,
                 step_emb_channels: int = 0):
        super().__init__()
        init = init or {}
        init_zero = init_zero if init_zero is not None else dict(init_weight=0)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.emb_channels = emb_channels
        self.num_heads = 0 if not attention else num_heads if num_heads is not None else \
            out_channels // channels_per_head
        self.dropout = dropout
        self.skip_scale = skip_scale
        self.adaptive_scale = adaptive_scale
        affine_out = out_channels * (2 if adaptive_scale else 1)

        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, up=up, down=down, resample_filter=resample_filter,
                            **init)
        self.affine = Linear(emb_channels, affine_out, **init)
        if step_emb_channels:
            self.affine_step = Linear(step_emb_channels, affine_out, **init)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3, **init_zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            kernel = 1 if resample_proj or out_channels != in_channels else 0
            self.skip = Conv2d(in_channels, out_channels, kernel=kernel, up=up, down=down,
                               resample_filter=resample_filter, **init)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1,
                              **(init_attn if init_attn is not None else init))
            self.proj = Conv2d(out_channels, out_channels, kernel=1, **init_zero)

    def forward(self, x: Tensor, emb: Tensor, step_emb: Optional[Tensor] = None) -> Tensor:
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        params = self.affine(emb).unsqueeze(2).unsqueeze(3).to(x.dtype)
        step = None
        if step_emb is not None and hasattr(self, 'affine_step'):
            step = self.affine_step(step_emb).unsqueeze(2).unsqueeze(3).to(x.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            x = torch.addcmul(shift, self.norm1(x), scale + 1)
            if step is not None:  # SFD-v: a second scale/shift by the step embedding, then the activation
                s_scale, s_shift = step.chunk(2, dim=1)
                x = torch.addcmul(s_shift, x, s_scale + 1)
            x = F.silu(x)
        else:
            x = x + params if step is None else x + params + step
            x = F.silu(self.norm1(x))
        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        x = (x + (self.skip(orig) if self.skip is not None else orig)) * self.skip_scale
        if self.num_heads:
            n, c = x.shape[:2]
            q, k, v = self.qkv(self.norm2(x)).reshape(n * self.num_heads, c // self.num_heads, 3, -1).unbind(2)
            a = torch.einsum('nqk,nck->ncq', attention_weights(q, k), v)
            x = (self.proj(a.reshape(*x.shape)) + x) * self.skip_scale
        return x
