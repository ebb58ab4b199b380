# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Samplers, one pure function each, registered in ``SOLVERS``.

* ``ode.py`` (sigma-space): ``euler``, ``heun``, ``dpm``, ``dpmpp``, ``ipndm``, ``edm_stochastic``, called as
  ``solver(denoiser, x, sigmas, cond=None, callback=None, **knobs)``;
* ``discrete.py``: ``ddpm``, ``ddim``, called as ``solver(model, x_T, timesteps, cond=None, callback=None,
  diffusion=None, ...)``;
* ``flow.py`` (flow time): ``flow_euler``, ``flow_heun``, ``rk45``, called as
  ``solver(velocity, x, times, cond=None, callback=None, convention='rf', ...)``.

Every solver takes ``return_nfe=True`` to return ``(x, nfe)`` (denoiser / network / velocity evaluations, the way
the papers count NFE). :func:`get_solver` looks one up by name and lists the valid names for an unknown one.
"""
from typing import Callable

from kdm.registry import SOLVERS
from . import discrete, flow, ode  # noqa: F401  (registers every solver)
from .discrete import ddim, ddpm, respaced_timesteps  # noqa: F401
from .flow import flow_euler, flow_heun, rk45  # noqa: F401
from .ode import dpm, dpmpp, edm_stochastic, euler, heun, ipndm  # noqa: F401


def get_solver(name: str) -> Callable:
    """The solver registered under ``name``; an unknown name raises a KeyError listing the valid ones."""
    fn = SOLVERS.get(name)
    if fn is None:
        raise KeyError(f'unknown solver {name!r}; valid solvers: {", ".join(sorted(SOLVERS.module_dict))}')
    return fn


build_solver = get_solver
