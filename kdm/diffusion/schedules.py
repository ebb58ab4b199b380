# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Step schedules, registered in ``SCHEDULES`` (spec ``sfd_solvers.md`` section 4, ``sid_edm.md`` 2.7).

Sigma schedules return a strictly decreasing float64 tensor of ``n`` stamps from ``sigma_max`` to ``sigma_min``
(``u = i / (n - 1)``; the two ends are set exactly, except by ``discrete``, which goes through its table), followed by
a final 0 when ``append_zero`` (EDM's ``t_N = 0``; the solvers then end with a
denoising step). ``n`` stamps give ``n`` steps with ``append_zero`` and ``n - 1`` without (SFD's ``num_steps``).

Flow-time schedules (``flow_uniform``, ``flow_rho``) return ``n + 1`` flow times for ``n`` steps, ascending for the
``'rf'`` convention (t: eps -> 1) and descending for ``'cud'`` (t: 1 -> eps).

AFS (SFD's analytical first step) is not a schedule: it is the ``afs`` flag of the sigma-space solvers.

Use :func:`get_schedule` to look one up by name (unknown names list the valid ones).
"""
import math
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from kdm.registry import SCHEDULES

__all__ = [
    'polynomial', 'karras', 'logsnr', 'time_uniform', 'discrete', 'respaced', 'flow_uniform', 'flow_rho',
    'get_schedule', 'DiscreteTimeTable'
]


def _finish(values, append_zero: bool, device, dtype, ends=None) -> Tensor:
    values = np.array(values, dtype=np.float64)
    if ends is not None and values.size > 1:  # pin the end stamps exactly (the formulas are off by an ulp or so)
        values[0], values[-1] = ends
    sig = torch.as_tensor(values, dtype=torch.float64)
    if append_zero:
        sig = torch.cat([sig, sig.new_zeros(1)])
    return sig.to(device=device, dtype=dtype)


def _check_range(n, sigma_min, sigma_max, positive_min=True):
    if int(n) != n or n < 1:
        raise ValueError(f'the number of stamps n must be a positive integer, got {n}')
    if not (math.isfinite(sigma_max) and sigma_max > 0):
        raise ValueError(f'sigma_max must be finite and positive, got {sigma_max}')
    if positive_min and not sigma_min > 0:
        raise ValueError(f'sigma_min must be positive for this schedule, got {sigma_min}')
    if sigma_min < 0 or sigma_min >= sigma_max:
        raise ValueError(f'need 0 <= sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}')


def _u(n):
    return np.arange(n, dtype=np.float64) / max(n - 1, 1)


@SCHEDULES.register_module(name=['polynomial', 'karras'])
def polynomial(n: int,
               sigma_min: float = 0.002,
               sigma_max: float = 80.0,
               rho: float = 7.0,
               append_zero: bool = True,
               device=None,
               dtype=torch.float64) -> Tensor:
    """EDM / Karras: ``t_i = (sigma_max^(1/rho) + u (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``."""
    _check_range(n, sigma_min, sigma_max, positive_min=False)
    if rho <= 0:
        raise ValueError(f'rho must be positive, got {rho}')
    a, b = sigma_max**(1 / rho), sigma_min**(1 / rho)
    return _finish((a + _u(n) * (b - a))**rho, append_zero, device, dtype, (sigma_max, sigma_min))


karras = polynomial


@SCHEDULES.register_module()
def logsnr(n: int,
           sigma_min: float = 0.002,
           sigma_max: float = 80.0,
           append_zero: bool = True,
           device=None,
           dtype=torch.float64) -> Tensor:
    """Uniform in ``lambda = -ln sigma``: ``t_i = sigma_max^(1-u) sigma_min^u``."""
    _check_range(n, sigma_min, sigma_max)
    lam = -math.log(sigma_max) + _u(n) * (math.log(sigma_max) - math.log(sigma_min))
    return _finish(np.exp(-lam), append_zero, device, dtype, (sigma_max, sigma_min))


@SCHEDULES.register_module()
def time_uniform(n: int,
                 sigma_min: float = 0.002,
                 sigma_max: float = 80.0,
                 rho: float = 1.0,
                 eps_s: float = 1e-3,
                 append_zero: bool = True,
                 device=None,
                 dtype=torch.float64) -> Tensor:
    """DPM-Solver's uniform time of a VP-SDE fitted to [sigma_min, sigma_max] (SFD's ``time_uniform``):
    ``beta_d = 2 (ln(sigma_min^2+1)/eps_s - ln(sigma_max^2+1)) / (eps_s - 1)``,
    ``beta_min = ln(sigma_max^2+1) - beta_d/2``, ``tau_i = (1 + u (eps_s^(1/rho) - 1))^rho``,
    ``t_i = sqrt(exp(beta_d tau_i^2 / 2 + beta_min tau_i) - 1)``. rho = 1 is uniform in tau."""
    _check_range(n, sigma_min, sigma_max)
    vp_d = 2 * (math.log(sigma_min**2 + 1) / eps_s - math.log(sigma_max**2 + 1)) / (eps_s - 1)
    vp_min = math.log(sigma_max**2 + 1) - 0.5 * vp_d
    tau = (1 + _u(n) * (eps_s**(1 / rho) - 1))**rho
    return _finish(np.sqrt(np.exp(0.5 * vp_d * tau**2 + vp_min * tau) - 1), append_zero, device, dtype,
                   (sigma_max, sigma_min))


class DiscreteTimeTable:
    """Continuous time ``tau in (0, 1]`` on a discrete ``abar`` table (DPM-Solver's ``NoiseScheduleVP('discrete')``,
    used by SFD's ``discrete`` schedule): ``tau_j = (j + 1) / T``, ``log alpha`` piecewise linear in tau (linearly
    extrapolated outside), ``sigma(tau) = sqrt(1 - alpha^2) / alpha``."""

    def __init__(self, alphas_cumprod):
        abar = np.asarray(alphas_cumprod, dtype=np.float64)
        T = abar.shape[0]
        self.taus = np.linspace(0.0, 1.0, T + 1)[1:]
        self.log_alphas = 0.5 * np.log(abar)

    @staticmethod
    def _interp(x, xp, fp):
        x = np.asarray(x, dtype=np.float64)
        y = np.interp(x, xp, fp)
        lo, hi = x < xp[0], x > xp[-1]
        y = np.where(lo, fp[0] + (x - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0]), y)
        return np.where(hi, fp[-1] + (x - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2]), y)

    def sigma(self, tau):
        log_alpha = self._interp(tau, self.taus, self.log_alphas)
        return np.sqrt(np.exp(-2 * log_alpha) - 1)

    def sigma_inv(self, sigma):
        lam = -np.log(np.asarray(sigma, dtype=np.float64))
        log_alpha = -0.5 * np.logaddexp(0, -2 * lam)
        # log_alphas decrease with tau: interpolate on the reversed (ascending) table
        return self._interp(log_alpha, self.log_alphas[::-1], self.taus[::-1])


def _abar_of(diffusion):
    if diffusion is None:
        raise ValueError('the discrete schedule needs the discrete diffusion: pass diffusion= (a GaussianDiffusion, '
                         'a DiscreteDenoiser or an alphas_cumprod array)')
    inner = getattr(diffusion, 'diffusion', diffusion)
    return getattr(inner, 'alphas_cumprod', inner)


@SCHEDULES.register_module()
def discrete(n: int,
             sigma_min: float = 0.002,
             sigma_max: float = 80.0,
             rho: float = 1.0,
             diffusion=None,
             append_zero: bool = True,
             device=None,
             dtype=torch.float64) -> Tensor:
    """SFD's ``discrete`` schedule for discrete-time teachers: ``tau_min = sigma_inv(sigma_min)``,
    ``tau_max = sigma_inv(sigma_max)``, ``tau_i = (tau_max + u (tau_min^(1/rho) - tau_max))^rho``,
    ``t_i = sigma(tau_i)`` on :class:`DiscreteTimeTable`.

    As in the reference, ``tau_max`` is not raised to ``1/rho``: for rho != 1 the schedule does not start at
    sigma_max (spec pitfall 9.2.4); keep rho = 1 (the default here).
    """
    _check_range(n, sigma_min, sigma_max)
    table = DiscreteTimeTable(_abar_of(diffusion))
    tau_min, tau_max = float(table.sigma_inv(sigma_min)), float(table.sigma_inv(sigma_max))
    tau = (tau_max + _u(n) * (tau_min**(1 / rho) - tau_max))**rho
    return _finish(table.sigma(tau), append_zero, device, dtype)


@SCHEDULES.register_module()
def respaced(n, diffusion=None, append_zero: bool = True, device=None, dtype=torch.float64) -> Tensor:
    """The exact levels ``sigma_t = sqrt((1 - abar_t) / abar_t)`` at the timesteps a respaced sampler visits
    (``space_timesteps(T, n)``; ``n`` an int or a section-counts string such as ``'ddim25'``), descending."""
    from .ddpm import space_timesteps
    abar = np.asarray(_abar_of(diffusion), dtype=np.float64)
    keep = space_timesteps(abar.shape[0], n)
    sig = np.sqrt((1 - abar[keep]) / abar[keep])[::-1]
    return _finish(sig.copy(), append_zero, device, dtype)


def _flow_eps(eps, convention):
    from .flow import check_convention
    check_convention(convention)
    if eps is None:
        return 1e-3 if convention == 'rf' else 0.0
    if not 0 <= eps < 1:
        raise ValueError(f'eps must lie in [0, 1), got {eps}')
    return float(eps)


@SCHEDULES.register_module()
def flow_uniform(n: int, eps: Optional[float] = None, convention: str = 'rf', device=None,
                 dtype=torch.float64) -> Tensor:
    """``n + 1`` uniform flow times: ``eps + i/n (1 - eps)`` ascending (rf, RectifiedFlow/SlimFlow Euler grid;
    eps 1e-3) or ``1 - i/n (1 - eps)`` descending (cud; eps 0 = CUD's Euler ``t_i = i/N``, 1e-3 for its RK45)."""
    if int(n) != n or n < 1:
        raise ValueError(f'the number of steps n must be a positive integer, got {n}')
    eps = _flow_eps(eps, convention)
    frac = np.arange(n + 1, dtype=np.float64) / n
    t = eps + frac * (1 - eps) if convention == 'rf' else 1 - frac * (1 - eps)
    return torch.as_tensor(t, dtype=torch.float64).to(device=device, dtype=dtype)


@SCHEDULES.register_module()
def flow_rho(n: int,
             eps: Optional[float] = None,
             rho: float = 1.0,
             convention: str = 'rf',
             device=None,
             dtype=torch.float64) -> Tensor:
    """SlimFlow's Heun grid ``t_i = (eps^rho + i/n (1 - eps^rho))^(1/rho)`` (rf, ascending); rho = 1 is uniform.
    For cud the same spacing is mirrored onto 1 -> eps (``t -> 1 + eps - t``)."""
    if int(n) != n or n < 1:
        raise ValueError(f'the number of steps n must be a positive integer, got {n}')
    if rho <= 0:
        raise ValueError(f'rho must be positive, got {rho}')
    eps = _flow_eps(eps, convention)
    if eps == 0 and rho != 1:
        raise ValueError('flow_rho with rho != 1 needs eps > 0')
    frac = np.arange(n + 1, dtype=np.float64) / n
    t = (eps**rho + frac * (1 - eps**rho))**(1 / rho)
    if convention == 'cud':
        t = 1 + eps - t
    return torch.as_tensor(t, dtype=torch.float64).to(device=device, dtype=dtype)


def get_schedule(name: str) -> Callable[..., Tensor]:
    """The schedule function registered under ``name``; an unknown name raises a KeyError listing the valid ones."""
    fn = SCHEDULES.get(name)
    if fn is None:
        valid = ', '.join(sorted(SCHEDULES.module_dict))
        raise KeyError(f'unknown schedule {name!r}; valid schedules: {valid}')
    return fn
