# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Flow-time ODE solvers for rectified flows (spec ``cud_slimflow_rf.md`` 2.7, 4.9, 5.4).

Signature (the registry's, in flow time)::

    x = flow_euler(velocity, x, times, cond=None, callback=None, *, convention='rf', ...)

* ``velocity``: a :class:`~kdm.diffusion.denoiser.FlowDenoiser` (its native ``velocity`` is used), any other Denoiser
  (sampled through :class:`~kdm.diffusion.denoiser.VelocityView` in ``convention``), or a plain function
  ``v(x_t, t, cond)`` (``t`` an (N,) tensor of flow times; called as ``v(x_t, t)`` when ``cond`` is None).
* ``x``: the state at ``times[0]`` (pure noise ``z`` at the noise end: t = eps for rf, t = 1 for cud).
* ``times``: strictly monotonic flow times in [0, 1] (``SCHEDULES`` ``flow_uniform`` / ``flow_rho``); integration goes
  from ``times[0]`` to ``times[-1]`` in either direction (rf generation ascends, cud generation descends).
* ``callback({'i', 'x', 't', 'v', 'sigma', 'denoised'})`` before each step: the state at ``t = times[i]``, its velocity,
  the EDM sigma of t and the data estimate (``x_t + (1 - t) v`` rf, ``x_t - t v`` cud).
* ``return_nfe=True`` returns ``(x, nfe)``, the number of velocity evaluations (RK45: scipy's ``nfev``).

Heun in flow time does NOT coincide with Heun in sigma-space (only Euler does), which is why the papers' flow
samplers live here.
"""
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from kdm.diffusion.denoiser import Denoiser, FlowDenoiser, VelocityView
from kdm.diffusion.flow import check_convention, flow_time_to_sigma, velocity_to_x0
from kdm.registry import SOLVERS
from .utils import check_times

__all__ = ['flow_euler', 'flow_heun', 'rk45']


def _velocity_fn(velocity, convention: str) -> Callable:
    if isinstance(velocity, FlowDenoiser):
        if velocity.convention != convention:
            raise ValueError(f'the FlowDenoiser uses the {velocity.convention!r} convention but the solver was '
                             f'asked for {convention!r}')
        return velocity.velocity
    if isinstance(velocity, Denoiser):
        return VelocityView(velocity, convention)
    return velocity


def _eval(v_fn, x, t: float, cond):
    tt = x.new_full((x.shape[0], ), t)
    out = v_fn(x, tt) if cond is None else v_fn(x, tt, cond)
    return out.to(x.dtype)


def _sigma_of(t: float, convention: str) -> float:
    noise_end, data_end = (0.0, 1.0) if convention == 'rf' else (1.0, 0.0)
    if t == noise_end:
        return float('inf')
    if t == data_end:
        return 0.0
    return float(flow_time_to_sigma(torch.tensor(t, dtype=torch.float64), convention))


def _report(callback, i, x, t, v, convention):
    if callback is not None:
        callback({
            'i': i,
            'x': x,
            't': t,
            'v': v,
            'sigma': _sigma_of(t, convention),
            'denoised': velocity_to_x0(x, t, v, convention)
        })


@SOLVERS.register_module()
def flow_euler(velocity, x: Tensor, times, cond=None, callback=None, *, convention: str = 'rf',
               fixed_dt: Optional[float] = None, return_nfe: bool = False):
    """Euler in flow time, ``x <- x + (t_{i+1} - t_i) v(x, t_i)``. ``fixed_dt`` replaces the step by a constant to
    reproduce RectifiedFlow's sampler exactly (it steps ``dt = 1/N`` on the grid ``eps + i (1 - eps)/N``). 1 NFE per
    step."""
    check_convention(convention)
    ts = check_times(times)
    v_fn = _velocity_fn(velocity, convention)
    for i in range(len(ts) - 1):
        v = _eval(v_fn, x, ts[i], cond)
        _report(callback, i, x, ts[i], v, convention)
        x = x + (ts[i + 1] - ts[i] if fixed_dt is None else fixed_dt) * v
    n = len(ts) - 1
    return (x, n) if return_nfe else x


@SOLVERS.register_module()
def flow_heun(velocity, x: Tensor, times, cond=None, callback=None, *, convention: str = 'rf',
              final_euler: bool = True, return_nfe: bool = False):
    """Heun in flow time (SlimFlow ``heun``, CUD ``heun``): trapezoidal steps, the last one plain Euler when
    ``final_euler`` (as both references do: NFE = 2N - 1 for N steps)."""
    check_convention(convention)
    ts = check_times(times)
    v_fn = _velocity_fn(velocity, convention)
    N = len(ts) - 1
    nfe = 0
    for i in range(N):
        t, t_next = ts[i], ts[i + 1]
        v = _eval(v_fn, x, t, cond)
        nfe += 1
        _report(callback, i, x, t, v, convention)
        dt = t_next - t
        x_pred = x + dt * v
        if final_euler and i == N - 1:
            x = x_pred
            continue
        v_2 = _eval(v_fn, x_pred, t_next, cond)
        nfe += 1
        x = x + (0.5 * dt) * (v + v_2)
    return (x, nfe) if return_nfe else x


@SOLVERS.register_module()
def rk45(velocity, x: Tensor, times, cond=None, callback=None, *, convention: str = 'rf', rtol: float = 1e-5,
         atol: float = 1e-5, method: str = 'RK45', return_nfe: bool = False):
    """Adaptive Runge-Kutta through ``scipy.integrate.solve_ivp`` from ``times[0]`` to ``times[-1]`` (RectifiedFlow /
    SlimFlow: (eps, 1), rtol = atol = 1e-5; CUD ``generate.py``: (1, 1e-3), 1e-3). The state is integrated in float64
    on the host, as the references do; NFE is scipy's ``nfev``. The callback sees every evaluation (``i`` counts
    them)."""
    from scipy.integrate import solve_ivp
    check_convention(convention)
    ts = check_times(times)
    v_fn = _velocity_fn(velocity, convention)
    shape, device, dtype = x.shape, x.device, x.dtype
    count = [0]

    def fun(t, y):
        xt = torch.from_numpy(y).reshape(shape).to(device=device, dtype=dtype)
        with torch.no_grad():
            v = _eval(v_fn, xt, float(t), cond)
        _report(callback, count[0], xt, float(t), v, convention)
        count[0] += 1
        return v.detach().to('cpu', torch.float64).numpy().reshape(-1)

    y0 = x.detach().to('cpu', torch.float64).numpy().reshape(-1)
    sol = solve_ivp(fun, (ts[0], ts[-1]), y0, rtol=rtol, atol=atol, method=method)
    if not sol.success:
        raise RuntimeError(f'rk45: solve_ivp failed: {sol.message}')
    out = torch.from_numpy(np.ascontiguousarray(sol.y[:, -1])).reshape(shape).to(device=device, dtype=dtype)
    return (out, int(sol.nfev)) if return_nfe else out
