# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""DKDM: data-free knowledge distillation of a discrete (ADM) diffusion teacher (Xiang et al., CVPR 2025).

Spec: ``shared/spec/dkdm_adm.md`` section 3. The student never sees data. Its training inputs are the states of
teacher reverse chains kept in a *pool* ("dynamic batch", :math:`\\hat B^+` of the paper) and advanced by one
teacher step per iteration; the student learns the teacher's eps and reverse variance at each state.

One iteration (spec 3.8; ``I`` = ``b`` pool entries of this rank)::

    t, x <- pool_t[I], pool_x[I]
    where t == 0: t <- T, x <- N(0, I)              # a finished trajectory restarts from noise
    t <- t - 1                                      # the timestep at which x lives
    teacher (no grad): eps_T, mu_T, logvar_T from clipped x0; x_next <- mu_T + 1[t > 0] sigma_T z
    student: eps_S, v_S = S(x, t)
    loss = mean_b( mean_chw (eps_T - eps_S)^2 + mean_chw KL(N(mu_T, var_T) || N(mu_S^sg, var_S)) / ln 2 )
    pool_t[I], pool_x[I] <- t, x_next

Variants (``variant``; the reference's ``iter_choice`` strings are accepted too, including its ``shffled_``
spelling):

* ``'dynamic'`` (dynamic iterative distillation, every released config): a pool of ``round(rho * T) * b``
  entries per rank, prepared by "shuffle denoise" (spec 3.3: every entry walked from noise to a uniform
  ``t_end`` in 1..T-1); each iteration draws ``b`` distinct entries with Python's ``random.sample``.
* ``'shuffled'`` (shuffled iterative distillation): a pool of exactly ``b`` entries per rank with uniform
  timesteps (prepared the same way, or the first ``b * world_size`` rows of a dynamic cache, as the reference
  does); every iteration advances all of them; each entry restarts individually.
* ``'iterative'`` (iterative distillation): ``b`` fresh noises that the teacher walks together from T-1 to 0,
  one step per iteration, then restart: every batch has a single timestep. Nothing to prepare.

The pool lives on the device as two persistent buffers, ``pool_t`` (int64, the timestep of the teacher step that
*produced* the state; T = fresh noise, 0 = finished image) and ``pool_x`` (float32 states), plus ``pool_ready``.
Being buffers, they are in every checkpoint and resume continues the very same trajectories (the reference instead
pickled the pool at every checkpoint because ``cache_save_interval=-1`` divides every step, quirk 1, and silently
restarted from the prepared cache when that file was missing). Size: CIFAR-10 rho = 0.4, b = 128 is
51,200 x 3 x 32 x 32 float32 = 0.63 GB (in GPU memory and in each checkpoint); CelebA-64 (global batch 256)
5.0 GB; ImageNet-32 (global batch 512) 2.5 GB.

Multi-GPU: the buffers hold the *global* pool (``world_size`` slices, rank ``r`` owns rows
``[r N, (r + 1) N)`` exactly like the reference's cache layout); each rank draws and advances only its own rows and
the updated rows are all-gathered every iteration (b states per rank, negligible next to the gradient all-reduce),
so the checkpoint written by rank 0 holds every rank's trajectories. Memory per GPU is therefore the global pool.

The chain is the teacher's diffusion (T = 1000 in every released config); ``timestep_respacing`` runs it on a
respaced chain instead (the reference's teacher respacing, quirk 9: pool and student then live in the respaced index
space and T is the number of kept steps), which the CPU toy configuration uses.

Pool cache (the reference's ``dynamic_prepare.py`` and ``.cache`` files): ``tools/dkdm_prepare.py CONFIG --out
FILE`` runs the preparation once and saves ``dict(pool_t, pool_x, meta)``; ``pool_cache=FILE`` loads it at the
first iteration instead of preparing. A cache whose ``rho``, global batch (per-rank batch x world size), number of
steps or image shape differ from the config is refused at construction with the mismatching fields named.
"""
import math
import random
import time
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from torch import Tensor, nn

from kdm.diffusion.ddpm import GaussianDiffusion, create_diffusion, mean_flat, normal_kl
from kdm.diffusion.denoiser import DiscreteDenoiser
from kdm.models.base import BaseDistiller, build_emas
from kdm.registry import MODELS
from kdm.solvers import ddpm as ddpm_sampler

# The pool mechanics live in dkdm_pool.py; re-exported here so ``from kdm.models.distillers.dkdm import ...`` works.
from .dkdm_pool import (POOL_CACHE_FORMAT, VARIANTS, canonical_variant, check_pool_cache, load_pool_cache,  # noqa
                        pool_size, prepare_pool_cache, save_pool_cache, shuffle_denoise, teacher_step)

__all__ = [
    'DKDM', 'VARIANTS', 'POOL_CACHE_FORMAT', 'pool_size', 'teacher_step', 'shuffle_denoise', 'dkdm_loss',
    'load_pool_cache', 'save_pool_cache', 'check_pool_cache', 'prepare_pool_cache'
]

# ----------------------------------------------------------------------------------------------------------------------
# The objective


def dkdm_loss(student_output: Tensor, teacher_out: Dict[str, Tensor], x: Tensor, t: Tensor,
              diffusion: GaussianDiffusion, student_clip_denoised: bool = False) -> Dict[str, Tensor]:
    """The DKDM objective per sample, as the reference computes it (spec 3.1, ``training_losses_kd``).

    ``mse = mean_chw (eps_T - eps_S)^2`` (paper Eq. 18, L*_simple) and
    ``vb = mean_chw KL(N(mu_T, var_T) || N(mu_S, var_S)) / ln 2`` (Eq. 19, L*_vlb per timestep, bits/dim) where
    ``mu_S`` is formed from the *detached* eps_S (only the variance head learns from vb), without clipping unless
    ``student_clip_denoised``; the KL form is used at every t, t = 0 included (no decoder NLL). ``vb`` is scaled by
    T/1000 for a ``rescaled_mse`` diffusion (CelebA's config; 1 at T = 1000). Weights are uniform (1).

    Args:
        student_output (Tensor): Raw student output (N, 2C, H, W) = ``[eps_S, v_S]``.
        teacher_out (dict): :func:`teacher_step`'s dict (``eps``, ``mean``, ``log_variance``).
        x (Tensor): The states x_t (N, C, H, W). t (Tensor): (N,) int64 indices of ``diffusion``.

    Returns:
        dict of (N,) tensors: ``loss`` = ``mse + vb``, ``mse``, ``vb``.
    """
    eps_s, v_s = diffusion.split_output(student_output, x)
    if v_s is None:
        raise ValueError('DKDM needs a learned-variance student (2C output channels) and diffusion')
    mse = mean_flat((teacher_out['eps'] - eps_s)**2)
    frozen = torch.cat([eps_s.detach(), v_s], dim=1)  # stop-gradient on the student mean
    student = diffusion.p_mean_variance(frozen, x, t, clip_denoised=student_clip_denoised)
    kl = normal_kl(teacher_out['mean'], teacher_out['log_variance'], student['mean'], student['log_variance'])
    vb = mean_flat(kl) / math.log(2.0)
    if diffusion.loss_type == 'rescaled_mse':
        vb = vb * (diffusion.num_timesteps / 1000.0)
    return dict(loss=mse + vb, mse=mse, vb=vb)


# ----------------------------------------------------------------------------------------------------------------------
# The method


def _dtype(name: Optional[str]) -> Optional[torch.dtype]:
    if name is None:
        return None
    table = dict(float16=torch.float16, fp16=torch.float16, half=torch.float16, bfloat16=torch.bfloat16,
                 bf16=torch.bfloat16, float32=None, fp32=None)
    if name not in table:
        raise ValueError(f'teacher_dtype must be float16, bfloat16, float32 or None, got {name!r}')
    return table[name]


@MODELS.register_module()
class DKDM(BaseDistiller):
    """Dynamic iterative distillation of a discrete diffusion teacher into a smaller student, data-free.

    Reference settings (spec 3.6): AdamW(lr 1e-4, weight decay 0), constant LR, no clipping, EMA 0.9999
    (``ConstantEMA(momentum=1e-4)``), rho = 0.4, batch 128 (CIFAR-10, 1 GPU) / 256 (CelebA-64, 4 x 64) /
    512 (ImageNet-32), teacher in fp16 in eval mode, student dropout 0.3 (32 px) / 0.1 (CelebA), evaluation with
    50 respaced ancestral steps of the EMA student.

    Args:
        teacher (dict | nn.Module): A ``TEACHERS`` config returning a :class:`DiscreteDenoiser` with an eps network
            of learned-range variance (``dict(type='adm', path=..., ...)`` for the DDPM-IP files, ``'kdm'`` for a
            kdm-trained teacher), or such a module. Frozen, outside the module tree and the checkpoints.
        student (dict): The student network config (``ADMUNet`` with ``out_channels = 2 * in_channels``).
        diffusion (dict, optional): ``create_diffusion`` settings of the student's diffusion; it must have the
            teacher's betas (the reference forces the teacher's steps and respacing on the student, quirk 9). None
            (default) uses the teacher's diffusion. Only its ``loss_type`` matters beyond that (``rescaled_mse``).
        timestep_respacing (str | int, optional): Run the teacher chain (and train the student) on a respaced
            diffusion, e.g. ``'100'``: the reference's teacher ``timestep_respacing`` (quirk 9), which it copies to
            the student; the pool then lives in the respaced index space and ``T`` in ``rho * T`` is the number of
            respaced steps. None (every released config: "1000") keeps all steps.
        rho (float): Pool size in units of ``T * b`` (the reference's ``teacher.BATCH``). Defaults to 0.4.
        variant (str): ``'dynamic'``, ``'shuffled'`` or ``'iterative'`` (or the reference's ``iter_choice``).
        batch_size (int): Student batch per rank ``b`` (= ``train_dataloader.batch_size``); sizes the pool.
        teacher_clip_denoised (bool): Clip the teacher's x0 to [-1, 1] for its mean and step (reference: True).
        student_clip_denoised (bool): Clip the student's x0 in the KL term (reference: False, quirk 6).
        pool_cache (str, optional): A cache written by ``tools/dkdm_prepare.py``; None prepares the pool with the
            teacher at the first iteration (or starts fresh noises for ``'iterative'``).
        prepare_batch_size (int): Teacher batch of the preparation (reference: 3072).
        teacher_dtype (str, optional): ``'float16'`` / ``'bfloat16'`` runs the teacher under CUDA autocast (for
            teachers without their own fp16 switch; ADMUNet's ``use_fp16=True`` is the reference's fp16 teacher).
            Ignored on CPU, where the teacher runs in float32.
        ema (dict): Student EMA config(s). Defaults to the 0.9999 EMA.
        sample_steps (str | int): Respaced ancestral sampling steps of ``sample()`` (reference evaluation: '50').
        sample_clip_denoised (bool): Clip x0 while sampling (reference: True).
        sample_ema (str, optional): The EMA sampled by val/test. Defaults to ``'ema'``.
    """

    student_name = 'student'

    def __init__(self,
                 teacher: Union[dict, nn.Module],
                 student: dict,
                 diffusion: Optional[dict] = None,
                 timestep_respacing: Union[str, int, None] = None,
                 rho: float = 0.4,
                 variant: str = 'dynamic',
                 batch_size: int = 128,
                 teacher_clip_denoised: bool = True,
                 student_clip_denoised: bool = False,
                 pool_cache: Optional[str] = None,
                 prepare_batch_size: int = 3072,
                 teacher_dtype: Optional[str] = None,
                 ema: Optional[dict] = dict(type='ConstantEMA', momentum=1e-4),
                 sample_steps: Union[str, int] = '50',
                 sample_clip_denoised: bool = True,
                 sample_ema: Optional[str] = 'ema',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(teacher, sample_ema=sample_ema, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(self.teacher, DiscreteDenoiser) or self.teacher.parameterization != 'eps':
            raise TypeError('DKDM distils a discrete eps-prediction teacher (a DiscreteDenoiser, e.g. from the '
                            f"'adm' or 'kdm' teacher loaders), got {type(self.teacher).__name__}")
        if not self.teacher.diffusion.learn_sigma:
            raise ValueError('DKDM needs a teacher with learned variance (learn_sigma=True): the KL term compares '
                             "the teacher's and the student's reverse variances")
        if self.teacher.label_dim:
            raise ValueError('DKDM supports unconditional teachers only (the reference raises for class-conditional '
                             'ones, quirk 7)')
        self.variant = canonical_variant(variant)
        self.diffusion = self._student_diffusion(diffusion)
        self.timestep_respacing = timestep_respacing
        if timestep_respacing not in (None, ''):
            self.diffusion = self.diffusion.respace(timestep_respacing)
        self.student = MODELS.build(student)
        channels = getattr(self.student, 'in_channels', self.teacher.img_channels)
        resolution = getattr(self.student, 'image_size', self.teacher.img_resolution)
        if (channels, resolution) != (self.teacher.img_channels, self.teacher.img_resolution):
            raise ValueError(f'student images {channels}x{resolution}x{resolution} differ from the teacher\'s '
                             f'{self.teacher.img_channels}x{self.teacher.img_resolution}x'
                             f'{self.teacher.img_resolution}')
        if getattr(self.student, 'out_channels', 2 * channels) != 2 * channels:
            raise ValueError(f'the student must output 2 * {channels} channels [eps, v] (learned variance), got '
                             f'out_channels={self.student.out_channels}')
        self.emas = build_emas(ema, self.student)
        self.img_shape = (channels, resolution, resolution)
        self.label_dim = 0

        self.rho = float(rho)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        self.teacher_clip_denoised = bool(teacher_clip_denoised)
        self.student_clip_denoised = bool(student_clip_denoised)
        self.prepare_batch_size = int(prepare_batch_size)
        self.teacher_dtype = _dtype(teacher_dtype)
        self.sample_steps = sample_steps
        self.sample_clip_denoised = bool(sample_clip_denoised)

        self.rank, self.world_size = get_dist_info()
        self.num_timesteps = T = self.diffusion.num_timesteps
        self.local_pool_size = pool_size(self.rho, T, self.batch_size, self.variant)
        n = self.local_pool_size * self.world_size
        # The global pool (every rank's slice), persistent: checkpoints carry it and resume restores it exactly.
        # torch.empty does not touch the memory before the pool is prepared.
        self.register_buffer('pool_t', torch.empty((n, ), dtype=torch.int64))
        self.register_buffer('pool_x', torch.empty((n, *self.img_shape), dtype=torch.float32))
        self.register_buffer('pool_ready', torch.zeros((), dtype=torch.int64))

        self.pool_cache = pool_cache
        if pool_cache is not None:
            if self.variant == 'iterative':
                raise ValueError("the iterative variant starts from fresh noise and takes no pool_cache")
            meta = load_pool_cache(pool_cache)['meta']
            bad = check_pool_cache(meta, rho=self.rho, batch_size=self.batch_size, world_size=self.world_size,
                                   num_timesteps=T, img_shape=self.img_shape, variant=self.variant)
            if bad:
                raise ValueError(f"DKDM pool cache '{pool_cache}' does not match this config:\n  " + '\n  '.join(bad)
                                 + '\nprepare a matching one with tools/dkdm_prepare.py (same config and '
                                 '--world-size) or set model.pool_cache=None')

    # ---------------------------------------------------------------- set-up helpers
    def _student_diffusion(self, cfg: Optional[dict]) -> GaussianDiffusion:
        teacher_diffusion = self.teacher.diffusion
        if cfg is None:
            return teacher_diffusion
        diffusion = create_diffusion(**cfg)
        same = (diffusion.num_timesteps == teacher_diffusion.num_timesteps
                and np.allclose(diffusion.alphas_cumprod, teacher_diffusion.alphas_cumprod, rtol=1e-9, atol=0)
                and np.array_equal(diffusion.timestep_map, teacher_diffusion.timestep_map))
        if not same:
            raise ValueError(f'the student diffusion {diffusion} differs from the teacher\'s {teacher_diffusion}: '
                             'DKDM trains the student on the teacher\'s chain (same schedule, steps and respacing)')
        if not diffusion.learn_sigma:
            raise ValueError('the student diffusion needs learn_sigma=True')
        return diffusion

    @property
    def device(self) -> torch.device:
        return self.pool_x.device

    def _all_gather_rows(self, rows: Tensor, t: Tensor, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Every rank's (rows, t, x) of this iteration, concatenated (identity on one process)."""
        if self.world_size == 1 or not torch_dist.is_initialized():
            return rows, t, x
        out = []
        for tensor in (rows, t, x):
            parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
            torch_dist.all_gather(parts, tensor.contiguous())
            out.append(torch.cat(parts))
        return tuple(out)

    # ---------------------------------------------------------------- the pool
    @torch.no_grad()
    def init_pool(self) -> None:
        """Fill the pool: from ``pool_cache``, fresh noise (iterative) or shuffle denoise (every rank prepares its
        own slice, then the slices are all-gathered). Called by the first ``train_step`` unless resumed."""
        n, T = self.local_pool_size, self.num_timesteps
        if self.pool_cache is not None:
            cache = load_pool_cache(self.pool_cache)
            rows = n * self.world_size
            self.pool_t.copy_(cache['pool_t'][:rows].to(self.device))
            self.pool_x.copy_(cache['pool_x'][:rows].to(self.device))
            print_log(f'DKDM: pool of {rows} entries loaded from {self.pool_cache}', logger='current')
        else:
            if self.variant == 'iterative':
                t = torch.full((n, ), T, dtype=torch.int64, device=self.device)
                x = torch.randn((n, *self.img_shape), device=self.device)
            else:
                start, last = time.time(), [0.0]

                def progress(done, total):
                    if self.rank == 0 and (time.time() - last[0] > 30 or done == total):
                        last[0] = time.time()
                        eta = (time.time() - start) / max(done, 1) * (total - done)
                        print_log(f'DKDM: preparing the pool (shuffle denoise): {done}/{total} teacher evaluations '
                                  f'({100 * done / max(total, 1):.1f} %), ETA {eta / 60:.1f} min', logger='current')

                print_log(f'DKDM: preparing a pool of {n} entries per rank with the teacher (about {n * T // 2} '
                          'teacher evaluations; tools/dkdm_prepare.py can do this once and cache it)',
                          logger='current')
                t, x = shuffle_denoise(self.teacher.net, self.diffusion, n, self.img_shape, self.prepare_batch_size,
                                       self.teacher_clip_denoised, self.device, self.teacher_dtype, progress)
            if self.world_size > 1 and torch_dist.is_initialized():
                torch_dist.all_gather(list(self.pool_t.split(n)), t)
                torch_dist.all_gather(list(self.pool_x.split(n)), x.contiguous())
            else:
                self.pool_t.copy_(t)
                self.pool_x.copy_(x)
        self.pool_ready.fill_(1)

    def draw_rows(self) -> Tensor:
        """The global pool rows this rank trains on now: ``b`` distinct rows of its slice drawn with Python's
        ``random.sample`` (dynamic, as the reference), or the whole slice in order (shuffled, iterative)."""
        n, b = self.local_pool_size, self.batch_size
        if self.variant == 'dynamic':
            local = torch.tensor(random.sample(range(n), b), dtype=torch.int64)
        else:
            local = torch.arange(n, dtype=torch.int64)
        return (local + self.rank * n).to(self.device)

    @torch.no_grad()
    def advance(self, rows: Tensor) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
        """Read ``rows``, restart finished entries, step back one timestep and run the teacher once.

        Returns ``(t, x, teacher_out)``: the timesteps and states the student trains on, and the teacher's step
        (``teacher_out['sample']`` is the entries' next state). The pool itself is written by :meth:`write_back`.
        """
        t = self.pool_t[rows]
        x = self.pool_x[rows]
        fresh = torch.randn_like(x)  # drawn for every row so the random stream does not depend on the pool
        done = t == 0
        t = torch.where(done, torch.full_like(t, self.num_timesteps), t) - 1
        x = torch.where(done.reshape(-1, *([1] * (x.ndim - 1))), fresh, x)
        out = teacher_step(self.teacher.net, self.diffusion, x, t, self.teacher_clip_denoised,
                           dtype=self.teacher_dtype)
        return t, x, out

    @torch.no_grad()
    def write_back(self, rows: Tensor, t: Tensor, x_next: Tensor) -> None:
        """Store the advanced entries (all ranks' rows on every rank, so each holds the whole pool)."""
        rows, t, x_next = self._all_gather_rows(rows, t, x_next)
        self.pool_t[rows] = t
        self.pool_x[rows] = x_next.to(self.pool_x.dtype)

    # ---------------------------------------------------------------- training
    def train_step(self, data: dict, optim_wrapper) -> Dict[str, Tensor]:
        """One DKDM iteration (spec 3.8): draw, one teacher step, student update, EMA, write back."""
        data = self.data_preprocessor(data, True)
        given = len(data['index']) if isinstance(data, dict) and 'index' in data else None
        if given is not None and given != self.batch_size:
            raise ValueError(f'the dataloader gives batches of {given} but model.batch_size is {self.batch_size}; '
                             'set both to the same per-rank batch (it sizes the pool)')
        if not bool(self.pool_ready):
            self.init_pool()
        rows = self.draw_rows()
        t, x, teacher_out = self.advance(rows)

        wrapper = optim_wrapper['student']
        with wrapper.optim_context(self.student):
            output = self.student(x, self.diffusion.model_timesteps(t))
            terms = dkdm_loss(output.float(), teacher_out, x, t, self.diffusion, self.student_clip_denoised)
            loss = terms['loss'].mean()  # uniform weights, batch mean
        wrapper.update_params(loss)
        self.update_emas()
        self.write_back(rows, t, teacher_out['sample'])
        return dict(loss=loss.detach(), loss_mse=terms['mse'].mean().detach(), loss_vb=terms['vb'].mean().detach())

    # ---------------------------------------------------------------- sampling
    def get_net(self, ema: Optional[str] = None) -> nn.Module:
        """The student's EMA ``ema``, the raw student (None), or the teacher's network (``'teacher'``: sample the
        teacher with the same sampler, e.g. for its FID row or the synthetic dataset of the baselines)."""
        if ema == 'teacher':
            return self.teacher.net
        return super().get_net(ema)

    @torch.no_grad()
    def sample(self, noise: Tensor, cond: Optional[Tensor] = None, ema: Optional[str] = 'ema',
               randn_like=None) -> Tensor:
        """Ancestral DDPM sampling of the (EMA) student over ``sample_steps`` respaced steps (reference: 50)."""
        return ddpm_sampler(self.get_net(ema), noise, self.sample_steps, diffusion=self.diffusion,
                            clip_denoised=self.sample_clip_denoised, randn_like=randn_like)

    def as_denoiser(self, ema: Optional[str] = 'ema') -> DiscreteDenoiser:
        """The (EMA) student with its diffusion as a Denoiser, so it can teach the next student."""
        return DiscreteDenoiser(self.get_net(ema), self.diffusion, img_channels=self.img_shape[0],
                                img_resolution=self.img_shape[-1])

    # ---------------------------------------------------------------- checkpoints
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + 'pool_x'
        if key in state_dict and tuple(state_dict[key].shape) != tuple(self.pool_x.shape):
            raise ValueError(
                f'the checkpoint holds a DKDM pool of {state_dict[key].shape[0]} entries of shape '
                f'{tuple(state_dict[key].shape[1:])}, but this run expects {self.pool_x.shape[0]} of '
                f'{tuple(self.pool_x.shape[1:])} (rho={self.rho}, variant={self.variant}, batch {self.batch_size} '
                f'per rank x world size {self.world_size}): resume with the same rho, variant and global batch')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def pool_stats(self) -> Dict[str, float]:
        """Summary of the pool (for logs and tests): entries, ready flag, mean timestep, share of fresh entries."""
        t = self.pool_t.float()
        return dict(entries=int(self.pool_t.numel()), ready=int(self.pool_ready), mean_t=float(t.mean()),
                    fresh=float((self.pool_t == self.num_timesteps).float().mean()))
