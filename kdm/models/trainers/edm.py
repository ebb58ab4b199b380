# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Teacher training with EDM's objective (Karras et al. 2022, "Elucidating the design space", Sec. 5)."""
import inspect
from typing import Optional, Sequence

import torch
from torch import Tensor

from kdm.models.base import BaseGenerativeModel, build_emas
from kdm.registry import LOSSES, MODELS
from kdm.solvers import get_solver
from kdm.diffusion.schedules import get_schedule
from .common import images_and_labels, random_hflip


@MODELS.register_module()
class EDMTrainer(BaseGenerativeModel):
    """Train a preconditioned denoiser ``D(x; sigma)`` with EDM's loss and half-life EMA; sample with Heun.

    One iteration: ``loss = sum_{c,h,w} lambda(sigma) (D(x + sigma n; sigma) - x)^2`` averaged over the batch,
    with ``ln sigma ~ N(P_mean, P_std^2)`` (EDM Table 1, "Training"; the loss class holds the numbers). EDM sums
    the per-image loss over pixels; Adam makes this equivalent to a mean up to its epsilon.

    Reference CIFAR-10 settings (EDM ``train.py --arch=ddpmpp --precond=edm``): batch 512, Adam lr 1e-3 with a
    10 Mimg linear warm-up, betas (0.9, 0.999), eps 1e-8, EMA half-life 500 kimg with ramp-up 0.05, dropout 0.13,
    200 Mimg. Not implemented: EDM's non-leaking geometric augmentation pipeline (``--augment=0.12``; the network
    is built with ``augment_dim=0``); ``hflip`` offers plain x-flips instead (EDM's ``--xflip``).

    Args:
        net (dict): The denoiser: an EDM preconditioner config (``EDMPrecond``, ``VPPrecond``, ``VEPrecond``,
            ``iDDPMPrecond``) around a network config, e.g.
            ``dict(type='EDMPrecond', img_resolution=32, img_channels=3, model=dict(type='SongUNet', ...))``.
        loss (dict): A ``LOSSES`` config; ``EDMLoss`` (P_mean -1.2, P_std 1.2, sigma_data 0.5) for EDM,
            ``VPLoss``/``VELoss`` for the VP/VE baselines.
        ema (dict): EMA config(s) of ``net``; EDM: ``HalfLifeEMA(batch_size=512, halflife_kimg=500)``.
        hflip (float): Probability of a horizontal flip per image. Defaults to 0.
        solver (str): Sampler for val/test and sample grids. EDM: ``'heun'`` (Algorithm 1).
        num_steps (int): Number of sigma levels before the final 0. EDM CIFAR-10: 18 (35 NFE).
        sigma_min (float): Smallest sampling sigma. Defaults to 0.002.
        sigma_max (float): Largest sampling sigma. Defaults to 80.
        rho (float): Karras schedule exponent. Defaults to 7.
        solver_kwargs (dict, optional): Extra solver knobs (e.g. ``S_churn`` for ``edm_stochastic``).
        img_shape (sequence, optional): Generated sample shape; default ``(C, R, R)`` from the denoiser.
        sample_ema (str, optional): EMA used for evaluation. Defaults to ``'ema'``.
    """

    def __init__(self,
                 net: dict,
                 loss: dict = dict(type='EDMLoss', P_mean=-1.2, P_std=1.2, sigma_data=0.5),
                 ema: Optional[dict] = dict(type='HalfLifeEMA', batch_size=512, halflife_kimg=500, rampup_ratio=0.05),
                 hflip: float = 0.0,
                 solver: str = 'heun',
                 num_steps: int = 18,
                 sigma_min: float = 0.002,
                 sigma_max: float = 80.0,
                 rho: float = 7.0,
                 solver_kwargs: Optional[dict] = None,
                 img_shape: Optional[Sequence[int]] = None,
                 sample_ema: Optional[str] = 'ema',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(sample_ema=sample_ema, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.net = MODELS.build(net)
        self.loss_fn = LOSSES.build(loss)
        self.emas = build_emas(ema, self.net)
        self.hflip = hflip
        self.solver = get_solver(solver)
        self.solver_kwargs = dict(solver_kwargs or {})
        self.sigmas = get_schedule('karras')(num_steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
        self.label_dim = self.net.label_dim
        self.img_shape = tuple(img_shape or (self.net.img_channels, self.net.img_resolution, self.net.img_resolution))

    def train_step(self, data: dict, optim_wrapper) -> dict:
        data = self.data_preprocessor(data, True)
        images, labels = images_and_labels(data, self.label_dim)
        images = random_hflip(images, self.hflip)
        with optim_wrapper['net'].optim_context(self.net):
            loss = self.loss_fn(self.net, images, labels)              # lambda(sigma) (D - x)^2, per element
            loss = loss.reshape(loss.shape[0], -1).sum(dim=1).mean()   # EDM: sum over pixels, mean over batch
        optim_wrapper['net'].update_params(loss)
        self.update_emas()
        return dict(loss=loss.detach())

    @torch.no_grad()
    def sample(self, noise: Tensor, cond: Optional[Tensor] = None, ema: Optional[str] = 'ema',
               randn_like=None) -> Tensor:
        """EDM sampling: ``x_0 = sigma_max * noise``, then the configured solver over the Karras schedule."""
        denoiser = self.get_net(ema)
        sigmas = self.sigmas.to(noise.device)
        kwargs = dict(self.solver_kwargs)
        if randn_like is not None and 'randn_like' in inspect.signature(self.solver).parameters:
            kwargs['randn_like'] = randn_like  # stochastic solvers draw their step noise from the per-seed generator
        return self.solver(denoiser, noise.to(torch.float64) * sigmas[0], sigmas, cond=cond, **kwargs).float()

    def as_denoiser(self, ema: Optional[str] = 'ema'):
        """The trained (EMA) denoiser, e.g. to teach a student through the ``kdm`` teacher loader."""
        return self.get_net(ema)
