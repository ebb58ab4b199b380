# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Input checks and small helpers shared by the solvers."""
import math
from typing import List, Sequence, Union

import torch
from torch import Tensor

__all__ = ['check_sigmas', 'check_times', 'check_order', 'afs_derivative', 'dynamic_threshold']


def _as_floats(seq: Union[Tensor, Sequence[float]], what: str) -> List[float]:
    # Python sequences are read in float64 (torch would round them to float32)
    t = seq if isinstance(seq, Tensor) else torch.as_tensor(seq, dtype=torch.float64)
    if t.ndim != 1:
        raise ValueError(f'{what} must be a 1-D sequence, got shape {tuple(t.shape)}')
    if t.numel() < 2:
        raise ValueError(f'{what} needs at least 2 entries (one step), got {t.numel()}')
    values = t.detach().to('cpu', torch.float64).tolist()
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f'{what} must be finite, got {values}')
    return values


def check_sigmas(sigmas: Union[Tensor, Sequence[float]]) -> List[float]:
    """Validate a sigma schedule and return it as Python floats (one host transfer, no per-step syncs).

    It must be 1-D, finite, non-negative and strictly decreasing; only the last entry may be 0.
    """
    values = _as_floats(sigmas, 'sigmas')
    if min(values) < 0:
        raise ValueError(f'sigmas must be non-negative, got {values}')
    bad = [i for i in range(len(values) - 1) if not values[i + 1] < values[i]]
    if bad:
        i = bad[0]
        raise ValueError(f'sigmas must be strictly decreasing: sigmas[{i}] = {values[i]} is followed by '
                         f'sigmas[{i + 1}] = {values[i + 1]}')
    return values


def check_times(times: Union[Tensor, Sequence[float]]) -> List[float]:
    """Validate flow times: 1-D, within [0, 1], strictly monotonic (either direction)."""
    values = _as_floats(times, 'times')
    if min(values) < 0 or max(values) > 1:
        raise ValueError(f'flow times must lie in [0, 1], got {values}')
    diffs = [b - a for a, b in zip(values[:-1], values[1:])]
    if not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        raise ValueError(f'flow times must be strictly increasing or strictly decreasing, got {values}')
    return values


def check_order(order, low: int, high: int, solver: str) -> int:
    """Return ``order`` as an int if it is an integer in [low, high]; otherwise a ValueError naming the solver."""
    if int(order) != order or not low <= order <= high:
        raise ValueError(f'{solver}: max_order must be an integer in [{low}, {high}], got {order}')
    return int(order)


def afs_derivative(x: Tensor, sigma: float) -> Tensor:
    """SFD's analytical first step: ``d = x / sqrt(1 + sigma^2)`` replaces ``(x - D(x; sigma)) / sigma``."""
    return x / math.sqrt(1.0 + sigma * sigma)


def dynamic_threshold(denoised: Tensor, ratio: float = 0.995, max_value: float = 1.0) -> Tensor:
    """SFD's dynamic thresholding: per sample ``s = max(quantile_ratio(|D|), max_value)``,
    ``D <- clamp(D, -s, s) / s``."""
    flat = denoised.reshape(denoised.shape[0], -1).abs()
    s = torch.quantile(flat.float(), ratio, dim=1).to(denoised.dtype).clamp(min=max_value)
    s = s.reshape(-1, *([1] * (denoised.ndim - 1)))
    return torch.maximum(torch.minimum(denoised, s), -s) / s
