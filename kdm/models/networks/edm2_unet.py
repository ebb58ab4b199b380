# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""EDM2's magnitude-preserving UNet and its preconditioner (``shared/spec/sid_edm.md`` section 4).

``EDM2UNet`` has EDM2 ``UNet``'s constructor and keys (``emb_fourier.{freqs,phases}``, ``emb_noise``, ``emb_label``,
``enc.*``, ``dec.*``, ``out_conv``, ``out_gain``) and ``forward(x, noise_labels, class_labels)``. ``EDM2Precond`` is
EDM2's ``Precond`` as a kdm :class:`~kdm.diffusion.denoiser.Denoiser`: attribute ``unet`` plus the learned
log-variance head ``logvar_fourier`` / ``logvar_linear``, so an EDM2 ``ema`` state dict loads 1:1.

Presets (``EDM2_PRESETS``; ``preset='xs' ... 'xxl'`` or ``'edm2-img512-xs'``) fix ``model_channels`` and
``dropout`` of the ImageNet-512 latent models (64x64x4 latents, 1000 classes; spec 4.3).

Forced weight normalisation: in training mode every ``MPConv`` renormalises its stored weight in place before use,
as EDM2 does. A method that runs a network several times before one backward pass (SiDA's fake-score network)
builds it with ``force_normalization=False`` and calls :meth:`EDM2UNet.normalize_weights_` once per step instead
(spec section 10, pitfall 13).

Written from the equations of spec 4.1-4.2 (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of
Diffusion Models"); every helper below names the equation it implements.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.diffusion.denoiser import Denoiser, one_hot
from kdm.registry import MODELS
from .song_unet import layer_kind, resolution_tags

__all__ = ['EDM2UNet', 'EDM2Precond', 'EDM2_PRESETS', 'MPConv', 'MPFourier', 'mp_silu', 'mp_sum', 'mp_cat', 'normalize']

#: spec 4.3: the ImageNet-512 sizes (everything else is shared)
EDM2_PRESETS = {
    'xs': dict(model_channels=128, dropout=0.0),
    's': dict(model_channels=192, dropout=0.0),
    'm': dict(model_channels=256, dropout=0.1),
    'l': dict(model_channels=320, dropout=0.1),
    'xl': dict(model_channels=384, dropout=0.1),
    'xxl': dict(model_channels=448, dropout=0.1),
}

# ---------------------------------------------------------------------------------------------------------------------
# Magnitude-preserving primitives (spec 4.1)


def normalize(x: Tensor, dim: Optional[Sequence[int]] = None, eps: float = 1e-4) -> Tensor:
    """Scale every slice along ``dim`` (default: all but the first) to unit RMS: ``x / (eps + |x| / sqrt(n))``."""
    if dim is None:
        dim = list(range(1, x.ndim))
    length = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    rms = torch.add(eps, length, alpha=math.sqrt(length.numel() / x.numel()))  # |x| / sqrt(n), n = slice size
    return x / rms.to(x.dtype)


def resample(x: Tensor, f: Sequence[int] = (1, 1), mode: str = 'keep') -> Tensor:
    """2x up ('up') or down ('down') resampling with the separable FIR filter ``f``; 'keep' is the identity."""
    if mode == 'keep':
        return x
    if mode not in ('up', 'down'):
        raise ValueError(f'resample mode must be keep, up or down, got {mode!r}')
    taps = torch.as_tensor(f, dtype=torch.float32)
    taps = taps / taps.sum()
    kernel = torch.outer(taps, taps).to(device=x.device, dtype=x.dtype)[None, None]
    channels, padding = x.shape[1], (len(f) - 1) // 2
    if mode == 'down':
        return F.conv2d(x, kernel.repeat(channels, 1, 1, 1), stride=2, padding=padding, groups=channels)
    return F.conv_transpose2d(x, (kernel * 4).repeat(channels, 1, 1, 1), stride=2, padding=padding, groups=channels)


def mp_silu(x: Tensor) -> Tensor:
    """Magnitude-preserving SiLU: ``silu(x) / 0.596`` (0.596 = E[silu(z)^2]^(1/2), z ~ N(0, 1))."""
    return F.silu(x) / 0.596


def mp_sum(a: Tensor, b: Tensor, t: float = 0.5) -> Tensor:
    """Magnitude-preserving blend ``lerp(a, b, t) / sqrt((1 - t)^2 + t^2)``."""
    return a.lerp(b, t) / math.sqrt((1 - t)**2 + t**2)


def mp_cat(a: Tensor, b: Tensor, dim: int = 1, t: float = 0.5) -> Tensor:
    """Magnitude-preserving concatenation with relative weight ``t`` on ``b``:
    ``[a C (1 - t) / sqrt(N_a), b C t / sqrt(N_b)]``, ``C = sqrt((N_a + N_b) / ((1 - t)^2 + t^2))``."""
    size_a, size_b = a.shape[dim], b.shape[dim]
    total_gain = math.sqrt((size_a + size_b) / ((1 - t)**2 + t**2))
    gain_a = total_gain / math.sqrt(size_a) * (1 - t)
    gain_b = total_gain / math.sqrt(size_b) * t
    return torch.cat([gain_a * a, gain_b * b], dim=dim)


class MPFourier(nn.Module):
    """``sqrt(2) cos(x f + p)`` with buffers ``freqs = 2 pi N(0, 1) bandwidth`` and ``phases = 2 pi U(0, 1)``."""

    def __init__(self, num_channels: int, bandwidth: float = 1):
        super().__init__()
        self.register_buffer('freqs', 2 * math.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer('phases', 2 * math.pi * torch.rand(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        angles = torch.outer(x.to(torch.float32), self.freqs.to(torch.float32)) + self.phases.to(torch.float32)
        return (angles.cos() * math.sqrt(2)).to(x.dtype)


class MPConv(nn.Module):
    """Magnitude-preserving linear (``kernel=[]``) or 2-D convolution with weight normalisation.

    The weight (``N(0, 1)`` at init) is normalised per output channel and scaled by ``gain / sqrt(fan_in)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int]):
        super().__init__()
        self.out_channels = out_channels
        self.force_normalization = True
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))

    def forward(self, x: Tensor, gain: float = 1) -> Tensor:
        weight = self.weight.to(torch.float32)
        if self.training and self.force_normalization:  # forced weight normalisation (spec 4.1)
            with torch.no_grad():
                self.weight.copy_(normalize(weight))
        weight = normalize(weight) * (gain / math.sqrt(weight[0].numel()))
        weight = weight.to(x.dtype)
        if weight.ndim == 2:
            return x @ weight.t()
        return F.conv2d(x, weight, padding=weight.shape[-1] // 2)


# ---------------------------------------------------------------------------------------------------------------------
# Block and UNet (spec 4.2)


class Block(nn.Module):
    """EDM2 encoder / decoder block: resample, (enc: skip conv + pixel norm), residual branch modulated by the
    embedding, magnitude-preserving sum, optional attention, activation clipping (spec 4.2)."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, flavor: str = 'enc',
                 resample_mode: str = 'keep', resample_filter: Sequence[int] = (1, 1), attention: bool = False,
                 channels_per_head: int = 64, dropout: float = 0.0, res_balance: float = 0.3,
                 attn_balance: float = 0.3, clip_act: Optional[float] = 256):
        if flavor not in ('enc', 'dec'):
            raise ValueError(f'flavor must be enc or dec, got {flavor!r}')
        if resample_mode not in ('keep', 'up', 'down'):
            raise ValueError(f'resample mode must be keep, up or down, got {resample_mode!r}')
        super().__init__()
        self.out_channels, self.flavor = out_channels, flavor
        self.resample_filter, self.resample_mode = list(resample_filter), resample_mode
        self.num_heads = (out_channels // channels_per_head) * int(attention)
        self.dropout, self.res_balance, self.attn_balance, self.clip_act = dropout, res_balance, attn_balance, clip_act
        self.emb_gain = nn.Parameter(torch.zeros([]))
        # The encoder projects the width before the residual branch, the decoder after it.
        branch_in = out_channels if flavor == 'enc' else in_channels
        needs_projection = in_channels != out_channels
        self.conv_res0 = MPConv(branch_in, out_channels, (3, 3))
        self.emb_linear = MPConv(emb_channels, out_channels, ())
        self.conv_res1 = MPConv(out_channels, out_channels, (3, 3))
        self.conv_skip = MPConv(in_channels, out_channels, (1, 1)) if needs_projection else None
        self.attn_qkv = MPConv(out_channels, 3 * out_channels, (1, 1)) if self.num_heads else None
        self.attn_proj = MPConv(out_channels, out_channels, (1, 1)) if self.num_heads else None

    def _project(self, x: Tensor) -> Tensor:
        return x if self.conv_skip is None else self.conv_skip(x)

    def _attention(self, x: Tensor) -> Tensor:
        """Heads on the interleaved qkv layout; q, k, v are normalised per pixel and head (cosine attention)."""
        batch, channels, height, width = x.shape
        qkv = self.attn_qkv(x).reshape(batch, self.num_heads, -1, 3, height * width)
        queries, keys, values = normalize(qkv, dim=2).unbind(dim=3)  # each (N, heads, c, L)
        logits = queries.transpose(2, 3) @ (keys / math.sqrt(queries.shape[2]))  # (N, heads, L_q, L_k)
        mixed = values @ logits.softmax(dim=3).transpose(2, 3)  # out[c, q] = sum_k w[q, k] v[c, k]
        return self.attn_proj(mixed.reshape(batch, channels, height, width))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = resample(x, self.resample_filter, self.resample_mode)
        if self.flavor == 'enc':
            x = normalize(self._project(x), dim=1)  # pixel norm
        residual = self.conv_res0(mp_silu(x))
        scale = self.emb_linear(emb, gain=self.emb_gain) + 1
        residual = mp_silu(residual * scale[:, :, None, None].to(residual.dtype))
        if self.training and self.dropout:
            residual = F.dropout(residual, p=self.dropout)
        residual = self.conv_res1(residual)
        if self.flavor == 'dec':
            x = self._project(x)
        x = mp_sum(x, residual, t=self.res_balance)
        if self.num_heads:
            x = mp_sum(x, self._attention(x), t=self.attn_balance)
        if self.clip_act is not None:
            x = x.clamp(-self.clip_act, self.clip_act)
        return x


def _resolve_preset(preset: Optional[str], model_channels: Optional[int], dropout: Optional[float]):
    """``(model_channels, dropout)`` from a preset name and/or explicit values (defaults 192 and 0)."""
    if preset is None:
        return 192 if model_channels is None else model_channels, 0.0 if dropout is None else dropout
    name = preset.lower()
    name = name[len('edm2-img512-'):] if name.startswith('edm2-img512-') else name
    if name not in EDM2_PRESETS:
        raise ValueError(f'unknown EDM2 preset {preset!r}; expected one of {sorted(EDM2_PRESETS)}')
    fixed = EDM2_PRESETS[name]
    for key, given in (('model_channels', model_channels), ('dropout', dropout)):
        if given is not None and given != fixed[key]:
            raise ValueError(f'EDM2 preset {preset!r} sets {key}={fixed[key]}, but {key}={given} was given')
    return fixed['model_channels'], fixed['dropout']


@MODELS.register_module()
class EDM2UNet(nn.Module):
    """EDM2's magnitude-preserving UNet (Karras et al. 2024).

    Args:
        img_resolution (int): Input side length (64 for the ImageNet-512 latents).
        img_channels (int): Input and output channels (4 for SD-VAE latents).
        label_dim (int): Number of classes, 0 for unconditional.
        model_channels (int, optional): Base channel count; from ``preset`` or 192.
        channel_mult (Sequence[int]): Channel multiplier per resolution.
        channel_mult_noise (int, optional): Noise embedding width multiplier; None: ``channel_mult[0]``.
        channel_mult_emb (int, optional): Embedding width multiplier; None: ``max(channel_mult)``.
        num_blocks (int): Blocks per resolution.
        attn_resolutions (Sequence[int]): Resolutions with attention.
        label_balance (float): ``mp_sum`` weight of the label embedding.
        concat_balance (float): ``mp_cat`` weight of the skip connections.
        preset (str, optional): ``'xs'``, ``'s'``, ``'m'``, ``'l'``, ``'xl'`` or ``'xxl'`` (``EDM2_PRESETS``).
        dropout (float, optional): Dropout in the blocks; from ``preset`` or 0.
        force_normalization (bool): Forced weight normalisation inside ``forward`` in training mode.
        **block_kwargs: ``resample_filter``, ``channels_per_head``, ``res_balance``, ``attn_balance``,
            ``clip_act`` of :class:`Block`.
    """

    def __init__(self,
                 img_resolution: int = 64,
                 img_channels: int = 4,
                 label_dim: int = 1000,
                 model_channels: Optional[int] = None,
                 channel_mult: Sequence[int] = (1, 2, 3, 4),
                 channel_mult_noise: Optional[int] = None,
                 channel_mult_emb: Optional[int] = None,
                 num_blocks: int = 3,
                 attn_resolutions: Sequence[int] = (16, 8),
                 label_balance: float = 0.5,
                 concat_balance: float = 0.5,
                 preset: Optional[str] = None,
                 dropout: Optional[float] = None,
                 force_normalization: bool = True,
                 **block_kwargs):
        super().__init__()
        model_channels, dropout = _resolve_preset(preset, model_channels, dropout)
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.label_balance, self.concat_balance = label_balance, concat_balance
        widths = [model_channels * mult for mult in channel_mult]
        noise_width = widths[0] if channel_mult_noise is None else model_channels * channel_mult_noise
        emb_width = max(widths) if channel_mult_emb is None else model_channels * channel_mult_emb
        tags = resolution_tags(img_resolution, len(channel_mult))
        attends = [img_resolution >> level in attn_resolutions for level in range(len(channel_mult))]

        def block(width_in, width_out, flavor, **kwargs):
            return Block(width_in, width_out, emb_width, flavor=flavor, dropout=dropout, **block_kwargs, **kwargs)

        self.out_gain = nn.Parameter(torch.zeros([]))
        self.emb_fourier = MPFourier(noise_width)
        self.emb_noise = MPConv(noise_width, emb_width, kernel=[])
        self.emb_label = MPConv(label_dim, emb_width, kernel=[]) if label_dim else None

        # Encoder: stem conv on [x, 1], then per level (a downsampling block and) num_blocks blocks.
        self.enc = nn.ModuleDict()
        self.enc[f'{tags[0]}_conv'] = MPConv(img_channels + 1, widths[0], kernel=[3, 3])
        stack = [widths[0]]
        for level, tag in enumerate(tags):
            if level > 0:
                self.enc[f'{tag}_down'] = block(stack[-1], stack[-1], 'enc', resample_mode='down')
                stack.append(stack[-1])
            for index in range(num_blocks):
                self.enc[f'{tag}_block{index}'] = block(stack[-1], widths[level], 'enc', attention=attends[level])
                stack.append(widths[level])

        # Decoder: bottleneck pair or an upsampling block, then num_blocks + 1 blocks fed mp_cat(x, skip).
        self.dec = nn.ModuleDict()
        width = stack[-1]
        for level in reversed(range(len(tags))):
            tag = tags[level]
            if level == len(tags) - 1:
                self.dec[f'{tag}_in0'] = block(width, width, 'dec', attention=True)
                self.dec[f'{tag}_in1'] = block(width, width, 'dec')
            else:
                self.dec[f'{tag}_up'] = block(width, width, 'dec', resample_mode='up')
            for index in range(num_blocks + 1):
                self.dec[f'{tag}_block{index}'] = block(width + stack.pop(), widths[level], 'dec',
                                                        attention=attends[level])
                width = widths[level]
        self.out_conv = MPConv(width, img_channels, kernel=[3, 3])
        self.set_force_normalization(force_normalization)

    def _mp_convs(self):
        return [module for module in self.modules() if isinstance(module, MPConv)]

    def set_force_normalization(self, enabled: bool):
        """Turn the in-``forward`` forced weight normalisation of every ``MPConv`` on or off."""
        for conv in self._mp_convs():
            conv.force_normalization = bool(enabled)

    @torch.no_grad()
    def normalize_weights_(self):
        """Apply EDM2's forced weight normalisation to every ``MPConv`` weight once (in place)."""
        for conv in self._mp_convs():
            conv.weight.copy_(normalize(conv.weight.to(torch.float32)))

    def forward(self, x: Tensor, noise_labels: Tensor, class_labels: Optional[Tensor]) -> Tensor:
        emb = self.emb_noise(self.emb_fourier(noise_labels))  # spec 4.2: noise embedding
        if self.label_dim:
            if class_labels is None:  # no label: the zero vector, whose embedding is zero
                class_labels = emb.new_zeros(1, self.label_dim)
            label_emb = self.emb_label(class_labels * math.sqrt(self.label_dim))
            emb = mp_sum(emb, label_emb, t=self.label_balance)
        emb = mp_silu(emb)

        constant = x.new_ones([x.shape[0], 1, *x.shape[2:]])  # lets the bias-free stem learn an offset
        x = torch.cat([x, constant], dim=1)
        stack = []
        for key, layer in self.enc.items():
            x = layer(x) if layer_kind(key) == 'conv' else layer(x, emb)
            stack.append(x)
        for key, layer in self.dec.items():
            if layer_kind(key) == 'block':
                x = mp_cat(x, stack.pop(), t=self.concat_balance)
            x = layer(x, emb)
        return self.out_conv(x, gain=self.out_gain)


@MODELS.register_module()
class EDM2Precond(Denoiser):
    """EDM2's preconditioned denoiser ``D = c_skip x + c_out unet(c_in x, ln(sigma) / 4, c)`` with its learned
    uncertainty head ``u(sigma) = logvar_linear(logvar_fourier(ln(sigma) / 4))``.

    Args:
        img_resolution (int): Side length of the (latent) images.
        img_channels (int): Channels of the (latent) images.
        label_dim (int): Number of classes, 0 for unconditional.
        use_fp16 (bool): Run the UNet in float16 on CUDA (float32 master weights).
        sigma_data (float): Data standard deviation.
        logvar_channels (int): Fourier features of the log-variance head; 0 omits the head (SiD generators).
        **unet_kwargs: Arguments of :class:`EDM2UNet` (``model_channels``, ``dropout``, ``preset``, ...).
    """

    def __init__(self, img_resolution: int = 64, img_channels: int = 4, label_dim: int = 1000, use_fp16: bool = True,
                 sigma_data: float = 0.5, logvar_channels: int = 128, **unet_kwargs):
        super().__init__(img_channels, img_resolution, label_dim, sigma_min=0.0, sigma_max=math.inf,
                         sigma_data=sigma_data)
        self.use_fp16 = bool(use_fp16)
        self.unet = EDM2UNet(img_resolution=img_resolution, img_channels=img_channels, label_dim=label_dim,
                             **unet_kwargs)
        if logvar_channels:
            self.logvar_fourier = MPFourier(logvar_channels)
            self.logvar_linear = MPConv(logvar_channels, 1, kernel=[])

    def denoise(self, x: Tensor, sigma: Tensor, cond: Optional[Tensor], force_fp32: bool = False) -> Tensor:
        sigma = sigma.reshape(-1, 1, 1, 1).to(torch.float32)
        labels = one_hot(cond, self.label_dim)
        if self.label_dim and labels is None:
            labels = x.new_zeros(1, self.label_dim, dtype=torch.float32)
        half = self.use_fp16 and not force_fp32 and x.device.type == 'cuda'
        # EDM preconditioning (spec 2.1): c_skip, c_out, c_in, c_noise
        variance = sigma**2 + self.sigma_data**2
        c_skip = self.sigma_data**2 / variance
        c_out = sigma * self.sigma_data / variance.sqrt()
        c_in = 1 / variance.sqrt()
        c_noise = sigma.reshape(-1).log() / 4
        net_out = self.unet((c_in * x).to(torch.float16 if half else torch.float32), c_noise, labels)
        return c_skip * x + c_out * net_out.to(torch.float32)

    def _check_logvar_head(self):
        if 'logvar_linear' not in self._modules:
            raise AttributeError('this EDM2Precond was built with logvar_channels=0 (no uncertainty head)')

    def logvar(self, sigma: Tensor) -> Tensor:
        """The learned log-variance ``u(sigma)`` of shape (N, 1, 1, 1)."""
        self._check_logvar_head()
        c_noise = sigma.to(torch.float32).reshape(-1).log() / 4
        return self.logvar_linear(self.logvar_fourier(c_noise)).reshape(-1, 1, 1, 1)

    def forward(self, x: Tensor, sigma, cond: Optional[Tensor] = None, return_logvar: bool = False, **kwargs):
        """``D(x; sigma, cond)``; with ``return_logvar`` also ``u(sigma)`` (EDM2's ``return_logvar=True``)."""
        if return_logvar:
            self._check_logvar_head()
        denoised = super().forward(x, sigma, cond, **kwargs)
        if not return_logvar:
            return denoised
        sigma = torch.as_tensor(sigma, device=x.device).to(torch.float32).reshape(-1)
        return denoised, self.logvar(sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma)
