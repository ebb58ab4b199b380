# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The DKDM pool mechanics: variants, pool size, the teacher step, shuffle-denoise preparation and pool cache files.

Pure functions of tensors used by :class:`kdm.models.distillers.dkdm.DKDM` and ``tools/dkdm_prepare.py`` (spec
``shared/spec/dkdm_adm.md`` sections 3.2-3.4). See the DKDM module docstring for how the pool is used.
"""
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from kdm.diffusion.ddpm import GaussianDiffusion
from kdm.models.base import unwrap

__all__ = [
    'VARIANTS', 'POOL_CACHE_FORMAT', 'canonical_variant', 'pool_size', 'teacher_step', 'shuffle_denoise',
    'load_pool_cache', 'save_pool_cache', 'check_pool_cache', 'prepare_pool_cache'
]

#: Accepted ``variant`` values -> canonical name (the reference's ``teacher.iter_choice`` strings included).
VARIANTS = {
    'dynamic': 'dynamic',
    'dynamic_iterative_distillation': 'dynamic',
    'shuffled': 'shuffled',
    'shuffled_iterative_distillation': 'shuffled',
    'shffled_iterative_distillation': 'shuffled',  # the reference's spelling (spec 3.4)
    'iterative': 'iterative',
    'iterative_distillation': 'iterative',
}

#: Version tag of the pool cache files written by :func:`save_pool_cache`.
POOL_CACHE_FORMAT = 'kdm-dkdm-pool-v1'


def canonical_variant(variant: str) -> str:
    """``'dynamic'``, ``'shuffled'`` or ``'iterative'`` for any accepted spelling (see :data:`VARIANTS`)."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f'unknown DKDM variant {variant!r}; valid: dynamic, shuffled, iterative (or the '
                         'reference names dynamic_iterative_distillation, shffled_iterative_distillation, '
                         'iterative_distillation)') from None


def pool_size(rho: float, num_timesteps: int, batch_size: int, variant: str = 'dynamic') -> int:
    """Entries per rank: ``round(rho * T) * b`` for the dynamic variant (spec 3.2), ``b`` otherwise."""
    if canonical_variant(variant) != 'dynamic':
        return int(batch_size)
    k = round(rho * num_timesteps)  # Python's round, as the reference's int(round(BATCH * T))
    if k < 1:
        raise ValueError(f'rho * T = {rho} * {num_timesteps} rounds to {k}: the pool must hold at least one batch '
                         f'(rho >= {0.5 / num_timesteps:g})')
    return int(k) * int(batch_size)


# ----------------------------------------------------------------------------------------------------------------------
# The teacher step and the pool preparation


def _call_teacher(net: nn.Module, diffusion: GaussianDiffusion, x: Tensor, t: Tensor,
                  dtype: Optional[torch.dtype]) -> Tensor:
    timesteps = diffusion.model_timesteps(t)  # original indices of a respaced chain
    if dtype is not None and x.is_cuda:
        with torch.autocast('cuda', dtype=dtype):
            out = net(x, timesteps)
    else:
        out = net(x, timesteps)
    return out.float()


@torch.no_grad()
def teacher_step(net: nn.Module, diffusion: GaussianDiffusion, x: Tensor, t: Tensor, clip_denoised: bool = True,
                 noise: Optional[Tensor] = None, dtype: Optional[torch.dtype] = None) -> Dict[str, Tensor]:
    """One ancestral step of the teacher network ``net`` on ``diffusion`` from ``x`` at indices ``t``.

    Returns ``p_sample``'s dict: ``mean``, ``log_variance`` (the teacher's reverse Gaussian, mean from the clipped
    x0 when ``clip_denoised``), ``eps`` (the raw eps output), ``sample`` (= x_{t-1}, no noise at t = 0), ...
    """
    out = _call_teacher(net, diffusion, x, t, dtype)
    return diffusion.p_sample(out, x, t, clip_denoised=clip_denoised, noise=noise)


@torch.no_grad()
def shuffle_denoise(net: nn.Module,
                    diffusion: GaussianDiffusion,
                    num: int,
                    img_shape: Sequence[int],
                    batch_size: int = 3072,
                    clip_denoised: bool = True,
                    device: Union[str, torch.device, None] = None,
                    dtype: Optional[torch.dtype] = None,
                    progress: Optional[Callable[[int, int], None]] = None) -> Tuple[Tensor, Tensor]:
    """Prepare ``num`` pool entries with the teacher network ``net`` on ``diffusion`` (spec 3.3, the reference's
    ``manage_denoise_fn``).

    Every entry starts as ``(t = T, x ~ N(0, I))`` and draws a target ``t_end`` uniformly from 1..T-1; then,
    repeatedly, the first ``batch_size`` entries with ``t > t_end`` take one teacher step (``t <- t - 1``,
    ``x <- ancestral step at t``) until every entry reached its target. Cost: about ``num * T / 2`` teacher
    evaluations. Random numbers come from the global torch generator of ``device``.

    Returns:
        (t int64 (num,), x float32 (num, *img_shape)) on ``device``; ``t`` is uniform on 1..T-1.
    """
    device = torch.device(device) if device is not None else next(net.parameters()).device
    T = diffusion.num_timesteps
    t = torch.full((num, ), T, dtype=torch.int64, device=device)
    x = torch.randn((num, *img_shape), device=device)
    if T < 2:
        return t, x
    t_end = torch.randint(1, T, (num, ), device=device)
    total, done = int((T - t_end).sum()), 0
    while True:
        active = torch.nonzero(t > t_end).flatten()[:batch_size]
        if active.numel() == 0:
            break
        t_a = t[active] - 1
        out = teacher_step(net, diffusion, x[active], t_a, clip_denoised, dtype=dtype)
        t[active] = t_a
        x[active] = out['sample']
        done += active.numel()
        if progress is not None:
            progress(done, total)
    return t, x


# ----------------------------------------------------------------------------------------------------------------------
# Pool cache files


def save_pool_cache(path: str, pool_t: Tensor, pool_x: Tensor, meta: dict) -> None:
    """Write a pool cache atomically: ``dict(pool_t, pool_x, meta)`` with ``meta['format'] = POOL_CACHE_FORMAT``."""
    from kdm.engine.checkpoint import atomic_torch_save
    meta = dict(meta, format=POOL_CACHE_FORMAT, num_entries=int(pool_t.shape[0]))
    atomic_torch_save(dict(pool_t=pool_t.detach().cpu().long(), pool_x=pool_x.detach().cpu().float(), meta=meta),
                      path)


def load_pool_cache(path: str, mmap: bool = True) -> dict:
    """Read a pool cache written by :func:`save_pool_cache` (``weights_only``; memory-mapped by default, so reading
    the metadata of a multi-GB cache costs nothing).

    Raises:
        FileNotFoundError: missing file (names ``tools/dkdm_prepare.py``). ValueError: not a kdm pool cache.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f"DKDM pool cache '{path}' not found; prepare it once with "
                                '`python tools/dkdm_prepare.py CONFIG --out FILE` (or set model.pool_cache=None to '
                                'prepare the pool at the first iteration)')
    try:
        cache = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same explanation
        raise ValueError(f"cannot read DKDM pool cache '{path}': {type(exc).__name__}: {exc}. kdm reads the files "
                         'written by tools/dkdm_prepare.py (the reference\'s pickled .cache files are not loaded)'
                         ) from exc
    if not isinstance(cache, dict) or not {'pool_t', 'pool_x', 'meta'} <= set(cache) or \
            cache['meta'].get('format') != POOL_CACHE_FORMAT:
        raise ValueError(f"'{path}' is not a DKDM pool cache written by tools/dkdm_prepare.py "
                         f'(expected keys pool_t, pool_x, meta with format {POOL_CACHE_FORMAT!r})')
    return cache


def check_pool_cache(meta: dict, *, rho: float, batch_size: int, world_size: int, num_timesteps: int,
                     img_shape: Sequence[int], variant: str = 'dynamic') -> List[str]:
    """The fields in which a cache (``meta``) does not fit the run; empty if it does.

    The dynamic variant needs the same rho, the same global batch (per-rank batch x world size; any split over
    processes is fine, each rank takes its contiguous slice as in the reference), steps and image shape. The
    shuffled variant reuses any cache with the same steps and shape and at least ``batch_size * world_size`` rows
    (the reference's rows ``[rank b, (rank + 1) b)`` of a dynamic cache).
    """
    bad = []
    if int(meta['num_timesteps']) != int(num_timesteps):
        bad.append(f"num_timesteps: cache {meta['num_timesteps']}, config {num_timesteps}")
    if tuple(meta['img_shape']) != tuple(img_shape):
        bad.append(f"img_shape: cache {tuple(meta['img_shape'])}, config {tuple(img_shape)}")
    cache_global = int(meta['batch_size']) * int(meta['world_size'])
    if canonical_variant(variant) == 'dynamic':
        if abs(float(meta['rho']) - float(rho)) > 1e-12:
            bad.append(f"rho: cache {meta['rho']}, config {rho}")
        if cache_global != batch_size * world_size:
            bad.append(f"batch: cache {meta['batch_size']} per rank x world size {meta['world_size']} = "
                       f'{cache_global}, config {batch_size} per rank x world size {world_size} = '
                       f'{batch_size * world_size}')
    elif int(meta['num_entries']) < batch_size * world_size:
        bad.append(f"num_entries: cache {meta['num_entries']} < batch {batch_size} x world size {world_size}")
    return bad


def prepare_pool_cache(model: nn.Module, world_size: int = 1, device: Union[str, torch.device, None] = None,
                       progress: Optional[Callable[[int, int], None]] = None) -> Tuple[Tensor, Tensor, dict]:
    """Run the preparation of a :class:`DKDM` ``model``'s pool for ``world_size`` ranks at once
    (``tools/dkdm_prepare.py``).

    Returns ``(pool_t, pool_x, meta)`` with ``local_pool_size * world_size`` entries.
    """
    if model.variant == 'iterative':
        raise ValueError('the iterative variant has no pool to prepare (it starts from fresh noise)')
    device = torch.device(device) if device is not None else model.device
    unwrap(model.teacher).to(device)
    n = model.local_pool_size * int(world_size)
    t, x = shuffle_denoise(model.teacher.net, model.diffusion, n, model.img_shape, model.prepare_batch_size,
                           model.teacher_clip_denoised, device, model.teacher_dtype, progress)
    meta = dict(rho=model.rho, batch_size=model.batch_size, world_size=int(world_size),
                num_timesteps=model.num_timesteps, img_shape=list(model.img_shape), variant=model.variant,
                timestep_respacing=str(model.timestep_respacing),
                teacher_clip_denoised=model.teacher_clip_denoised)
    return t, x, meta
