# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Teacher training with the ADM / Improved-DDPM hybrid loss, optionally with DDPM-IP input perturbation."""
from typing import Optional, Sequence

import torch
from torch import Tensor

from kdm.diffusion.ddpm import create_diffusion
from kdm.diffusion.denoiser import DiscreteDenoiser
from kdm.models.base import BaseGenerativeModel, build_emas
from kdm.registry import MODELS
from kdm.solvers import ddpm as ddpm_sampler
from .common import images_and_labels, random_hflip


@MODELS.register_module()
class DDPMTrainer(BaseGenerativeModel):
    """Train an ADM-style eps-prediction network on a discrete diffusion (spec ``dkdm_adm.md`` 1.4, 1.5).

    One iteration: ``t ~ U{0..T-1}``, ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) (eps + gamma xi)``;
    ``loss = mean_{c,h,w}(eps - eps_theta)^2 + L_vb`` where ``L_vb`` is the VLB term in bits/dim computed with
    the mean stop-gradiented (it trains only the learned-range variance head; IDDPM's lambda = 1/T = 0.001 of
    the summed VLB), averaged over the batch. ``gamma`` is DDPM-IP's input perturbation (0 = plain ADM; the
    target stays the unperturbed eps). Sampling: DDPM ancestral steps on a respaced chain (DKDM evaluates every
    model with 50 steps), x0 clipped to [-1, 1].

    Reference settings (DDPM-IP / ADM CIFAR-10): cosine schedule, T = 1000, learned sigma, Adam(W) lr 1e-4,
    batch 128, EMA 0.9999, dropout 0.3, random flips; gamma 0.15 (CIFAR-10 IP) or 0.1 (ImageNet-32, CelebA-64).

    Args:
        net (dict): The network config, ``ADMUNet`` with ``out_channels = 2 C`` when ``learn_sigma``.
        diffusion (dict): Arguments of :func:`kdm.diffusion.ddpm.create_diffusion` (schedule, steps,
            learn_sigma, loss_type, ...).
        input_perturbation (float): DDPM-IP gamma. Defaults to 0.
        hflip (float): Probability of a horizontal flip per image (ADM's ``random_flip``). Defaults to 0.5.
        ema (dict): EMA config(s) of ``net``. ADM: ``ConstantEMA(momentum=1e-4)`` (decay 0.9999).
        sample_steps (str | int): Respacing of the sampling chain (``'50'``, ``'100'``, ``'1000'``, ``'ddim25'``).
        clip_denoised (bool): Clip x0_hat to [-1, 1] while sampling. Defaults to True.
        img_shape (sequence): Shape (C, H, W) of the images. Defaults to (3, 32, 32).
        label_dim (int): Number of classes (the network's ``num_classes``), 0 for unconditional.
        sample_ema (str, optional): EMA used for evaluation. Defaults to ``'ema'``.
    """

    def __init__(self,
                 net: dict,
                 diffusion: dict = dict(schedule='cosine', steps=1000, learn_sigma=True),
                 input_perturbation: float = 0.0,
                 hflip: float = 0.5,
                 ema: Optional[dict] = dict(type='ConstantEMA', momentum=1e-4),
                 sample_steps='50',
                 clip_denoised: bool = True,
                 img_shape: Sequence[int] = (3, 32, 32),
                 label_dim: int = 0,
                 sample_ema: Optional[str] = 'ema',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(sample_ema=sample_ema, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.net = MODELS.build(net)
        self.diffusion = create_diffusion(**diffusion)
        self.emas = build_emas(ema, self.net)
        self.input_perturbation = input_perturbation
        self.hflip = hflip
        self.sample_steps = sample_steps
        self.clip_denoised = clip_denoised
        self.img_shape = tuple(img_shape)
        self.label_dim = label_dim

    def train_step(self, data: dict, optim_wrapper) -> dict:
        data = self.data_preprocessor(data, True)
        x0, labels = images_and_labels(data, self.label_dim)
        x0 = random_hflip(x0, self.hflip)
        t = torch.randint(0, self.diffusion.num_timesteps, (x0.shape[0], ), device=x0.device)  # uniform sampler
        kwargs = {} if labels is None else dict(y=labels)
        with optim_wrapper['net'].optim_context(self.net):
            terms = self.diffusion.training_losses(self.net, x0, t, input_perturbation=self.input_perturbation,
                                                   model_kwargs=kwargs)
            loss = terms['loss'].mean()  # mse + vb per sample, uniform weights, batch mean
        optim_wrapper['net'].update_params(loss)
        self.update_emas()
        return dict(loss=loss.detach(), loss_mse=terms['mse'].mean().detach(), loss_vb=terms['vb'].mean().detach())

    @torch.no_grad()
    def sample(self, noise: Tensor, cond: Optional[Tensor] = None, ema: Optional[str] = 'ema',
               randn_like=None) -> Tensor:
        """Ancestral DDPM sampling from ``x_T = noise`` over ``sample_steps`` respaced steps."""
        return ddpm_sampler(self.get_net(ema), noise, self.sample_steps, cond=cond, diffusion=self.diffusion,
                            clip_denoised=self.clip_denoised, randn_like=randn_like)

    def as_denoiser(self, ema: Optional[str] = 'ema') -> DiscreteDenoiser:
        """The trained (EMA) network with its diffusion as a Denoiser (``net``/``diffusion`` attributes)."""
        return DiscreteDenoiser(self.get_net(ema), self.diffusion, img_channels=self.img_shape[0],
                                img_resolution=self.img_shape[-1], label_dim=self.label_dim)
