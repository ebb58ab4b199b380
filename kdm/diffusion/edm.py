# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""EDM sigma-space preconditioning and training losses (Karras et al. 2022, Table 1; spec ``sid_edm.md`` 2.1, 2.6).

Every wrapper computes ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise, class_labels)`` around a raw network
``F`` held in the attribute ``model`` (so state-dict keys are ``model.*`` exactly as in EDM pickles). The raw network
is called as ``model(x_in, c_noise, class_labels=one_hot_or_None, **model_kwargs)`` (EDM-family call, see
docs/architecture.md); ``c_noise`` has shape (N,).

``model`` is an ``nn.Module`` or a COMPLETE config dict built with ``kdm.registry.MODELS`` (nothing is filled in or
rewritten: the dict must itself give the resolution, ``in_channels``, ``out_channels`` - twice the image channels for
``iDDPMPrecond`` - and ``label_dim`` the network needs).

fp16 follows EDM: with ``use_fp16`` on CUDA the network input is cast to float16 (the network casts its weights),
its output is cast back to float32; sigma, ``x`` and the skip connection stay float32. There is no autocast.
"""
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from kdm.registry import LOSSES, MODELS
from .denoiser import Denoiser, one_hot

__all__ = ['EDMPrecond', 'VPPrecond', 'VEPrecond', 'iDDPMPrecond', 'VPLoss', 'VELoss', 'EDMLoss', 'build_network']


def build_network(model: Union[nn.Module, dict]) -> nn.Module:
    """An ``nn.Module`` as is, or a complete config dict built through ``MODELS`` (no key is added or changed)."""
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, dict):
        return MODELS.build(dict(model))
    raise TypeError(f'model must be an nn.Module or a config dict, got {type(model).__name__}')


class _EDMWrapper(Denoiser):
    """Shared body of the EDM preconditioners: subclasses give ``coefficients(sigma)`` (broadcast sigma)."""

    #: the network returns 2C channels of which the first C are the residual F (iDDPM)
    _first_channels_only: bool = False

    def __init__(self, model, img_resolution, img_channels, label_dim, sigma_min, sigma_max, sigma_data, use_fp16):
        super().__init__(img_channels, img_resolution, label_dim, sigma_min, sigma_max, sigma_data)
        self.use_fp16 = bool(use_fp16)
        self.model = build_network(model)

    def coefficients(self, sigma: Tensor):
        """``(c_skip, c_out, c_in, c_noise)`` for sigma of shape (N, 1, ..., 1); c_noise has shape (N,).

        Abstract: each preconditioning (EDM, VP, VE, iDDPM) implements its Table 1 row.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement coefficients (abstract)')

    def denoise(self, x: Tensor, sigma: Tensor, cond: Optional[Tensor], force_fp32: bool = False,
                **model_kwargs) -> Tensor:
        sigma = sigma.to(torch.float32).reshape(-1, *([1] * (x.ndim - 1)))
        if self.label_dim:
            class_labels = one_hot(cond, self.label_dim) if cond is not None else x.new_zeros(
                x.shape[0], self.label_dim)
        else:
            class_labels = None
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and x.device.type == 'cuda') else torch.float32
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        F_x = self.model((c_in * x).to(dtype), c_noise.reshape(-1), class_labels=class_labels, **model_kwargs)
        if self._first_channels_only:
            F_x = F_x[:, :self.img_channels]
        return c_skip * x + c_out * F_x.to(torch.float32)


@MODELS.register_module()
class EDMPrecond(_EDMWrapper):
    """EDM preconditioning: ``c_skip = sd^2/(s^2+sd^2)``, ``c_out = s sd / sqrt(s^2+sd^2)``,
    ``c_in = 1/sqrt(s^2+sd^2)``, ``c_noise = ln(s)/4``.

    Args:
        model (nn.Module | dict): Raw network F (EDM family call) or its complete config.
        img_resolution (int): Image side length.
        img_channels (int): Image channels C.
        label_dim (int): Number of classes (0 = unconditional).
        sigma_min (float): Smallest supported sigma.
        sigma_max (float): Largest supported sigma.
        sigma_data (float): Expected standard deviation of the training data.
        use_fp16 (bool): Run the network in float16 on CUDA (EDM's manual casting, no autocast).
    """

    def __init__(self,
                 model,
                 img_resolution: int,
                 img_channels: int,
                 label_dim: int = 0,
                 sigma_min: float = 0,
                 sigma_max: float = float('inf'),
                 sigma_data: float = 0.5,
                 use_fp16: bool = False):
        super().__init__(model, img_resolution, img_channels, label_dim, sigma_min, sigma_max, sigma_data, use_fp16)

    def coefficients(self, sigma):
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + sigma**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise


@MODELS.register_module()
class VPPrecond(_EDMWrapper):
    """Variance-preserving (DDPM++) preconditioning of Song et al. in EDM form: ``c_skip = 1``, ``c_out = -s``,
    ``c_in = 1/sqrt(s^2+1)``, ``c_noise = (M-1) t(s)`` with ``s(t) = sqrt(exp(beta_d t^2/2 + beta_min t) - 1)``.

    Args:
        model (nn.Module | dict): Raw eps network or its complete config.
        img_resolution (int): Image side length.
        img_channels (int): Image channels C.
        label_dim (int): Number of classes.
        use_fp16 (bool): Run the network in float16 on CUDA.
        beta_d (float): Extent of the noise level schedule.
        beta_min (float): Initial slope of the noise level schedule.
        M (int): Original number of timesteps of the DDPM formulation.
        epsilon_t (float): Minimum t; sigma_min = s(epsilon_t), sigma_max = s(1).
    """

    def __init__(self,
                 model,
                 img_resolution: int,
                 img_channels: int,
                 label_dim: int = 0,
                 use_fp16: bool = False,
                 beta_d: float = 19.9,
                 beta_min: float = 0.1,
                 M: int = 1000,
                 epsilon_t: float = 1e-5):
        self.beta_d, self.beta_min, self.M, self.epsilon_t = float(beta_d), float(beta_min), int(M), float(epsilon_t)
        super().__init__(model, img_resolution, img_channels, label_dim, float(self.sigma(epsilon_t)),
                         float(self.sigma(1)), 0.5, use_fp16)

    def sigma(self, t):
        """``s(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)``."""
        t = torch.as_tensor(t)
        return ((0.5 * self.beta_d * (t**2) + self.beta_min * t).exp() - 1).sqrt()

    def sigma_inv(self, sigma):
        """``t(s) = (sqrt(beta_min^2 + 2 beta_d ln(1 + s^2)) - beta_min) / beta_d``."""
        sigma = torch.as_tensor(sigma)
        return ((self.beta_min**2 + 2 * self.beta_d * (1 + sigma**2).log()).sqrt() - self.beta_min) / self.beta_d

    def coefficients(self, sigma):
        return 1, -sigma, 1 / (sigma**2 + 1).sqrt(), (self.M - 1) * self.sigma_inv(sigma)


@MODELS.register_module()
class VEPrecond(_EDMWrapper):
    """Variance-exploding (NCSN++) preconditioning: ``c_skip = 1``, ``c_out = s``, ``c_in = 1``, ``c_noise = ln(s/2)``.

    Args:
        model (nn.Module | dict): Raw network or its complete config.
        img_resolution (int): Image side length.
        img_channels (int): Image channels C.
        label_dim (int): Number of classes.
        use_fp16 (bool): Run the network in float16 on CUDA.
        sigma_min (float): Smallest supported sigma.
        sigma_max (float): Largest supported sigma.
    """

    def __init__(self,
                 model,
                 img_resolution: int,
                 img_channels: int,
                 label_dim: int = 0,
                 use_fp16: bool = False,
                 sigma_min: float = 0.02,
                 sigma_max: float = 100):
        super().__init__(model, img_resolution, img_channels, label_dim, sigma_min, sigma_max, 0.5, use_fp16)

    def coefficients(self, sigma):
        return 1, sigma, 1, (0.5 * sigma).log()


@MODELS.register_module()
class iDDPMPrecond(_EDMWrapper):  # noqa: N801 (EDM's name)
    """Improved-DDPM preconditioning: ``c_skip = 1``, ``c_out = -s``, ``c_in = 1/sqrt(s^2+1)``,
    ``c_noise = M - 1 - argmin_j |s - u_j|``. The network outputs 2C channels; the first C are used.

    The buffer ``u`` (M+1 levels, float32, pickled by EDM) is ``u_M = 0``,
    ``u_{j-1} = sqrt((u_j^2 + 1) / max(abar_{j-1} / abar_j, C_1) - 1)``, ``abar_j = sin^2(pi j / (2 M (C_2 + 1)))``.

    Args:
        model (nn.Module | dict): Raw network (2C output channels) or its complete config.
        img_resolution (int): Image side length.
        img_channels (int): Image channels C.
        label_dim (int): Number of classes.
        use_fp16 (bool): Run the network in float16 on CUDA.
        C_1 (float): Timestep adjustment at low noise levels.
        C_2 (float): Timestep adjustment at high noise levels.
        M (int): Original number of timesteps.
    """
    _first_channels_only = True

    def __init__(self,
                 model,
                 img_resolution: int,
                 img_channels: int,
                 label_dim: int = 0,
                 use_fp16: bool = False,
                 C_1: float = 0.001,
                 C_2: float = 0.008,
                 M: int = 1000):
        self.C_1, self.C_2, self.M = float(C_1), float(C_2), int(M)
        u = torch.zeros(self.M + 1)  # float32, the same arithmetic as the reference so buffers agree bit for bit
        for j in range(self.M, 0, -1):
            u[j - 1] = ((u[j]**2 + 1) / (self.alpha_bar(j - 1) / self.alpha_bar(j)).clip(min=self.C_1) - 1).sqrt()
        super().__init__(model, img_resolution, img_channels, label_dim, float(u[self.M - 1]), float(u[0]), 0.5,
                         use_fp16)
        self.register_buffer('u', u)

    def alpha_bar(self, j):
        """``abar_j = sin^2(pi j / (2 M (C_2 + 1)))``."""
        j = torch.as_tensor(j)
        return (0.5 * np.pi * j / self.M / (self.C_2 + 1)).sin()**2

    def round_sigma(self, sigma, return_index: bool = False):
        """Snap sigma to the nearest level ``u_j`` (or return ``j`` with ``return_index``)."""
        sigma = torch.as_tensor(sigma)
        flat = sigma.to(self.u.device, torch.float32).reshape(-1, 1)
        index = (flat - self.u.reshape(1, -1)).abs().argmin(dim=1)
        result = index if return_index else self.u[index].to(sigma.dtype if sigma.is_floating_point() else
                                                              torch.float32)
        return result.reshape(sigma.shape).to(sigma.device)

    def coefficients(self, sigma):
        c_noise = self.M - 1 - self.round_sigma(sigma, return_index=True).to(torch.float32)
        return 1, -sigma, 1 / (sigma**2 + 1).sqrt(), c_noise


# ----------------------------------------------------------------------------------------------------------------------
# Losses: ``loss(denoiser, images, labels=None, augment_labels=None) -> per-element loss`` (EDM training/loss.py).
# ``images`` are the (already augmented) training images; ``augment_labels`` are passed on to the denoiser only when
# given. The caller reduces (EDM: ``loss.sum() * loss_scaling / batch_gpu_total``).


def _sigma_shape(images: Tensor):
    return [images.shape[0]] + [1] * (images.ndim - 1)


def _call(denoiser, x, sigma, labels, augment_labels):
    sigma = sigma.reshape(-1)
    if augment_labels is None:
        return denoiser(x, sigma, labels)
    return denoiser(x, sigma, labels, augment_labels=augment_labels)


@LOSSES.register_module()
class VPLoss:
    """Loss of the VP formulation: ``t ~ U(epsilon_t, 1)``, ``sigma = s_VP(t)``, weight ``1/sigma^2``.

    Args:
        beta_d (float): Extent of the VP noise schedule.
        beta_min (float): Initial slope of the VP noise schedule.
        epsilon_t (float): Minimum t.
    """

    def __init__(self, beta_d: float = 19.9, beta_min: float = 0.1, epsilon_t: float = 1e-5):
        self.beta_d, self.beta_min, self.epsilon_t = beta_d, beta_min, epsilon_t

    def sigma(self, t):
        t = torch.as_tensor(t)
        return ((0.5 * self.beta_d * (t**2) + self.beta_min * t).exp() - 1).sqrt()

    def weight(self, sigma):
        return 1 / torch.as_tensor(sigma)**2

    def __call__(self, denoiser, images: Tensor, labels=None, augment_labels=None) -> Tensor:
        rnd_uniform = torch.rand(_sigma_shape(images), device=images.device)
        sigma = self.sigma(1 + rnd_uniform * (self.epsilon_t - 1))
        n = torch.randn_like(images) * sigma
        D_yn = _call(denoiser, images + n, sigma, labels, augment_labels)
        return self.weight(sigma) * ((D_yn - images)**2)


@LOSSES.register_module()
class VELoss:
    """Loss of the VE formulation: ``sigma = sigma_min (sigma_max / sigma_min)^u``, weight ``1/sigma^2``.

    Args:
        sigma_min (float): Smallest training sigma.
        sigma_max (float): Largest training sigma.
    """

    def __init__(self, sigma_min: float = 0.02, sigma_max: float = 100):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def weight(self, sigma):
        return 1 / torch.as_tensor(sigma)**2

    def __call__(self, denoiser, images: Tensor, labels=None, augment_labels=None) -> Tensor:
        rnd_uniform = torch.rand(_sigma_shape(images), device=images.device)
        sigma = self.sigma_min * ((self.sigma_max / self.sigma_min)**rnd_uniform)
        n = torch.randn_like(images) * sigma
        D_yn = _call(denoiser, images + n, sigma, labels, augment_labels)
        return self.weight(sigma) * ((D_yn - images)**2)


@LOSSES.register_module()
class EDMLoss:
    """EDM loss: ``ln sigma ~ N(P_mean, P_std^2)``, ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2``
    (so ``lambda c_out^2 = 1``; at ``sigma = sd`` the weight is ``2 / sd^2``).

    Args:
        P_mean (float): Mean of ln sigma.
        P_std (float): Standard deviation of ln sigma.
        sigma_data (float): Expected standard deviation of the training data.
    """

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data

    def weight(self, sigma):
        sigma = torch.as_tensor(sigma)
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data)**2

    def __call__(self, denoiser, images: Tensor, labels=None, augment_labels=None) -> Tensor:
        rnd_normal = torch.randn(_sigma_shape(images), device=images.device)
        sigma = (rnd_normal * self.P_std + self.P_mean).exp()
        n = torch.randn_like(images) * sigma
        D_yn = _call(denoiser, images + n, sigma, labels, augment_labels)
        return self.weight(sigma) * ((D_yn - images)**2)

