# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""EDM2's magnitude-preserving UNet and its preconditioner (``shared/spec/sid_edm.md`` section 4).

``EDM2UNet`` has EDM2 ``UNet``'s constructor and keys (``emb_fourier.{freqs,phases}``, ``emb_noise``, ``emb_label``,
``enc.*``, ``dec.*``, ``out_conv``, ``out_gain``) and ``forward(x, noise_labels, class_labels)``. ``EDM2Precond`` is
EDM2's ``Precond`` as a kdm :class:`~kdm.diffusion.denoiser.Denoiser`: attribute ``unet`` plus the learned
log-variance head ``logvar_fourier`` / ``logvar_linear``, so an EDM2 ``ema`` state dict loads 1:1.

Presets (``EDM2_PRESETS``; ``preset='xs' ... 'xxl'`` or ``'edm2-img512-xs'``) fix ``model_channels`` and
``dropout`` of the ImageNet-512 latent models (64x64x4 latents, 1000 classes).

Forced weight normalisation: in training mode every ``MPConv`` renormalises its stored weight in place before use,
as EDM2 does. A method that runs a network several times before one backward pass (SiDA's fake-score network)
builds it with ``force_normalization=False`` and calls :meth:`EDM2UNet.normalize_weights_` once per step instead
(spec section 10, pitfall 13).
"""
import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.diffusion.denoiser import Denoiser, one_hot
from kdm.registry import MODELS

__all__ = ['EDM2UNet', 'EDM2Precond', 'EDM2_PRESETS', 'MPConv', 'MPFourier', 'mp_silu', 'mp_sum', 'mp_cat',
           'normalize']

# model_channels and dropout of EDM2's ImageNet-512 presets (train_edm2.py); parameters: 124.7M ... 1523.2M.
EDM2_PRESETS = {
    'xs': dict(model_channels=128, dropout=0.00),
    's': dict(model_channels=192, dropout=0.00),
    'm': dict(model_channels=256, dropout=0.10),
    'l': dict(model_channels=320, dropout=0.10),
    'xl': dict(model_channels=384, dropout=0.10),
    'xxl': dict(model_channels=448, dropout=0.10),
}


def normalize(x: Tensor, dim: Optional[Sequence[int]] = None, eps: float = 1e-4) -> Tensor:
    """Scale every slice along ``dim`` (default: all but the first) to unit RMS: ``x / (eps + |x| / sqrt(n))``."""
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def resample(x: Tensor, f: Sequence[int] = (1, 1), mode: str = 'keep') -> Tensor:
    """2x up ('up') or down ('down') resampling with the separable FIR filter ``f``; 'keep' is the identity."""
    if mode == 'keep':
        return x
    f = np.float32(f)
    pad = (len(f) - 1) // 2
    f = f / f.sum()
    f = torch.as_tensor(np.outer(f, f)[np.newaxis, np.newaxis, :, :], dtype=x.dtype, device=x.device)
    c = x.shape[1]
    if mode == 'down':
        return F.conv2d(x, f.tile([c, 1, 1, 1]), groups=c, stride=2, padding=(pad, ))
    if mode == 'up':
        return F.conv_transpose2d(x, (f * 4).tile([c, 1, 1, 1]), groups=c, stride=2, padding=(pad, ))
    raise ValueError(f'resample mode must be keep, up or down, got {mode!r}')


def mp_silu(x: Tensor) -> Tensor:
    """Magnitude-preserving SiLU: ``silu(x) / 0.596``."""
    return F.silu(x) / 0.596


def mp_sum(a: Tensor, b: Tensor, t: float = 0.5) -> Tensor:
    """Magnitude-preserving blend ``lerp(a, b, t) / sqrt((1 - t)^2 + t^2)``."""
    return a.lerp(b, t) / math.sqrt((1 - t)**2 + t**2)


def mp_cat(a: Tensor, b: Tensor, dim: int = 1, t: float = 0.5) -> Tensor:
    """Magnitude-preserving concatenation with relative weight ``t`` on ``b``."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t)**2 + t**2))
    wa = c / math.sqrt(na) * (1 - t)
    wb = c / math.sqrt(nb) * t
    return torch.cat([wa * a, wb * b], dim=dim)


class MPFourier(nn.Module):
    """``sqrt(2) cos(x f + p)`` with buffers ``freqs = 2 pi N(0, 1) bandwidth`` and ``phases = 2 pi U(0, 1)``."""

    def __init__(self, num_channels: int, bandwidth: float = 1):
        super().__init__()
        self.register_buffer('freqs', 2 * np.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer('phases', 2 * np.pi * torch.rand(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        y = x.to(torch.float32).reshape(-1).ger(self.freqs.to(torch.float32))
        y = (y + self.phases.to(torch.float32)).cos() * math.sqrt(2)
        return y.to(x.dtype)


class MPConv(nn.Module):
    """Magnitude-preserving linear (``kernel=[]``) or 2-D convolution with weight normalisation.

    The weight (``N(0, 1)`` at init) is normalised per output channel and scaled by ``gain / sqrt(fan_in)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int]):
        super().__init__()
        self.out_channels = out_channels
        self.force_normalization = True
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))

    def forward(self, x: Tensor, gain: float = 1) -> Tensor:
        w = self.weight.to(torch.float32)
        if self.training and self.force_normalization:
            with torch.no_grad():
                self.weight.copy_(normalize(w))  # forced weight normalisation
        w = normalize(w) * (gain / math.sqrt(w[0].numel()))
        w = w.to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=(w.shape[-1] // 2, ))


class Block(nn.Module):
    """EDM2 encoder / decoder block: resample, (enc: skip conv + pixel norm), residual branch modulated by the
    embedding, magnitude-preserving sum, optional attention, activation clipping (spec 4.2)."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 emb_channels: int,
                 flavor: str = 'enc',
                 resample_mode: str = 'keep',
                 resample_filter: Sequence[int] = (1, 1),
                 attention: bool = False,
                 channels_per_head: int = 64,
                 dropout: float = 0.0,
                 res_balance: float = 0.3,
                 attn_balance: float = 0.3,
                 clip_act: Optional[float] = 256):
        super().__init__()
        if flavor not in ('enc', 'dec'):
            raise ValueError(f'flavor must be enc or dec, got {flavor!r}')
        self.out_channels = out_channels
        self.flavor = flavor
        self.resample_filter = list(resample_filter)
        self.resample_mode = resample_mode
        self.num_heads = out_channels // channels_per_head if attention else 0
        self.dropout = dropout
        self.res_balance = res_balance
        self.attn_balance = attn_balance
        self.clip_act = clip_act
        self.emb_gain = nn.Parameter(torch.zeros([]))
        self.conv_res0 = MPConv(out_channels if flavor == 'enc' else in_channels, out_channels, kernel=[3, 3])
        self.emb_linear = MPConv(emb_channels, out_channels, kernel=[])
        self.conv_res1 = MPConv(out_channels, out_channels, kernel=[3, 3])
        self.conv_skip = MPConv(in_channels, out_channels, kernel=[1, 1]) if in_channels != out_channels else None
        self.attn_qkv = MPConv(out_channels, out_channels * 3, kernel=[1, 1]) if self.num_heads else None
        self.attn_proj = MPConv(out_channels, out_channels, kernel=[1, 1]) if self.num_heads else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = resample(x, f=self.resample_filter, mode=self.resample_mode)
        if self.flavor == 'enc':
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=[1])  # pixel norm

        y = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = mp_silu(y * c.unsqueeze(2).unsqueeze(3).to(y.dtype))
        if self.training and self.dropout:
            y = F.dropout(y, p=self.dropout)
        y = self.conv_res1(y)

        if self.flavor == 'dec' and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, t=self.res_balance)

        if self.num_heads:
            y = self.attn_qkv(x)
            y = y.reshape(y.shape[0], self.num_heads, -1, 3, y.shape[2] * y.shape[3])
            q, k, v = normalize(y, dim=[2]).unbind(3)  # pixel norm, then split (interleaved layout)
            w = torch.einsum('nhcq,nhck->nhqk', q, k / math.sqrt(q.shape[2])).softmax(dim=3)
            y = torch.einsum('nhqk,nhck->nhcq', w, v)
            x = mp_sum(x, self.attn_proj(y.reshape(*x.shape)), t=self.attn_balance)

        if self.clip_act is not None:
            x = x.clamp(-self.clip_act, self.clip_act)
        return x


def _resolve_preset(preset: Optional[str], model_channels: Optional[int], dropout: Optional[float]):
    if preset is None:
        return (192 if model_channels is None else model_channels), (0.0 if dropout is None else dropout)
    name = preset.lower().replace('edm2-img512-', '')
    if name not in EDM2_PRESETS:
        raise ValueError(f'unknown EDM2 preset {preset!r}; expected one of {sorted(EDM2_PRESETS)}')
    p = EDM2_PRESETS[name]
    for key, value in (('model_channels', model_channels), ('dropout', dropout)):
        if value is not None and value != p[key]:
            raise ValueError(f'EDM2 preset {preset!r} sets {key}={p[key]}, but {key}={value} was given')
    return p['model_channels'], p['dropout']


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
        block_kwargs['dropout'] = dropout
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        cblock = [model_channels * m for m in channel_mult]
        cnoise = model_channels * channel_mult_noise if channel_mult_noise is not None else cblock[0]
        cemb = model_channels * channel_mult_emb if channel_mult_emb is not None else max(cblock)
        self.label_balance = label_balance
        self.concat_balance = concat_balance
        self.out_gain = nn.Parameter(torch.zeros([]))

        self.emb_fourier = MPFourier(cnoise)
        self.emb_noise = MPConv(cnoise, cemb, kernel=[])
        self.emb_label = MPConv(label_dim, cemb, kernel=[]) if label_dim else None

        self.enc = nn.ModuleDict()
        cout = img_channels + 1
        for level, channels in enumerate(cblock):
            res = img_resolution >> level
            if level == 0:
                self.enc[f'{res}x{res}_conv'] = MPConv(cout, channels, kernel=[3, 3])
                cout = channels
            else:
                self.enc[f'{res}x{res}_down'] = Block(cout, cout, cemb, flavor='enc', resample_mode='down',
                                                      **block_kwargs)
            for idx in range(num_blocks):
                self.enc[f'{res}x{res}_block{idx}'] = Block(cout, channels, cemb, flavor='enc',
                                                            attention=res in attn_resolutions, **block_kwargs)
                cout = channels

        self.dec = nn.ModuleDict()
        skips = [block.out_channels for block in self.enc.values()]
        for level, channels in reversed(list(enumerate(cblock))):
            res = img_resolution >> level
            if level == len(cblock) - 1:
                self.dec[f'{res}x{res}_in0'] = Block(cout, cout, cemb, flavor='dec', attention=True, **block_kwargs)
                self.dec[f'{res}x{res}_in1'] = Block(cout, cout, cemb, flavor='dec', **block_kwargs)
            else:
                self.dec[f'{res}x{res}_up'] = Block(cout, cout, cemb, flavor='dec', resample_mode='up',
                                                    **block_kwargs)
            for idx in range(num_blocks + 1):
                self.dec[f'{res}x{res}_block{idx}'] = Block(cout + skips.pop(), channels, cemb, flavor='dec',
                                                            attention=res in attn_resolutions, **block_kwargs)
                cout = channels
        self.out_conv = MPConv(cout, img_channels, kernel=[3, 3])
        self.set_force_normalization(force_normalization)

    def set_force_normalization(self, enabled: bool) -> None:
        """Turn the in-``forward`` forced weight normalisation of every ``MPConv`` on or off."""
        for m in self.modules():
            if isinstance(m, MPConv):
                m.force_normalization = enabled

    @torch.no_grad()
    def normalize_weights_(self) -> None:
        """Apply EDM2's forced weight normalisation to every ``MPConv`` weight once (in place)."""
        for m in self.modules():
            if isinstance(m, MPConv):
                m.weight.copy_(normalize(m.weight.to(torch.float32)))

    def forward(self, x: Tensor, noise_labels: Tensor, class_labels: Optional[Tensor]) -> Tensor:
        emb = self.emb_noise(self.emb_fourier(noise_labels))
        if self.emb_label is not None:
            if class_labels is None:
                class_labels = torch.zeros(1, self.label_dim, device=x.device)
            labels = class_labels.to(emb.dtype)
            emb = mp_sum(emb, self.emb_label(labels * math.sqrt(labels.shape[1])), t=self.label_balance)
        emb = mp_silu(emb)
        if emb.shape[0] == 1 and x.shape[0] != 1:
            emb = emb.expand(x.shape[0], -1)

        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        skips = []
        for name, block in self.enc.items():
            x = block(x) if 'conv' in name else block(x, emb)
            skips.append(x)
        for name, block in self.dec.items():
            if 'block' in name:
                x = mp_cat(x, skips.pop(), t=self.concat_balance)
            x = block(x, emb)
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

    def __init__(self,
                 img_resolution: int = 64,
                 img_channels: int = 4,
                 label_dim: int = 1000,
                 use_fp16: bool = True,
                 sigma_data: float = 0.5,
                 logvar_channels: int = 128,
                 **unet_kwargs):
        super().__init__(img_channels=img_channels, img_resolution=img_resolution, label_dim=label_dim,
                         sigma_min=0.0, sigma_max=math.inf, sigma_data=sigma_data)
        self.use_fp16 = use_fp16
        self.unet = EDM2UNet(img_resolution=img_resolution, img_channels=img_channels, label_dim=label_dim,
                             **unet_kwargs)
        if logvar_channels:
            self.logvar_fourier = MPFourier(logvar_channels)
            self.logvar_linear = MPConv(logvar_channels, 1, kernel=[])

    def denoise(self, x: Tensor, sigma: Tensor, cond: Optional[Tensor], force_fp32: bool = False) -> Tensor:
        labels = one_hot(cond, self.label_dim)
        if labels is None and self.label_dim:
            labels = torch.zeros(1, self.label_dim, device=x.device)
        s = sigma.reshape(-1, 1, 1, 1)
        sd = self.sigma_data
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + s**2).sqrt()
        c_noise = sigma.log() / 4
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and x.device.type == 'cuda') else torch.float32
        f = self.unet((c_in * x).to(dtype), c_noise, labels)
        return c_skip * x + c_out * f.to(torch.float32)

    def logvar(self, sigma: Tensor) -> Tensor:
        """The learned log-variance ``u(sigma)`` of shape (N, 1, 1, 1)."""
        if not hasattr(self, 'logvar_linear'):
            raise AttributeError('this EDM2Precond was built with logvar_channels=0 (no uncertainty head)')
        c_noise = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).log() / 4
        return self.logvar_linear(self.logvar_fourier(c_noise)).reshape(-1, 1, 1, 1)

    def forward(self, x: Tensor, sigma, cond: Optional[Tensor] = None, return_logvar: bool = False, **kwargs):
        """``D(x; sigma, cond)``; with ``return_logvar`` also ``u(sigma)`` (EDM2's ``return_logvar=True``)."""
        d = super().forward(x, sigma, cond, **kwargs)
        if not return_logvar:
            return d
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        return d, self.logvar(sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma)
