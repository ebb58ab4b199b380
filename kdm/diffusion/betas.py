# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Beta schedules and timestep respacing of discrete diffusions (guided-diffusion conventions, spec ``dkdm_adm.md``
1.2 and 1.6)."""
import math
from typing import Callable, Sequence, Union

import numpy as np

__all__ = ['BETA_SCHEDULES', 'betas_for_alpha_bar', 'get_betas', 'space_timesteps']

BETA_SCHEDULES = ('linear', 'cosine')




def betas_for_alpha_bar(T: int, alpha_bar: Callable[[float], float], max_beta: float = 0.999) -> np.ndarray:
    """Discretise a cumulative ``alpha_bar(u)``, u in [0, 1]:
    ``beta_i = min(1 - abar((i+1)/T) / abar(i/T), max_beta)``."""
    betas = [min(1.0 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    return np.asarray(betas, dtype=np.float64)


def get_betas(name: str, T: int) -> np.ndarray:
    """Named beta schedule of ``T`` steps as a float64 array.

    Args:
        name (str): ``'linear'`` (Ho et al., scaled by 1000/T: 1e-4 .. 0.02 at T = 1000) or ``'cosine'``
            (Improved DDPM, ``f(u) = cos^2((u + 0.008) / 1.008 * pi / 2)``, betas clipped at 0.999).
        T (int): Number of diffusion steps.
    """
    T = int(T)
    if T < 1:
        raise ValueError(f'the number of diffusion steps must be >= 1, got {T}')
    if name == 'linear':
        scale = 1000.0 / T
        return np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)
    if name == 'cosine':
        return betas_for_alpha_bar(T, lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2)
    raise ValueError(f'unknown beta schedule {name!r}; valid names: {", ".join(BETA_SCHEDULES)}')


def space_timesteps(T: int, section_counts: Union[str, int, Sequence[int]]) -> list:
    """The original timesteps kept by a respaced sampler (guided-diffusion's ``space_timesteps``).

    Args:
        T (int): Number of steps of the original diffusion.
        section_counts: ``'50'`` or ``50`` (50 steps spread evenly over [0, T-1] with stride (T-1)/(K-1) and Python
            rounding), ``'10,20'`` / ``[10, 20]`` (the range split into equal sections, each strided separately), or
            ``'ddimN'`` (the DDIM paper's fixed integer stride giving exactly N steps).

    Returns:
        list[int]: the kept original indices, sorted ascending.
    """
    T = int(T)
    if isinstance(section_counts, str):
        if section_counts.startswith('ddim'):
            want = int(section_counts[len('ddim'):])
            for stride in range(1, T):
                if len(range(0, T, stride)) == want:
                    return list(range(0, T, stride))
            raise ValueError(f'cannot create exactly {want} steps out of {T} with an integer stride')
        section_counts = [int(c) for c in section_counts.split(',')]
    elif isinstance(section_counts, (int, np.integer)):
        section_counts = [int(section_counts)]
    section_counts = [int(c) for c in section_counts]
    if not section_counts or min(section_counts) < 1:
        raise ValueError(f'section counts must be positive integers, got {section_counts}')
    size_per, extra = divmod(T, len(section_counts))
    start, kept = 0, []
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f'cannot divide a section of {size} steps into {count}')
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        kept += [start + round(k * stride) for k in range(count)]  # Python (banker's) rounding, as the reference
        start += size
    return sorted(set(kept))
