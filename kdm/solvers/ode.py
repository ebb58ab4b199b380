# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Sigma-space probability-flow ODE solvers (spec ``sfd_solvers.md`` section 3, ``sid_edm.md`` 2.7).

Every solver has the signature ``solver(denoiser, x, sigmas, cond=None, callback=None, **knobs) -> x``:

* ``denoiser(x, sigma, cond) -> x0_hat`` (the Denoiser protocol; any callable of that form). It is called with
  ``sigma`` as an (N,) tensor of ``x``'s dtype and ``cond`` as given.
* ``x``: the state at ``sigmas[0]`` in sigma-space, i.e. ``sigma_max * z`` for fresh noise (SFD and EDM multiply the
  unit latents by ``t_0`` first). Its dtype is kept (EDM samples in float64).
* ``sigmas``: strictly decreasing, non-negative; a final 0 means the last step is the denoising step
  ``x <- D(x; sigma_{N-1})`` (first order, 1 NFE, as every reference does); without it the result is the ODE state at
  the last sigma (SFD's ``denoise_to_zero=False``).
* ``callback({'i', 'x', 'sigma', 'denoised'})`` once per step BEFORE the update: ``x`` is the state at
  ``sigma = sigmas[i]`` (a float) and ``denoised`` its x0 estimate (the AFS value on an AFS step). The final state is
  the return value, so a trajectory is ``[callback xs..., result]``.
* ``return_nfe=True`` returns ``(x, nfe)``: the number of denoiser calls, which is how every paper counts NFE
  (Euler ``N - 1``, Heun / DPM-Solver-2 ``2(N - 1)`` and EDM Heun ``2N - 1`` with a final 0; AFS saves 1;
  classifier-free guidance doubling is the caller's business).
* ``afs=True``: SFD's analytical first step ``d_0 = x / sqrt(1 + sigma_0^2)`` without a network call.

The solvers keep autograd (no ``no_grad``, no in-place updates), so a student can be trained through them (SFD).
"""
import math
from typing import Callable, Optional

import torch
from torch import Tensor

from kdm.registry import SOLVERS
from .utils import afs_derivative, check_order, check_sigmas, dynamic_threshold

__all__ = ['euler', 'heun', 'dpm', 'dpmpp', 'ipndm', 'edm_stochastic']

#: Adams-Bashforth coefficients of iPNDM, newest derivative first
_AB = {1: (1.0, ), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def _result(x, nfe, return_nfe):
    return (x, nfe) if return_nfe else x


def _combine(base: Tensor, *terms) -> Tensor:
    """``base + sum(c * t)`` for Python-float coefficients, as a chain of fused add-with-alpha kernels (the solvers'
    whole arithmetic is a few of these per step, which keeps them within a few percent of a bare denoiser loop)."""
    for c, t in terms:
        if c != 0:
            base = torch.add(base, t, alpha=c)
    return base


def _first_or_denoise(denoiser: Callable, x: Tensor, s: float, cond, afs_step: bool):
    """``(D(x; s), 1)``, or SFD's analytical ``(x - s d_afs, 0)`` (no network call) when ``afs_step``."""
    if afs_step:
        return x - s * afs_derivative(x, s), 0
    return denoiser(x, x.new_full((x.shape[0], ), s), cond).to(x.dtype), 1


@SOLVERS.register_module()
def euler(denoiser: Callable, x: Tensor, sigmas, cond=None, callback=None, *, afs: bool = False,
          return_nfe: bool = False):
    """Euler (= DDIM) in sigma: ``x_{i+1} = x_i + (s_{i+1} - s_i) (x_i - D_i) / s_i``. 1 NFE per step."""
    sig = check_sigmas(sigmas)
    nfe = 0
    for i in range(len(sig) - 1):
        s, s_next = sig[i], sig[i + 1]
        denoised, used = _first_or_denoise(denoiser, x, s, cond, afs and i == 0)
        nfe += used
        if callback is not None:
            callback({'i': i, 'x': x, 'sigma': s, 'denoised': denoised})
        # D + (s_next / s)(x - D) is the Euler step written as one fused op; s_next = 0 gives D exactly
        x = torch.lerp(denoised.to(x.dtype), x, s_next / s)
    return _result(x, nfe, return_nfe)


@SOLVERS.register_module()
def heun(denoiser: Callable, x: Tensor, sigmas, cond=None, callback=None, *, afs: bool = False,
         return_nfe: bool = False):
    """Heun's 2nd-order method (EDM Algorithm 1, deterministic): Euler predictor, trapezoidal corrector with
    ``d' = (x~ - D(x~; s_{i+1})) / s_{i+1}``; plain Euler on a step to sigma = 0. 2 NFE per step."""
    sig = check_sigmas(sigmas)
    n = x.shape[0]
    nfe = 0
    for i in range(len(sig) - 1):
        s, s_next = sig[i], sig[i + 1]
        denoised, used = _first_or_denoise(denoiser, x, s, cond, afs and i == 0)
        nfe += used
        if callback is not None:
            callback({'i': i, 'x': x, 'sigma': s, 'denoised': denoised})
        if s_next == 0:
            x = denoised
            continue
        h = s_next - s
        x_pred = torch.lerp(denoised, x, s_next / s)  # Euler predictor
        denoised_2 = denoiser(x_pred, x.new_full((n, ), s_next), cond).to(x.dtype)
        nfe += 1
        # x + h/2 (d + d') with h d = x~ - x and d' = (x~ - D') / s_next
        b = 0.5 * h / s_next
        x = _combine(x * 0.5, (0.5 + b, x_pred), (-b, denoised_2))
    return _result(x, nfe, return_nfe)


@SOLVERS.register_module()
def dpm(denoiser: Callable, x: Tensor, sigmas, cond=None, callback=None, *, r: float = 0.5, afs: bool = False,
        return_nfe: bool = False):
    """DPM-Solver-2 (single-step, EDM form; SFD ``dpm``): intermediate ``s_m = s_{i+1}^r s_i^(1-r)``,
    ``x~ = x + (s_m - s_i) d_i``, ``x_{i+1} = x + h [d_m / (2r) + (1 - 1/(2r)) d_i]``; Euler on a step to 0.
    2 NFE per step."""
    if not 0 < r <= 1:
        raise ValueError(f'dpm: r must lie in (0, 1], got {r}')
    sig = check_sigmas(sigmas)
    n = x.shape[0]
    nfe = 0
    for i in range(len(sig) - 1):
        s, s_next = sig[i], sig[i + 1]
        denoised, used = _first_or_denoise(denoiser, x, s, cond, afs and i == 0)
        nfe += used
        if callback is not None:
            callback({'i': i, 'x': x, 'sigma': s, 'denoised': denoised})
        if s_next == 0:
            x = denoised
            continue
        h = s_next - s
        s_mid = s_next**r * s**(1 - r)
        x_mid = torch.lerp(denoised, x, s_mid / s)
        denoised_mid = denoiser(x_mid, x.new_full((n, ), s_mid), cond).to(x.dtype)
        nfe += 1
        # x + h [d_mid / (2r) + (1 - 1/(2r)) d]
        a, b = h * (0.5 / r) / s_mid, h * (1 - 0.5 / r) / s
        x = _combine(x * (1 + b) if b else x, (-b, denoised), (a, x_mid), (-a, denoised_mid))
    return _result(x, nfe, return_nfe)


@SOLVERS.register_module()
def ipndm(denoiser: Callable, x: Tensor, sigmas, cond=None, callback=None, *, max_order: int = 4,
          afs: bool = False, return_nfe: bool = False):
    """Improved PNDM (SFD ``ipndm``): Adams-Bashforth on ``d`` with FIXED-step coefficients, order
    ``p = min(max_order, i + 1)`` (1: d, 2: (3d0 - d1)/2, 3: (23d0 - 16d1 + 5d2)/12, 4: (55d0 - 59d1 + 37d2 - 9d3)/24).
    A step to sigma = 0 is the denoising step. 1 NFE per step; ``max_order`` in 1..4."""
    max_order = check_order(max_order, 1, 4, 'ipndm')
    sig = check_sigmas(sigmas)
    n = x.shape[0]
    nfe = 0
    history = []  # newest first
    for i in range(len(sig) - 1):
        s, s_next = sig[i], sig[i + 1]
        if afs and not history:
            d = afs_derivative(x, s)
            denoised = x - s * d
        else:
            denoised = denoiser(x, x.new_full((n, ), s), cond).to(x.dtype)
            nfe += 1
            d = (x - denoised) / s
        if callback is not None:
            callback({'i': i, 'x': x, 'sigma': s, 'denoised': denoised})
        history.insert(0, d)
        del history[max_order:]
        if s_next == 0:
            x = denoised
            continue
        h = s_next - s
        x = _combine(x, *zip((h * c for c in _AB[len(history)]), history))
    return _result(x, nfe, return_nfe)


def _dpmpp_coefficients(p, lams, lam_t, s, s_next, predict_x0, taylor_d2):
    """DPM-Solver(++) multistep update written as ``x_next = scale * x + sum_k c_k m_k`` (m_0 newest).

    With ``h = lam_t - lam_0``, ``r0 = (lam_0 - lam_1) / h``, ``r1 = (lam_1 - lam_2) / h``:
    ``D1_0 = (m0 - m1) / r0``, ``D1_1 = (m1 - m2) / r1``, ``D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1)``,
    ``D2 = (D1_0 - D1_1) / (r0 + r1)`` (times 2 with ``taylor_d2``). Data prediction:
    ``phi_1 = expm1(-h)``, ``phi_2 = phi_1 / h + 1``, ``phi_3 = phi_2 / h - 1/2``;
    p=1 ``(t/s) x - phi_1 m0``; p=2 ``... - phi_1/2 D1_0``; p=3 ``... + phi_2 D1 - phi_3 D2``.
    Noise prediction: ``phi_1 = expm1(h)``, ``phi_2 = phi_1 / h - 1``, ``phi_3 = phi_2 / h - 1/2``;
    p=1 ``x - t phi_1 m0``; p=2 ``... - t phi_1/2 D1_0``; p=3 ``... - t phi_2 D1 - t phi_3 D2``.
    """
    h = lam_t - lams[0]
    vec = lambda *c: [float(v) for v in c] + [0.0] * (3 - len(c))  # noqa: E731 (coefficients on m0, m1, m2)
    m0 = vec(1.0)
    if p >= 2:
        r0 = (lams[0] - lams[1]) / h
        D1_0 = vec(1 / r0, -1 / r0)
    if p == 3:
        r1 = (lams[1] - lams[2]) / h
        D1_1 = vec(0.0, 1 / r1, -1 / r1)
        delta = [a - b for a, b in zip(D1_0, D1_1)]
        D1 = [a + r0 / (r0 + r1) * b for a, b in zip(D1_0, delta)]
        D2 = [(2.0 if taylor_d2 else 1.0) / (r0 + r1) * b for b in delta]
    if predict_x0:
        phi_1 = math.expm1(-h)
        scale, terms = s_next / s, [(-phi_1, m0)]
        if p == 2:
            terms.append((-0.5 * phi_1, D1_0))
        elif p == 3:
            phi_2 = phi_1 / h + 1
            terms += [(phi_2, D1), (-(phi_2 / h - 0.5), D2)]
    else:
        phi_1 = math.expm1(h)
        scale, terms = 1.0, [(-s_next * phi_1, m0)]
        if p == 2:
            terms.append((-0.5 * s_next * phi_1, D1_0))
        elif p == 3:
            phi_2 = phi_1 / h - 1
            terms += [(-s_next * phi_2, D1), (-s_next * (phi_2 / h - 0.5), D2)]
    coeffs = [sum(c * v[k] for c, v in terms) for k in range(3)]
    return scale, coeffs[:p]


@SOLVERS.register_module()
def dpmpp(denoiser: Callable, x: Tensor, sigmas, cond=None, callback=None, *, max_order: int = 3,
          predict_x0: bool = True, lower_order_final: bool = True, thresholding: bool = False,
          afs: bool = False, taylor_d2: bool = False, return_nfe: bool = False):
    """Multistep DPM-Solver++ (``predict_x0=True``) / DPM-Solver (``False``) in sigma-space with
    ``lambda = -ln sigma`` (SFD ``dpmpp``; DPM-Solver++(3M) is ``max_order=3``), orders 1..3.

    Order at step i: ``i + 1`` while the history is short, and with ``lower_order_final`` at most the number of
    remaining steps (..., 3, 2, 1). A step to sigma = 0 is first order (the denoising step).
    ``thresholding=True`` applies SFD's dynamic thresholding to the data predictions (the reference always does for
    ``predict_x0``; off by default here because it changes the ODE). 1 NFE per step.

    Order note: the third-order update is the reference one (DPM-Solver's multistep third-order update, copied by SFD
    and k-diffusion): ``D2 = (D1_0 - D1_1) / (r0 + r1)`` is ``h^2 D''/2``, half the second-derivative term of the
    third-order Taylor expansion, so ``max_order=3`` converges with global order 2 (with a smaller error constant than
    order 2). ``taylor_d2=True`` uses ``2 (D1_0 - D1_1) / (r0 + r1)`` instead (a genuinely third-order step; not what
    the papers ran). The lower-order warm-up steps also cap the asymptotic global order at 2 (docs/benchmarks.md).
    """
    max_order = check_order(max_order, 1, 3, 'dpmpp')
    sig = check_sigmas(sigmas)
    N = len(sig)
    nfe = 0
    models, lams = [], []  # newest first
    for i in range(N - 1):
        s, s_next = sig[i], sig[i + 1]
        denoised, used = _first_or_denoise(denoiser, x, s, cond, afs and not models)
        nfe += used
        if callback is not None:
            callback({'i': i, 'x': x, 'sigma': s, 'denoised': denoised})
        if predict_x0:
            m = dynamic_threshold(denoised) if thresholding else denoised
        else:
            m = (x - denoised) / s
        models.insert(0, m)
        lams.insert(0, -math.log(s))
        del models[max_order:], lams[max_order:]
        if s_next == 0:
            x = m if predict_x0 else denoised
            continue
        if lower_order_final:
            p = i + 1 if i + 1 < max_order else min(max_order, N - (i + 1))
        else:
            p = min(max_order, i + 1)
        p = min(p, len(models))
        scale, coeffs = _dpmpp_coefficients(p, lams, -math.log(s_next), s, s_next, predict_x0, taylor_d2)
        x = _combine(x * scale if scale != 1 else x, *zip(coeffs, models))
    return _result(x, nfe, return_nfe)


@SOLVERS.register_module()
def edm_stochastic(denoiser: Callable, x: Tensor, sigmas, cond=None, callback=None, *, S_churn: float = 0.0,
                   S_min: float = 0.0, S_max: float = float('inf'), S_noise: float = 1.0,
                   randn_like: Optional[Callable[[Tensor], Tensor]] = None, return_nfe: bool = False):
    """EDM's stochastic sampler (Algorithm 2): on steps with ``S_min <= s_i <= S_max`` raise the noise to
    ``s^ = s_i (1 + gamma)``, ``gamma = min(S_churn / N, sqrt(2) - 1)`` (N = number of steps), by adding
    ``sqrt(s^2 - s_i^2) S_noise eps``, then one Heun step from ``s^`` (Euler on the step to 0). ``s^`` is snapped with
    ``denoiser.round_sigma`` when the denoiser has it. With ``S_churn = 0`` this is EDM's deterministic Heun.
    ``randn_like`` draws eps (EDM passes its per-image generator's); the callback reports ``sigma = s^``."""
    sig = check_sigmas(sigmas)
    n = x.shape[0]
    N = len(sig) - 1
    randn_like = torch.randn_like if randn_like is None else randn_like
    round_sigma = getattr(denoiser, 'round_sigma', None)
    nfe = 0
    for i in range(N):
        s, s_next = sig[i], sig[i + 1]
        gamma = min(S_churn / N, math.sqrt(2) - 1) if S_min <= s <= S_max else 0.0
        s_hat = s + gamma * s
        if gamma > 0:
            if round_sigma is not None:
                s_hat = float(round_sigma(torch.as_tensor(s_hat, dtype=torch.float64)))
            x = x + math.sqrt(max(s_hat**2 - s**2, 0.0)) * S_noise * randn_like(x)
        denoised = denoiser(x, x.new_full((n, ), s_hat), cond).to(x.dtype)
        nfe += 1
        if callback is not None:
            callback({'i': i, 'x': x, 'sigma': s_hat, 'denoised': denoised})
        x_next = torch.lerp(denoised, x, s_next / s_hat)  # Euler from s^
        if s_next > 0:
            denoised_2 = denoiser(x_next, x.new_full((n, ), s_next), cond).to(x.dtype)
            nfe += 1
            b = 0.5 * (s_next - s_hat) / s_next  # x^ + h/2 (d + d'), h d = x_next - x^
            x_next = _combine(x * 0.5, (0.5 + b, x_next), (-b, denoised_2))
        x = x_next
    return _result(x, nfe, return_nfe)
