# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Samplers of discrete diffusions on (respaced) timesteps: DDPM ancestral and DDIM (spec ``dkdm_adm.md`` 1.6).

Signature (the registry's, with the discrete meaning of each argument)::

    x0 = ddpm(model, x, timesteps, cond=None, callback=None, *, diffusion=None, clip_denoised=True, ...)
    x0 = ddim(model, x, timesteps, cond=None, callback=None, *, diffusion=None, eta=0.0, clip_denoised=True, ...)

* ``model``: a :class:`~kdm.diffusion.denoiser.DiscreteDenoiser` (its ``net``, ``diffusion`` and
  ``parameterization`` are used; the learned variance of an ADM net is kept), or a raw network
  ``net(x_t, timesteps, y=None)`` together with ``diffusion=``. Any other Denoiser is sampled through
  :class:`~kdm.diffusion.denoiser.EpsView` (give a fixed-variance ``diffusion`` for it).
* ``x``: ``x_T`` in the diffusion's own (variance-preserving) scale, i.e. unit Gaussian noise; NOT sigma-space.
* ``timesteps``: the steps to visit, as indices of ``diffusion`` (original indices for an unrespaced one): a
  section-counts value (``50``, ``'50'``, ``'ddim25'``, ``'10,20'``), a sequence of indices (any order), or None
  (every step). The diffusion is respaced onto them (:meth:`GaussianDiffusion.respace`), so the network is called
  with the original indices and the last step goes to ``x0``. DKDM's protocol is ``ddpm(teacher, noise, 50)``.
* ``callback({'i', 'x', 't', 'sigma', 'denoised'})`` before each step: ``x = x_t`` (VP scale), ``t`` the original
  timestep, ``sigma`` its EDM level ``sqrt(1 - abar) / sqrt(abar)``, ``denoised`` the (clipped) x0 prediction.
* ``return_nfe=True`` returns ``(x, nfe)`` with ``nfe = len(timesteps)`` network calls.
* ``randn_like`` draws the step noise, once per step but the last (which adds none); pass a per-image generator's
  to make results independent of the batch size.

One DDIM step (eta = 0, no clipping) equals one sigma-space Euler step on the same model.
"""
from typing import Callable, Optional

import torch
from torch import Tensor

from kdm.registry import SOLVERS
from kdm.diffusion.ddpm import GaussianDiffusion, space_timesteps
from kdm.diffusion.denoiser import Denoiser, DiscreteDenoiser, EpsView

__all__ = ['ddpm', 'ddim', 'respaced_timesteps']


def respaced_timesteps(T: int, section_counts) -> list:
    """The original timesteps a respaced sampler visits, in sampling (descending) order."""
    return sorted(space_timesteps(T, section_counts), reverse=True)


def _setup(model, diffusion, timesteps):
    parameterization = 'eps'
    if isinstance(model, DiscreteDenoiser):
        diffusion = model.diffusion if diffusion is None else diffusion
        net, parameterization = model.net, model.parameterization
    elif isinstance(model, Denoiser):
        if diffusion is None:
            raise ValueError('sampling a sigma-space Denoiser with a discrete sampler needs diffusion=')
        net = EpsView(model, diffusion)
    else:
        net = model
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError('the discrete samplers need a GaussianDiffusion: pass a DiscreteDenoiser or diffusion=')
    if timesteps is None:
        keep = list(range(diffusion.num_timesteps))
    elif isinstance(timesteps, (str, int)):
        keep = space_timesteps(diffusion.num_timesteps, timesteps)
    else:
        keep = sorted({int(t) for t in torch.as_tensor(timesteps).reshape(-1).tolist()})
        if len(keep) != torch.as_tensor(timesteps).numel():
            raise ValueError(f'timesteps must not repeat, got {timesteps}')
    return net, parameterization, diffusion.respace(keep)


def _call(net, parameterization, sub: GaussianDiffusion, x, k: int, cond):
    ts = torch.full((x.shape[0], ), int(sub.timestep_map[k]), device=x.device, dtype=torch.long)
    if sub.rescale_timesteps:
        ts = ts.float() * (1000.0 / sub.original_num_steps)
    out = net(x, ts) if cond is None else net(x, ts, y=cond)
    if parameterization == 'eps':
        return out
    C = x.shape[1]
    first, rest = out[:, :C], out[:, C:]
    if parameterization == 'v':  # eps = sqrt(abar) v + sqrt(1 - abar) x_t
        eps = sub.gather('sqrt_alphas_cumprod', k, x) * first + sub.gather('sqrt_one_minus_alphas_cumprod', k,
                                                                           x) * x
    else:  # x0
        eps = sub.predict_eps_from_xstart(x, k, first)
    return torch.cat([eps, rest], dim=1) if rest.shape[1] else eps


def _loop(step, model, x, timesteps, cond, callback, diffusion, return_nfe):
    net, parameterization, sub = _setup(model, diffusion, timesteps)
    K = sub.num_timesteps
    for i, k in enumerate(range(K - 1, -1, -1)):
        output = _call(net, parameterization, sub, x, k, cond)
        out = step(sub, output, x, k)  # one int step index for the whole batch: scalar coefficients
        if callback is not None:
            callback({
                'i': i,
                'x': x,
                't': int(sub.timestep_map[k]),
                'sigma': float(sub.sigmas[k]),
                'denoised': out['pred_xstart']
            })
        x = out['sample']
    return (x, K) if return_nfe else x


@SOLVERS.register_module()
def ddpm(model, x: Tensor, timesteps=None, cond=None, callback=None, *, diffusion: Optional[GaussianDiffusion] = None,
         clip_denoised: bool = True, randn_like: Optional[Callable[[Tensor], Tensor]] = None,
         return_nfe: bool = False):
    """DDPM ancestral sampling (``p_sample`` loop) with the diffusion's variance (learned range for ADM nets):
    ``x_{t-1} = mu_theta + 1[t > 0] exp(log_var / 2) z``, x0 clipped to [-1, 1] by default."""
    randn_like = torch.randn_like if randn_like is None else randn_like

    def step(sub, output, x_t, k):
        noise = randn_like(x_t) if k > 0 else None  # the last step adds no noise
        return sub.p_sample(output, x_t, k, clip_denoised=clip_denoised, noise=noise)

    return _loop(step, model, x, timesteps, cond, callback, diffusion, return_nfe)


@SOLVERS.register_module()
def ddim(model, x: Tensor, timesteps=None, cond=None, callback=None, *, diffusion: Optional[GaussianDiffusion] = None,
         eta: float = 0.0, clip_denoised: bool = True, randn_like: Optional[Callable[[Tensor], Tensor]] = None,
         return_nfe: bool = False):
    """DDIM (Song et al., Eq. 12): ``x_{t-1} = sqrt(abar') x0_hat + sqrt(1 - abar' - s^2) eps_hat + s z`` with
    ``s = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar')``; eta = 0 is deterministic."""
    randn_like = torch.randn_like if randn_like is None else randn_like

    def step(sub, output, x_t, k):
        noise = randn_like(x_t) if eta and k > 0 else None
        return sub.ddim_sample(output, x_t, k, clip_denoised=clip_denoised, eta=eta, noise=noise)

    return _loop(step, model, x, timesteps, cond, callback, diffusion, return_nfe)
