# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Building blocks of the EDM-format UNets ``SongUNet`` and ``DhariwalUNet`` (``shared/spec/sid_edm.md`` 2.2).

Written from the equations of the spec. What has to agree with EDM is only the observable contract: attribute
names, parameter and buffer shapes (state dicts and pickled EDM networks map 1:1 onto these modules), the weight
initialisers, and the order of the arithmetic where the numbers depend on it. Parameters live in float32 and are cast
to the dtype of the activations in ``forward``; that is how EDM runs in float16 (spec 1: the preconditioner casts the
network input, every layer follows it).
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['weight_init', 'Linear', 'Conv2d', 'GroupNorm', 'PositionalEmbedding', 'FourierEmbedding', 'UNetBlock',
           'attention_weights', 'step_labels']

# Spec 2.2: (distribution, bound or std as a function of fan_in, fan_out).
_INITIALISERS = {
    'xavier_uniform': ('uniform', lambda fan_in, fan_out: math.sqrt(6 / (fan_in + fan_out))),
    'xavier_normal': ('normal', lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
    'kaiming_uniform': ('uniform', lambda fan_in, fan_out: math.sqrt(3 / fan_in)),
    'kaiming_normal': ('normal', lambda fan_in, fan_out: math.sqrt(1 / fan_in)),
}


def weight_init(shape: Sequence[int], mode: str, fan_in: int, fan_out: int) -> Tensor:
    """Draw a tensor for one of EDM's initialisers.

    ``xavier_uniform``: sqrt(6 / (fan_in + fan_out)) U(-1, 1); ``xavier_normal``: sqrt(2 / (fan_in + fan_out)) N(0, 1);
    ``kaiming_uniform``: sqrt(3 / fan_in) U(-1, 1); ``kaiming_normal``: sqrt(1 / fan_in) N(0, 1).
    """
    if mode not in _INITIALISERS:
        raise ValueError(f'invalid init mode "{mode}"; expected xavier_uniform, xavier_normal, kaiming_uniform or '
                         'kaiming_normal')
    distribution, scale = _INITIALISERS[mode]
    magnitude = scale(fan_in, fan_out)
    if distribution == 'uniform':
        return magnitude * (torch.rand(*shape) * 2 - 1)
    return magnitude * torch.randn(*shape)


def _init_parameter(shape, init_mode, fans, gain):
    """A parameter drawn by :func:`weight_init` and multiplied by ``gain`` (``init_weight`` / ``init_bias``)."""
    return nn.Parameter(weight_init(shape, init_mode, *fans) * gain)


def _as_dtype(tensor: Optional[Tensor], dtype) -> Optional[Tensor]:
    return None if tensor is None else tensor.to(dtype)


class Linear(nn.Module):
    """``y = x W^T + b`` with EDM's initialisers; ``W`` and ``b`` follow the dtype of ``x``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_mode: str = 'kaiming_normal',
                 init_weight: float = 1.0, init_bias: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        fans = (in_features, out_features)
        self.weight = _init_parameter([out_features, in_features], init_mode, fans, init_weight)
        self.bias = _init_parameter([out_features], init_mode, fans, init_bias) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        product = x @ self.weight.to(x.dtype).t()
        return product if self.bias is None else product + self.bias.to(x.dtype)


def _fir_downsample(x: Tensor, fir: Tensor, padding: int) -> Tensor:
    """Depthwise 2x downsampling with the 2-D FIR ``fir`` of shape (1, 1, k, k)."""
    channels = x.shape[1]
    return F.conv2d(x, fir.repeat(channels, 1, 1, 1), stride=2, padding=padding, groups=channels)


def _fir_upsample(x: Tensor, fir: Tensor, padding: int) -> Tensor:
    """Depthwise 2x upsampling (transposed convolution with ``4 fir`` so that the gain stays 1)."""
    channels = x.shape[1]
    return F.conv_transpose2d(x, (fir * 4).repeat(channels, 1, 1, 1), stride=2, padding=padding, groups=channels)


class Conv2d(nn.Module):
    """2-D convolution with optional 2x FIR up- or downsampling (EDM's ``Conv2d``, spec 2.2).

    ``kernel == 0`` gives a pure resampler without weight or bias. The buffer ``resample_filter`` holds the
    normalised outer product ``f f^T / (sum f)^2`` as (1, 1, k, k) and exists only when ``up`` or ``down``. Unfused,
    the resampling runs first (padding ``(k_f - 1) // 2``) and the convolution second (padding ``kernel // 2``).
    ``fused_resample`` (NCSN++'s auxiliary residual path) keeps the spatial size but moves the resampling to the
    other side of the convolution: down = convolve with the combined padding, then a depthwise stride-2 filter of
    the output channels without padding; up = upsample, then convolve, the combined padding split between the two.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, up: bool = False,
                 down: bool = False, resample_filter: Sequence[int] = (1, 1), fused_resample: bool = False,
                 init_mode: str = 'kaiming_normal', init_weight: float = 1.0, init_bias: float = 0.0):
        if up and down:
            raise ValueError('Conv2d resamples either up or down, not both')
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.up, self.down, self.fused_resample = up, down, fused_resample
        fans = (in_channels * kernel * kernel, out_channels * kernel * kernel)
        has_weight = kernel > 0
        self.weight = _init_parameter([out_channels, in_channels, kernel, kernel], init_mode, fans,
                                      init_weight) if has_weight else None
        self.bias = _init_parameter([out_channels], init_mode, fans, init_bias) if has_weight and bias else None
        taps = torch.as_tensor(resample_filter, dtype=torch.float32)
        fir = torch.outer(taps, taps)[None, None] / taps.sum().square()
        self.register_buffer('resample_filter', fir if (up or down) else None)

    def forward(self, x: Tensor) -> Tensor:
        weight = _as_dtype(self.weight, x.dtype)
        fir = _as_dtype(self.resample_filter, x.dtype)
        kernel_pad = 0 if weight is None else weight.shape[-1] // 2
        filter_pad = 0 if fir is None else (fir.shape[-1] - 1) // 2
        if self.fused_resample and weight is not None and self.down:
            x = F.conv2d(x, weight, padding=kernel_pad + filter_pad)
            x = _fir_downsample(x, fir, padding=0)
        elif self.fused_resample and weight is not None and self.up:
            x = _fir_upsample(x, fir, padding=max(filter_pad - kernel_pad, 0))
            x = F.conv2d(x, weight, padding=max(kernel_pad - filter_pad, 0))
        else:
            if self.down:
                x = _fir_downsample(x, fir, padding=filter_pad)
            elif self.up:
                x = _fir_upsample(x, fir, padding=filter_pad)
            if weight is not None:
                x = F.conv2d(x, weight, padding=kernel_pad)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    """Group normalisation over ``min(num_groups, C // min_channels_per_group)`` groups (EDM's ``GroupNorm``)."""

    def __init__(self, num_channels: int, num_groups: int = 32, min_channels_per_group: int = 4, eps: float = 1e-5):
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


def attention_weights(q: Tensor, k: Tensor) -> Tensor:
    """Attention matrix ``softmax_k(q^T k / sqrt(c))`` for ``q, k`` of shape (N, c, L), shape (N, L_q, L_k).

    EDM evaluates it in float32 whatever the activation dtype and returns it in ``q``'s dtype (spec 2.2,
    ``AttentionOp``); autograd through the casts gives the same float32 backward pass.
    """
    keys = (k / math.sqrt(k.shape[1])).to(torch.float32)
    logits = torch.bmm(q.to(torch.float32).transpose(1, 2), keys)
    return logits.softmax(dim=2).to(q.dtype)


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding ``[cos(x f_i), sin(x f_i)]``, ``f_i = (1 / max_positions)^(i / (C/2 - endpoint))``."""

    def __init__(self, num_channels: int, max_positions: int = 10000, endpoint: bool = False):
        super().__init__()
        self.num_channels, self.max_positions, self.endpoint = num_channels, max_positions, endpoint

    def forward(self, x: Tensor) -> Tensor:
        half = self.num_channels // 2
        exponents = torch.arange(half, dtype=torch.float32, device=x.device) / (half - int(self.endpoint))
        frequencies = (1 / self.max_positions)**exponents
        angles = torch.outer(x, frequencies.to(x.dtype))
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features ``[cos(2 pi x f), sin(2 pi x f)]`` with the buffer ``freqs ~ N(0, scale^2)``
    (NCSN++; C/2 frequencies, pickled with the network)."""

    def __init__(self, num_channels: int, scale: float = 16):
        super().__init__()
        self.register_buffer('freqs', torch.randn(num_channels // 2) * scale)

    def forward(self, x: Tensor) -> Tensor:
        angles = torch.outer(x, (2 * math.pi * self.freqs).to(x.dtype))
        return torch.cat([angles.cos(), angles.sin()], dim=1)


def step_labels(step_condition: Union[int, float, Tensor], batch: int, device) -> Tensor:
    """SFD-v's step count (``sfd_solvers.md`` 2.8) as float32 of shape (1,) (broadcast) or (batch,)."""
    steps = torch.as_tensor(step_condition, dtype=torch.float32, device=device).reshape(-1)
    if steps.numel() not in (1, batch):
        raise ValueError(f'step_condition has {steps.numel()} entries for a batch of {batch}')
    return steps


class UNetBlock(nn.Module):
    """EDM's pre-activation residual block with optional 2x resampling and self-attention (spec 2.2).

    Residual branch: ``h = conv0(silu(norm0(x)))`` (conv0 resamples), then the embedding ``p = affine(emb)`` enters
    additively, ``h = silu(norm1(h + p))``, or with ``adaptive_scale`` as scale and shift,
    ``h = silu(shift + norm1(h) (1 + scale))``; then ``h = conv1(dropout(h))``. Output
    ``y = (h + skip(x)) * skip_scale``, where ``skip`` exists when the width or the resolution changes (a 1x1 conv if
    ``resample_proj`` or the width changes, else a pure resampler). Attention, if any:
    ``y = (proj(attend(qkv(norm2(y)))) + y) * skip_scale`` with qkv channels interleaved per head as
    ``(head * C/heads + c) * 3 + j``. ``step_emb_channels > 0`` adds SFD-v's ``affine_step`` (``sfd_solvers.md``
    2.8): additive blocks use ``silu(norm1(h + p + p_step))``, scale/shift blocks modulate once more before the SiLU.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        emb_channels (int): Width of the embedding vector.
        up (bool): Upsample 2x.
        down (bool): Downsample 2x.
        attention (bool): Append self-attention.
        num_heads (int, optional): Attention heads; None: ``out_channels // channels_per_head``.
        channels_per_head (int): Channels per head when ``num_heads`` is None.
        dropout (float): Dropout probability before ``conv1``.
        skip_scale (float): Factor applied after each residual sum.
        eps (float): GroupNorm epsilon.
        resample_filter (Sequence[int]): 1-D FIR taps of the resamplers.
        resample_proj (bool): Give the resampling skip a 1x1 conv even when the width is unchanged.
        adaptive_scale (bool): Scale/shift conditioning instead of additive.
        init (dict, optional): Initialiser kwargs of most layers (default: kaiming_normal).
        init_zero (dict, optional): Initialiser of ``conv1`` and ``proj`` (default: all zeros).
        init_attn (dict, optional): Initialiser of ``qkv`` (default: ``init``).
        step_emb_channels (int): Width of the step embedding, 0 for none.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, up: bool = False, down: bool = False,
                 attention: bool = False, num_heads: Optional[int] = None, channels_per_head: int = 64,
                 dropout: float = 0.0, skip_scale: float = 1.0, eps: float = 1e-5,
                 resample_filter: Sequence[int] = (1, 1), resample_proj: bool = False, adaptive_scale: bool = True,
                 init: Optional[dict] = None, init_zero: Optional[dict] = None, init_attn: Optional[dict] = None,
                 step_emb_channels: int = 0):
        super().__init__()
        init = {} if init is None else init
        init_zero = {'init_weight': 0} if init_zero is None else init_zero
        init_attn = init if init_attn is None else init_attn
        self.in_channels, self.out_channels, self.emb_channels = in_channels, out_channels, emb_channels
        if not attention:
            self.num_heads = 0
        else:
            self.num_heads = out_channels // channels_per_head if num_heads is None else num_heads
        self.dropout, self.skip_scale, self.adaptive_scale = dropout, skip_scale, adaptive_scale
        modulation_width = 2 * out_channels if adaptive_scale else out_channels
        resampling = dict(up=up, down=down, resample_filter=resample_filter)

        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, **resampling, **init)
        self.affine = Linear(emb_channels, modulation_width, **init)
        if step_emb_channels:
            self.affine_step = Linear(step_emb_channels, modulation_width, **init)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3, **init_zero)
        self.skip = None
        if in_channels != out_channels or up or down:
            projects = resample_proj or in_channels != out_channels
            self.skip = Conv2d(in_channels, out_channels, kernel=1 if projects else 0, **resampling, **init)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1, **init_attn)
            self.proj = Conv2d(out_channels, out_channels, kernel=1, **init_zero)

    @staticmethod
    def _as_map(vector: Tensor, dtype) -> Tensor:
        """(N, C) -> (N, C, 1, 1) in the activation dtype."""
        return vector[:, :, None, None].to(dtype)

    def _condition(self, h: Tensor, emb: Tensor, step_emb: Optional[Tensor]) -> Tensor:
        """Inject the embedding(s) into the residual branch and apply the SiLU."""
        modulation = self._as_map(self.affine(emb), h.dtype)
        step_modulation = None
        if step_emb is not None and hasattr(self, 'affine_step'):
            step_modulation = self._as_map(self.affine_step(step_emb), h.dtype)
        if not self.adaptive_scale:
            h = h + modulation
            if step_modulation is not None:
                h = h + step_modulation
            return F.silu(self.norm1(h))
        scale, shift = modulation.chunk(2, dim=1)
        h = torch.addcmul(shift, self.norm1(h), scale + 1)
        if step_modulation is not None:
            step_scale, step_shift = step_modulation.chunk(2, dim=1)
            h = torch.addcmul(step_shift, h, step_scale + 1)
        return F.silu(h)

    def _attend(self, y: Tensor) -> Tensor:
        """Multi-head self-attention on the interleaved qkv layout; returns ``proj(attention output)``."""
        batch, channels, height, width = y.shape
        per_head = channels // self.num_heads
        triples = self.qkv(self.norm2(y)).reshape(batch * self.num_heads, per_head, 3, height * width)
        queries, keys, values = triples.unbind(dim=2)
        weights = attention_weights(queries, keys)  # (N heads, L_q, L_k)
        mixed = torch.bmm(values, weights.transpose(1, 2))  # out[c, q] = sum_k w[q, k] v[c, k]
        return self.proj(mixed.reshape(batch, channels, height, width))

    def forward(self, x: Tensor, emb: Tensor, step_emb: Optional[Tensor] = None) -> Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        h = self._condition(h, emb, step_emb)
        h = self.conv1(F.dropout(h, p=self.dropout, training=self.training))
        shortcut = x if self.skip is None else self.skip(x)
        y = (h + shortcut) * self.skip_scale
        if self.num_heads:
            y = (self._attend(y) + y) * self.skip_scale
        return y
