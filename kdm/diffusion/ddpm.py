# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Discrete Gaussian diffusion (DDPM / Improved-DDPM / ADM / DDPM-IP), spec ``dkdm_adm.md`` section 1.

Conventions (identical to guided-diffusion, so ADM and DDPM-IP checkpoints behave as published):

* ``T`` steps, 0-indexed ``t = 0 .. T-1``; ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.
* Every per-step array is a float64 numpy array (built once); it is gathered at ``t`` and cast at use
  (float32, or float64 when the data is float64) by :meth:`GaussianDiffusion.gather`.
* ``t`` passed to every method is an index into *this* diffusion. For a respaced diffusion
  (:meth:`GaussianDiffusion.respace`) the network must be called with the ORIGINAL index,
  ``diffusion.model_timesteps(t)`` (= ``timestep_map[t]``); :meth:`training_losses` does that itself, while
  :meth:`p_mean_variance` takes the raw network output, so the caller runs the network (DKDM needs the teacher and
  the student forward passes under its own control)::

      out = diffusion.p_mean_variance(net(x, diffusion.model_timesteps(t)), x, t)

* Learned-range variance (``learn_sigma=True``): the network returns ``2 C`` channels ``[eps, v]`` and
  ``log var = (v+1)/2 log beta_t + (1 - (v+1)/2) log beta~_t`` (clipped posterior log-variance; raw ``v``, no tanh).
"""
import math
from typing import Callable, Dict, Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .betas import BETA_SCHEDULES, betas_for_alpha_bar, get_betas, space_timesteps  # noqa: F401 (re-exported)
from .gaussian import (approx_standard_normal_cdf, discretized_gaussian_log_likelihood, mean_flat,  # noqa: F401
                       normal_kl)

__all__ = [
    'get_betas', 'betas_for_alpha_bar', 'space_timesteps', 'GaussianDiffusion', 'normal_kl',
    'approx_standard_normal_cdf', 'discretized_gaussian_log_likelihood', 'mean_flat', 'create_diffusion'
]

VAR_TYPES = ('learned_range', 'learned', 'fixed_small', 'fixed_large')
MEAN_TYPES = ('eps', 'x0')
LOSS_TYPES = ('mse', 'rescaled_mse', 'kl', 'rescaled_kl')


# ----------------------------------------------------------------------------------------------------------------------
# The diffusion


class GaussianDiffusion:
    """A discrete Gaussian diffusion with the ADM parameterisations.

    Args:
        betas (array-like): 1-D betas in (0, 1], float64 (``get_betas('cosine', 1000)``).
        learn_sigma (bool): The network outputs ``2 C`` channels ``[mean part, v]`` with learned-range variance.
            Without it the variance is fixed (``fixed_large`` = guided-diffusion's default).
        var_type (str, optional): Overrides ``learn_sigma``: ``'learned_range'``, ``'learned'`` (v is the
            log-variance), ``'fixed_small'`` (posterior variance) or ``'fixed_large'`` (betas).
        mean_type (str): ``'eps'`` (ADM) or ``'x0'``: what the first C output channels predict.
        loss_type (str): ``'mse'``, ``'rescaled_mse'`` (vb term times T/1000), ``'kl'`` or ``'rescaled_kl'``.
        rescale_timesteps (bool): Feed ``t * 1000 / T_original`` (float) to the network instead of the integer index.
        timestep_map (sequence of int, optional): Original index of each step (set by :meth:`respace`).
        original_num_steps (int, optional): T of the original diffusion (set by :meth:`respace`).
    """

    def __init__(self,
                 betas,
                 learn_sigma: bool = True,
                 var_type: Optional[str] = None,
                 mean_type: str = 'eps',
                 loss_type: str = 'mse',
                 rescale_timesteps: bool = False,
                 timestep_map: Optional[Sequence[int]] = None,
                 original_num_steps: Optional[int] = None):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError(f'betas must be a non-empty 1-D array, got shape {betas.shape}')
        if not ((betas > 0).all() and (betas <= 1).all()):
            raise ValueError('betas must lie in (0, 1]')
        if var_type is None:
            var_type = 'learned_range' if learn_sigma else 'fixed_large'
        for value, valid, what in ((var_type, VAR_TYPES, 'var_type'), (mean_type, MEAN_TYPES, 'mean_type'),
                                   (loss_type, LOSS_TYPES, 'loss_type')):
            if value not in valid:
                raise ValueError(f'unknown {what} {value!r}; valid values: {", ".join(valid)}')
        self.var_type = var_type
        self.mean_type = mean_type
        self.loss_type = loss_type
        self.rescale_timesteps = bool(rescale_timesteps)
        self.learn_sigma = var_type in ('learned_range', 'learned')

        self.betas = betas
        self.num_timesteps = T = int(betas.shape[0])
        self.timestep_map = np.arange(T, dtype=np.int64) if timestep_map is None else np.asarray(
            timestep_map, dtype=np.int64)
        if self.timestep_map.shape != (T, ):
            raise ValueError(f'timestep_map must have {T} entries, got {self.timestep_map.shape}')
        self.original_num_steps = int(original_num_steps or T)

        alphas = 1.0 - betas
        self.alphas = alphas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        # posterior q(x_{t-1} | x_t, x0); its variance is 0 at t = 0, so the log is clipped to beta~_1 there
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        first = self.posterior_variance[1] if T > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = np.log(betas)
        self.fixed_large_variance = np.append(first, betas[1:])
        # EDM sigma-space level of every step: sigma_t = sqrt(1 - abar_t) / sqrt(abar_t)
        self.sigmas = np.sqrt((1.0 - self.alphas_cumprod) / self.alphas_cumprod)
        self._cache: Dict[tuple, Tensor] = {}

    def __repr__(self) -> str:
        respaced = '' if self.original_num_steps == self.num_timesteps else f' of {self.original_num_steps}'
        return (f'{type(self).__name__}(T={self.num_timesteps}{respaced}, var_type={self.var_type!r}, '
                f'mean_type={self.mean_type!r}, loss_type={self.loss_type!r})')

    # -- gathering ------------------------------------------------------------------------------------------------

    def gather(self, name_or_array: Union[str, np.ndarray], t, like: Tensor):
        """``array[t]`` cast to ``like``'s precision (float64 stays float64, anything else float32), shaped
        ``(N, 1, ..., 1)`` to broadcast against ``like``.

        ``t`` may also be a Python int (every sample at the same step, as in the samplers): the value is then returned
        as a Python float (float64), which saves a gather and broadcasts for free.
        """
        if isinstance(t, (int, np.integer)):
            arr = getattr(self, name_or_array) if isinstance(name_or_array, str) else name_or_array
            return float(arr[int(t)])
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        if isinstance(name_or_array, str):
            key = (name_or_array, like.device, dtype)
            arr = self._cache.get(key)
            if arr is None:
                arr = torch.as_tensor(getattr(self, name_or_array), dtype=torch.float64).to(like.device, dtype)
                self._cache[key] = arr
        else:
            arr = torch.as_tensor(name_or_array, dtype=torch.float64).to(like.device, dtype)
        t = torch.as_tensor(t, device=like.device).long()
        out = arr[t.reshape(-1)]
        return out.reshape(-1, *([1] * (like.ndim - 1)))

    @staticmethod
    def _full(value, like: Tensor) -> Tensor:
        """A gathered coefficient (float or (N, 1, ...) tensor) expanded to ``like``'s shape."""
        if isinstance(value, float):
            return torch.full_like(like, value)
        return value.expand_as(like)

    @staticmethod
    def _axpby(a, x: Tensor, b, y: Tensor) -> Tensor:
        """``a x + b y``; with Python-float coefficients as two kernels (one fused add-with-alpha)."""
        if isinstance(a, float) and isinstance(b, float):
            return torch.add(x * a, y, alpha=b)
        return a * x + b * y

    def _check_t(self, t, x: Tensor):
        if isinstance(t, (int, np.integer)):
            if not 0 <= t < self.num_timesteps:
                raise ValueError(f't must lie in [0, {self.num_timesteps}), got {t}')
            return int(t)
        t = torch.as_tensor(t, device=x.device).long().reshape(-1)
        if t.shape[0] != x.shape[0]:
            raise ValueError(f't has {t.shape[0]} entries but x has batch size {x.shape[0]}')
        return t

    def model_timesteps(self, t: Tensor) -> Tensor:
        """The timesteps to feed the network for indices ``t`` of this diffusion: the original indices
        (``timestep_map[t]``, int64), or ``float(t_orig) * 1000 / T_original`` with ``rescale_timesteps``."""
        t = torch.as_tensor(t).long()
        mapped = torch.as_tensor(self.timestep_map, device=t.device)[t]
        if self.rescale_timesteps:
            return mapped.float() * (1000.0 / self.original_num_steps)
        return mapped

    # -- forward process ------------------------------------------------------------------------------------------

    def q_mean_variance(self, x0: Tensor, t):
        """Mean, variance and log-variance of ``q(x_t | x0)``."""
        mean = self.gather('sqrt_alphas_cumprod', t, x0) * x0
        variance = self._full(1.0 - self.gather('alphas_cumprod', t, x0), x0)
        return mean, variance, self._full(self.gather('log_one_minus_alphas_cumprod', t, x0), x0)

    def q_sample(self, x0: Tensor, t, noise: Optional[Tensor] = None) -> Tensor:
        """Sample ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``."""
        if noise is None:
            noise = torch.randn_like(x0)
        if noise.shape != x0.shape:
            raise ValueError(f'noise shape {tuple(noise.shape)} differs from x0 shape {tuple(x0.shape)}')
        return self.gather('sqrt_alphas_cumprod', t, x0) * x0 + self.gather('sqrt_one_minus_alphas_cumprod', t,
                                                                            x0) * noise

    def q_posterior_mean_variance(self, x0: Tensor, xt: Tensor, t):
        """Mean, variance and clipped log-variance of the posterior ``q(x_{t-1} | x_t, x0)``."""
        if x0.shape != xt.shape:
            raise ValueError(f'x0 shape {tuple(x0.shape)} differs from x_t shape {tuple(xt.shape)}')
        mean = self.gather('posterior_mean_coef1', t, xt) * x0 + self.gather('posterior_mean_coef2', t, xt) * xt
        variance = self._full(self.gather('posterior_variance', t, xt), xt)
        log_variance = self._full(self.gather('posterior_log_variance_clipped', t, xt), xt)
        return mean, variance, log_variance

    # -- parameterisation conversions -----------------------------------------------------------------------------

    def predict_xstart_from_eps(self, xt: Tensor, t, eps: Tensor) -> Tensor:
        """``x0 = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps``."""
        return self._axpby(self.gather('sqrt_recip_alphas_cumprod', t, xt), xt,
                           -self.gather('sqrt_recipm1_alphas_cumprod', t, xt), eps)

    def predict_eps_from_xstart(self, xt: Tensor, t, x0: Tensor) -> Tensor:
        """``eps = (sqrt(1/abar) x_t - x0) / sqrt(1/abar - 1)``."""
        return (self.gather('sqrt_recip_alphas_cumprod', t, xt) * xt - x0) / self.gather(
            'sqrt_recipm1_alphas_cumprod', t, xt)

    # -- reverse process ------------------------------------------------------------------------------------------

    def split_output(self, model_output: Tensor, x: Tensor):
        """Split a raw network output into ``(mean part, variance part or None)``; checks the channel count."""
        C = x.shape[1]
        if self.learn_sigma:
            if model_output.shape[1] != 2 * C:
                raise ValueError(f'{self.var_type} variance needs 2*C = {2 * C} output channels, '
                                 f'got {model_output.shape[1]}')
            return model_output[:, :C], model_output[:, C:]
        if model_output.shape[1] == 2 * C:  # a learn_sigma network sampled with a fixed variance
            return model_output[:, :C], None
        if model_output.shape[1] != C:
            raise ValueError(f'expected {C} (or {2 * C}) output channels, got {model_output.shape[1]}')
        return model_output, None

    def model_log_variance(self, var_values: Optional[Tensor], x: Tensor, t) -> Tensor:
        """Log-variance of ``p(x_{t-1} | x_t)`` for this diffusion's ``var_type``."""
        if self.var_type == 'learned':
            return var_values
        if self.var_type == 'learned_range':
            min_log = self.gather('posterior_log_variance_clipped', t, x)
            max_log = self.gather('log_betas', t, x)
            # v in [-1, 1] spans [beta~_t, beta_t] in log space: frac max + (1 - frac) min, frac = (v + 1) / 2
            if isinstance(min_log, float):
                half = 0.5 * (max_log - min_log)
                return torch.add(var_values * half, min_log + half)
            frac = (var_values + 1) / 2
            return frac * max_log + (1 - frac) * min_log
        name = 'posterior_log_variance_clipped' if self.var_type == 'fixed_small' else 'fixed_large_variance'
        out = self.gather(name, t, x)
        if self.var_type == 'fixed_large':
            out = math.log(out) if isinstance(out, float) else out.log()
        return self._full(out, x)

    def p_mean_variance(self,
                        model_output: Tensor,
                        x: Tensor,
                        t,
                        clip_denoised: bool = True,
                        denoised_fn: Optional[Callable[[Tensor], Tensor]] = None,
                        compute_variance: bool = True) -> Dict[str, Tensor]:
        """``p(x_{t-1} | x_t)`` from a RAW network output (the caller runs the network at
        ``self.model_timesteps(t)``).

        Args:
            model_output (Tensor): (N, C or 2C, ...) network output; with learned variance ``[eps, v]``.
            x (Tensor): (N, C, ...) ``x_t``.
            t (Tensor | int): (N,) int64 indices of this diffusion, or one int for the whole batch.
            clip_denoised (bool): Clamp the predicted x0 to [-1, 1] before forming the mean.
            denoised_fn (callable, optional): Applied to the predicted x0 before the clipping.
            compute_variance (bool): False skips the variance (``variance`` and ``log_variance`` are None), as DDIM
                does not need it.

        Returns:
            dict: ``mean``, ``variance``, ``log_variance`` (of the reverse step), ``pred_xstart`` (processed x0),
            ``pred_xstart_unclipped`` (raw x0 estimate), ``eps`` (the eps prediction; for eps models the raw first
            C output channels) and ``var_values`` (the raw v channels, or None).
        """
        t = self._check_t(t, x)
        mean_part, var_values = self.split_output(model_output, x)
        log_variance = self.model_log_variance(var_values, x, t) if compute_variance else None
        if self.mean_type == 'eps':
            eps = mean_part
            x0 = self.predict_xstart_from_eps(x, t, eps)
        else:
            x0 = mean_part
            eps = self.predict_eps_from_xstart(x, t, x0)
        pred = denoised_fn(x0) if denoised_fn is not None else x0
        if clip_denoised:
            pred = pred.clamp(-1, 1)
        mean = self._axpby(self.gather('posterior_mean_coef1', t, x), pred, self.gather('posterior_mean_coef2', t, x),
                           x)
        return dict(mean=mean, variance=None if log_variance is None else torch.exp(log_variance),
                    log_variance=log_variance, pred_xstart=pred, pred_xstart_unclipped=x0, eps=eps,
                    var_values=var_values)

    @staticmethod
    def _nonzero(t, x: Tensor):
        """1 where t > 0 (no noise is added on the last step): a Python bool for an int t, else a mask."""
        if isinstance(t, int):
            return t != 0
        return (t != 0).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    def p_sample(self,
                 model_output: Tensor,
                 x: Tensor,
                 t,
                 clip_denoised: bool = True,
                 noise: Optional[Tensor] = None,
                 denoised_fn: Optional[Callable] = None) -> Dict[str, Tensor]:
        """One ancestral step ``x_{t-1} = mean + 1[t > 0] exp(log_var / 2) z``; returns ``p_mean_variance``'s dict
        plus ``sample``. With an int ``t == 0`` no noise is drawn."""
        t = self._check_t(t, x)
        out = self.p_mean_variance(model_output, x, t, clip_denoised, denoised_fn)
        nonzero = self._nonzero(t, x)
        if nonzero is False:
            out['sample'] = out['mean']
            return out
        if noise is None:
            noise = torch.randn_like(x)
        std = torch.exp(0.5 * out['log_variance'])
        if nonzero is True:
            out['sample'] = torch.addcmul(out['mean'], std, noise)
        else:
            out['sample'] = out['mean'] + nonzero * std * noise
        return out

    def ddim_sample(self,
                    model_output: Tensor,
                    x: Tensor,
                    t,
                    clip_denoised: bool = True,
                    eta: float = 0.0,
                    noise: Optional[Tensor] = None,
                    denoised_fn: Optional[Callable] = None) -> Dict[str, Tensor]:
        """One DDIM step (Song et al., Eq. 12) from index ``t`` to ``t - 1``; eps is re-derived from the processed
        x0 as in the reference. Returns ``p_mean_variance``'s dict (without the variance) plus ``sample``."""
        t = self._check_t(t, x)
        out = self.p_mean_variance(model_output, x, t, clip_denoised, denoised_fn, compute_variance=False)
        abar = self.gather('alphas_cumprod', t, x)
        abar_prev = self.gather('alphas_cumprod_prev', t, x)
        if isinstance(t, int):
            sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) * math.sqrt(1 - abar / abar_prev)
            c_x0, c_eps = math.sqrt(abar_prev), math.sqrt(max(1 - abar_prev - sigma**2, 0.0))
            # eps = (a x_t - x0) / b folded into the mean: two kernels
            a, b = self.sqrt_recip_alphas_cumprod[t], self.sqrt_recipm1_alphas_cumprod[t]
            mean = torch.add(x * float(c_eps * a / b), out['pred_xstart'], alpha=float(c_x0 - c_eps / b))
        else:
            sigma = eta * torch.sqrt((1 - abar_prev) / (1 - abar)) * torch.sqrt(1 - abar / abar_prev)
            c_x0, c_eps = torch.sqrt(abar_prev), torch.sqrt(1 - abar_prev - sigma**2)
            eps = self.predict_eps_from_xstart(x, t, out['pred_xstart'])
            mean = out['pred_xstart'] * c_x0 + c_eps * eps
        sample = mean
        nonzero = self._nonzero(t, x)
        if eta != 0 and nonzero is not False:
            if noise is None:
                noise = torch.randn_like(x)
            sample = mean + (sigma * noise if nonzero is True else nonzero * sigma * noise)
        out['sample'] = sample
        return out

    # -- training -------------------------------------------------------------------------------------------------

    def vb_terms_bpd(self, model_output: Tensor, x0: Tensor, xt: Tensor, t: Tensor,
                     clip_denoised: bool = False) -> Dict[str, Tensor]:
        """One VLB term in bits/dim per sample: ``KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t))`` for t > 0 and the
        discretised-Gaussian decoder NLL at t = 0. Returns ``output`` (N,) and ``pred_xstart``."""
        true_mean, _, true_log_var = self.q_posterior_mean_variance(x0, xt, t)
        out = self.p_mean_variance(model_output, xt, t, clip_denoised=clip_denoised)
        kl = mean_flat(normal_kl(true_mean, true_log_var, out['mean'], out['log_variance'])) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, means=out['mean'], log_scales=0.5 * out['log_variance'])
        nll = mean_flat(nll) / math.log(2.0)
        t = torch.as_tensor(t, device=x0.device).reshape(-1)
        return dict(output=torch.where(t == 0, nll, kl), pred_xstart=out['pred_xstart'])

    def training_losses(self,
                        model_fn: Callable[..., Tensor],
                        x0: Tensor,
                        t: Tensor,
                        noise: Optional[Tensor] = None,
                        input_perturbation: float = 0.0,
                        model_kwargs: Optional[dict] = None) -> Dict[str, Tensor]:
        """Per-sample training losses of ADM / DDPM-IP (spec 1.4, 1.5).

        The network is called as ``model_fn(x_t, self.model_timesteps(t), **model_kwargs)``. With learned variance
        the hybrid loss is ``loss = mse + vb``: ``mse = mean_{c,h,w}(target - eps_theta)^2`` and ``vb`` the VLB term in
        bits/dim computed from ``[eps_theta.detach(), v]`` without clipping (so only the variance head gets its
        gradient), times T/1000 for ``rescaled_mse``.

        DDPM-IP input perturbation (``input_perturbation`` = gamma > 0): ``x_t`` is built from
        ``noise + gamma * xi``, ``xi ~ N(0, I)``, while the MSE target stays the unperturbed ``noise`` (and ``x0`` the
        VB target). gamma = 0 is plain ADM.

        Returns:
            dict: ``loss``, ``mse`` and ``vb`` (zeros when the variance is fixed), each of shape (N,).
        """
        model_kwargs = model_kwargs or {}
        t = torch.as_tensor(t, device=x0.device).long().reshape(-1)
        if noise is None:
            noise = torch.randn_like(x0)
        used_noise = noise + input_perturbation * torch.randn_like(noise) if input_perturbation else noise
        xt = self.q_sample(x0, t, used_noise)
        model_output = model_fn(xt, self.model_timesteps(t), **model_kwargs)
        if self.loss_type in ('kl', 'rescaled_kl'):
            vb = self.vb_terms_bpd(model_output, x0, xt, t, clip_denoised=False)['output']
            if self.loss_type == 'rescaled_kl':
                vb = vb * self.num_timesteps
            return dict(loss=vb, mse=torch.zeros_like(vb), vb=vb)
        mean_part, var_values = self.split_output(model_output, x0)
        if var_values is not None:
            frozen = torch.cat([mean_part.detach(), var_values], dim=1)
            vb = self.vb_terms_bpd(frozen, x0, xt, t, clip_denoised=False)['output']
            if self.loss_type == 'rescaled_mse':
                vb = vb * (self.num_timesteps / 1000.0)
        else:
            vb = torch.zeros(x0.shape[0], device=x0.device, dtype=mean_part.dtype)
        target = noise if self.mean_type == 'eps' else x0
        mse = mean_flat((target - mean_part) ** 2)
        return dict(loss=mse + vb, mse=mse, vb=vb)

    # -- respacing ------------------------------------------------------------------------------------------------

    def respace(self, use_timesteps: Union[Iterable[int], str, int]) -> 'GaussianDiffusion':
        """A diffusion over a subset of this one's steps (guided-diffusion's ``SpacedDiffusion``).

        ``beta'_k = 1 - abar_{s_k} / abar_{s_{k-1}}`` over the kept indices ``s_0 < ... < s_{K-1}``; every derived
        array is recomputed (so learned-range variance uses the respaced beta', beta~'), and ``timestep_map``
        keeps the ORIGINAL index of each kept step for the network calls (composed with this diffusion's own map).

        Args:
            use_timesteps: indices of this diffusion to keep, or a ``section_counts`` value for
                :func:`space_timesteps` (``'50'``, ``'10,20'``, ``'ddim25'``, ``50``).
        """
        if isinstance(use_timesteps, (str, int, np.integer)):
            use_timesteps = space_timesteps(self.num_timesteps, use_timesteps)
        keep = sorted({int(s) for s in use_timesteps})
        if not keep or keep[0] < 0 or keep[-1] >= self.num_timesteps:
            raise ValueError(f'timesteps to keep must lie in [0, {self.num_timesteps}), got {keep[:3]}..{keep[-3:]}')
        abar = self.alphas_cumprod[keep]
        new_betas = 1.0 - abar / np.append(1.0, abar[:-1])
        return GaussianDiffusion(
            new_betas,
            var_type=self.var_type,
            mean_type=self.mean_type,
            loss_type=self.loss_type,
            rescale_timesteps=self.rescale_timesteps,
            timestep_map=self.timestep_map[keep],
            original_num_steps=self.original_num_steps)


def create_diffusion(schedule: str = 'cosine',
                     steps: int = 1000,
                     learn_sigma: bool = True,
                     timestep_respacing: Union[str, int, Sequence[int], None] = None,
                     **kwargs) -> GaussianDiffusion:
    """A :class:`GaussianDiffusion` from plain settings (what a config or a teacher loader holds).

    Args:
        schedule (str): Beta schedule name for :func:`get_betas`.
        steps (int): Number of diffusion steps T.
        learn_sigma (bool): Learned-range variance (2C output channels).
        timestep_respacing: Optional ``section_counts`` (``'50'``, ``'ddim25'``, ...) to respace right away; None or
            ``''`` keeps all T steps.
        **kwargs: Further :class:`GaussianDiffusion` arguments (``var_type``, ``mean_type``, ``loss_type``,
            ``rescale_timesteps``).
    """
    diffusion = GaussianDiffusion(get_betas(schedule, steps), learn_sigma=learn_sigma, **kwargs)
    if timestep_respacing not in (None, ''):
        diffusion = diffusion.respace(timestep_respacing)
    return diffusion
