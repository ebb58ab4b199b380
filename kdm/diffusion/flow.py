# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Rectified-flow mathematics in both time conventions of the references (spec ``cud_slimflow_rf.md`` 1, 5.1).

==========  ====================================================  =====================================================
convention  ``'rf'``: RectifiedFlow (gnobitab) and SlimFlow code    ``'cud'``: Catch-Up Distillation code
==========  ====================================================  =====================================================
data at     t = 1                                                 t = 0
path        ``x_t = t x + (1 - t) z``                             ``x_t = t z + (1 - t) x``
target      ``v* = x - z`` (data - noise)                         ``v* = z - x`` (noise - data)
generation  forwards, t: eps -> 1                                 backwards, t: 1 -> 0 (Euler) or 1 -> eps (RK45)
time fed    ``999 t``                                             raw ``t``
t training  ``u (1 - 1e-3) + 1e-3``                               ``u (1 - 1e-5) + 1e-5``
==========  ====================================================  =====================================================

Both are EDM sigma-space models in disguise: with ``s = 1 / (1 + sigma)``, ``x_t = s x`` where ``x = x0 + sigma z``;
``t = s`` (rf) or ``t = 1 - s`` (cud), so ``sigma = (1 - t) / t`` (rf) or ``t / (1 - t)`` (cud).
"""
from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = [
    'CONVENTIONS', 'DEFAULT_EPS', 'DEFAULT_TIME_SCALE', 'check_convention', 'interpolate', 'target_velocity',
    'sample_time', 'velocity_to_x0', 'velocity_to_noise', 'x0_to_velocity', 'flow_time_to_sigma',
    'sigma_to_flow_time', 'rectified_flow_loss'
]

CONVENTIONS = ('rf', 'cud')
#: the references' time floor in training (and the RF samplers' start time)
DEFAULT_EPS = {'rf': 1e-3, 'cud': 1e-5}
#: what the reference networks are fed: RF/SlimFlow ``999 t``, CUD the raw ``t``
DEFAULT_TIME_SCALE = {'rf': 999.0, 'cud': 1.0}


def check_convention(convention: str) -> str:
    """Return ``convention`` if it is ``'rf'`` or ``'cud'``; otherwise raise a ValueError naming both."""
    if convention not in CONVENTIONS:
        raise ValueError(f'unknown flow convention {convention!r}; valid: {", ".join(CONVENTIONS)} '
                         "('rf': data at t=1 as RectifiedFlow/SlimFlow, 'cud': data at t=0 as Catch-Up Distillation)")
    return convention


def _bcast(t, like: Tensor) -> Tensor:
    t = torch.as_tensor(t, device=like.device, dtype=like.dtype)
    if t.ndim == 0:
        return t
    return t.reshape(-1, *([1] * (like.ndim - 1)))


def interpolate(x_data: Tensor, noise: Tensor, t, convention: str = 'rf') -> Tensor:
    """The straight path: ``t x + (1 - t) z`` (rf) or ``t z + (1 - t) x`` (cud); ``t`` scalar or (N,)."""
    t = _bcast(t, x_data)
    if check_convention(convention) == 'rf':
        return t * x_data + (1 - t) * noise
    return t * noise + (1 - t) * x_data


def target_velocity(x_data: Tensor, noise: Tensor, convention: str = 'rf') -> Tensor:
    """``d x_t / dt``: ``x - z`` (rf) or ``z - x`` (cud)."""
    return x_data - noise if check_convention(convention) == 'rf' else noise - x_data


def sample_time(n: int,
                eps: Optional[float] = None,
                convention: str = 'rf',
                device=None,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """Training times ``t = u (1 - eps) + eps``, ``u ~ U(0, 1)``; ``eps`` defaults to the reference's
    (1e-3 for rf, 1e-5 for cud)."""
    eps = DEFAULT_EPS[check_convention(convention)] if eps is None else float(eps)
    u = torch.rand(n, device=device, generator=generator)
    return u * (1 - eps) + eps


def velocity_to_x0(x_t: Tensor, t, v: Tensor, convention: str = 'rf') -> Tensor:
    """Data estimate from a velocity: ``x_t + (1 - t) v`` (rf) or ``x_t - t v`` (cud)."""
    t = _bcast(t, x_t)
    return x_t + (1 - t) * v if check_convention(convention) == 'rf' else x_t - t * v


def velocity_to_noise(x_t: Tensor, t, v: Tensor, convention: str = 'rf') -> Tensor:
    """Noise estimate from a velocity: ``x_t - t v`` (rf) or ``x_t + (1 - t) v`` (cud)."""
    t = _bcast(t, x_t)
    return x_t - t * v if check_convention(convention) == 'rf' else x_t + (1 - t) * v


def x0_to_velocity(x_t: Tensor, t, x0: Tensor, convention: str = 'rf') -> Tensor:
    """Velocity from a data estimate: ``(x0 - x_t) / (1 - t)`` (rf, t < 1) or ``(x_t - x0) / t`` (cud, t > 0)."""
    t = _bcast(t, x_t)
    return (x0 - x_t) / (1 - t) if check_convention(convention) == 'rf' else (x_t - x0) / t


def flow_time_to_sigma(t, convention: str = 'rf'):
    """EDM sigma of flow time t: ``(1 - t) / t`` (rf) or ``t / (1 - t)`` (cud)."""
    t = torch.as_tensor(t)
    return (1 - t) / t if check_convention(convention) == 'rf' else t / (1 - t)


def sigma_to_flow_time(sigma, convention: str = 'rf'):
    """Flow time of EDM sigma: ``1 / (1 + sigma)`` (rf) or ``sigma / (1 + sigma)`` (cud)."""
    sigma = torch.as_tensor(sigma)
    return 1 / (1 + sigma) if check_convention(convention) == 'rf' else sigma / (1 + sigma)


def rectified_flow_loss(model: Callable[..., Tensor],
                        x_data: Tensor,
                        noise: Optional[Tensor] = None,
                        t: Optional[Tensor] = None,
                        convention: str = 'rf',
                        eps: Optional[float] = None,
                        time_scale: Optional[float] = None,
                        noise_scale: float = 1.0,
                        model_kwargs: Optional[dict] = None) -> Tensor:
    """The 1-RF loss (``losses.get_rectified_flow_loss_fn`` of RectifiedFlow): per-sample mean squared error
    between ``model(x_t, time_scale * t, **model_kwargs)`` and the straight-path velocity.

    Args:
        model (callable): Raw velocity network.
        x_data (Tensor): (N, ...) data batch in [-1, 1].
        noise (Tensor, optional): ``z``; drawn as ``noise_scale * N(0, I)`` when None.
        t (Tensor, optional): (N,) times; drawn with :func:`sample_time` when None.
        convention (str): ``'rf'`` or ``'cud'``.
        eps (float, optional): Time floor for the drawn t (reference default per convention).
        time_scale (float, optional): Factor on t fed to the network (999 rf, 1 cud by default).
        noise_scale (float): Scale of the drawn noise (RF's ``noise_scale``, 1.0).
        model_kwargs (dict, optional): Extra network arguments (e.g. ``class_labels``).

    Returns:
        Tensor: (N,) loss per sample (the reference then averages over the batch).
    """
    check_convention(convention)
    if noise is None:
        noise = noise_scale * torch.randn_like(x_data)
    if t is None:
        t = sample_time(x_data.shape[0], eps, convention, device=x_data.device)
    time_scale = DEFAULT_TIME_SCALE[convention] if time_scale is None else float(time_scale)
    x_t = interpolate(x_data, noise, t, convention)
    pred = model(x_t, t * time_scale, **(model_kwargs or {}))
    err = (pred - target_velocity(x_data, noise, convention))**2
    return err.reshape(err.shape[0], -1).mean(dim=1)

