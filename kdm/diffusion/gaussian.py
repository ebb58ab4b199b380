# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Gaussian likelihood helpers of discrete diffusions: KL between diagonal Gaussians and the discretised decoder
log-likelihood of 8-bit data (Ho et al. 2020; Nichol & Dhariwal 2021)."""
import math

import torch
from torch import Tensor

__all__ = ['mean_flat', 'normal_kl', 'approx_standard_normal_cdf', 'discretized_gaussian_log_likelihood']




def mean_flat(x: Tensor) -> Tensor:
    """Mean over every dimension but the batch dimension."""
    return x.mean(dim=tuple(range(1, x.ndim))) if x.ndim > 1 else x


def normal_kl(mean1, logvar1, mean2, logvar2) -> Tensor:
    """Elementwise ``KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)))`` in nats (arguments broadcast)."""
    ref = next((a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, Tensor)), None)
    if ref is None:
        raise TypeError('normal_kl needs at least one tensor argument')
    logvar1, logvar2 = (a if isinstance(a, Tensor) else torch.as_tensor(a).to(ref) for a in (logvar1, logvar2))
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: Tensor) -> Tensor:
    """The tanh approximation of the standard normal CDF used by the DDPM decoder likelihood."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """Log-likelihood (nats, elementwise) of 8-bit data in [-1, 1] under a Gaussian discretised to bins of 2/255."""
    if not x.shape == means.shape == log_scales.shape:
        raise ValueError(f'shape mismatch: {tuple(x.shape)}, {tuple(means.shape)}, {tuple(log_scales.shape)}')
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))
