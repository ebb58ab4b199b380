# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Teacher training of a 1-rectified flow (Liu et al. 2023, RectifiedFlow ``losses.get_rectified_flow_loss_fn``)."""
from typing import Optional, Sequence

import torch
from torch import Tensor

from kdm.diffusion.denoiser import FlowDenoiser
from kdm.diffusion.flow import DEFAULT_EPS, DEFAULT_TIME_SCALE, check_convention, rectified_flow_loss
from kdm.diffusion.schedules import get_schedule
from kdm.models.base import BaseGenerativeModel, build_emas
from kdm.registry import MODELS
from kdm.solvers import get_solver
from .common import images_and_labels, random_hflip


@MODELS.register_module()
class RectifiedFlowTrainer(BaseGenerativeModel):
    """Train a velocity network ``v(x_t, t)`` on straight paths between noise and data (1-RF).

    One iteration (``'rf'`` convention, data at t = 1): ``z ~ N(0, I)``, ``t = u (1 - eps) + eps``,
    ``x_t = t x + (1 - t) z``, ``loss = mean_{c,h,w} (v(x_t, 999 t) - (x - z))^2`` averaged over the batch
    (spec ``cud_slimflow_rf.md`` 5.1). ``'cud'`` is Catch-Up Distillation's mirrored convention.

    Reference CIFAR-10 settings (RectifiedFlow ``cifar10_rf_gaussian_ddpmpp.py``): DDPM++ (nf 128, 4 res blocks,
    attention at 16, dropout 0.15), batch 128, Adam lr 2e-4 with 5k warm-up, grad clip 1.0, EMA 0.999999 with
    score_sde's warm-up (``WarmupEMA``), random flips, RK45 sampling with rtol = atol = 1e-5.

    Args:
        net (dict): The velocity network (EDM-family call ``net(x_t, time_scale * t, class_labels)``).
        convention (str): ``'rf'`` (RectifiedFlow / SlimFlow) or ``'cud'``.
        eps (float, optional): Time floor (rf 1e-3, cud 1e-5 by default).
        time_scale (float, optional): Factor on t fed to the network (rf 999, cud 1 by default).
        noise_scale (float): Std of the noise end. Defaults to 1.
        hflip (float): Probability of a horizontal flip per image. Defaults to 0.5.
        ema (dict): EMA config(s) of ``net``.
        solver (str): ``'rk45'`` (adaptive), ``'flow_euler'`` or ``'flow_heun'``.
        num_steps (int): Steps of the fixed-step solvers (ignored by RK45). Defaults to 100.
        solver_kwargs (dict, optional): Extra knobs (RK45: ``rtol``/``atol``, default 1e-5 each).
        img_shape (sequence): Generated sample shape. Defaults to (3, 32, 32).
        label_dim (int): Number of classes, 0 for unconditional.
        sample_ema (str, optional): EMA used for evaluation.
    """

    def __init__(self,
                 net: dict,
                 convention: str = 'rf',
                 eps: Optional[float] = None,
                 time_scale: Optional[float] = None,
                 noise_scale: float = 1.0,
                 hflip: float = 0.5,
                 ema: Optional[dict] = dict(type='WarmupEMA', decay=0.999999),
                 solver: str = 'rk45',
                 num_steps: int = 100,
                 solver_kwargs: Optional[dict] = None,
                 img_shape: Sequence[int] = (3, 32, 32),
                 label_dim: int = 0,
                 sample_ema: Optional[str] = 'ema',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(sample_ema=sample_ema, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.convention = check_convention(convention)
        self.eps = DEFAULT_EPS[convention] if eps is None else float(eps)
        self.time_scale = DEFAULT_TIME_SCALE[convention] if time_scale is None else float(time_scale)
        self.net = MODELS.build(net)
        self.emas = build_emas(ema, self.net)
        self.noise_scale, self.hflip = noise_scale, hflip
        self.solver = get_solver(solver)
        default_knobs = dict(rtol=1e-5, atol=1e-5) if solver == 'rk45' else {}
        self.solver_kwargs = dict(default_knobs, **(solver_kwargs or {}))
        self.times = get_schedule('flow_uniform')(1 if solver == 'rk45' else num_steps, eps=self.eps,
                                                  convention=convention)
        self.img_shape = tuple(img_shape)
        self.label_dim = label_dim

    def train_step(self, data: dict, optim_wrapper) -> dict:
        data = self.data_preprocessor(data, True)
        x, labels = images_and_labels(data, self.label_dim)
        x = random_hflip(x, self.hflip)
        kwargs = {} if labels is None else dict(
            class_labels=torch.nn.functional.one_hot(labels, self.label_dim).to(x.dtype))
        with optim_wrapper['net'].optim_context(self.net):
            loss = rectified_flow_loss(self.net, x, convention=self.convention, eps=self.eps,
                                       time_scale=self.time_scale, noise_scale=self.noise_scale,
                                       model_kwargs=kwargs).mean()
        optim_wrapper['net'].update_params(loss)
        self.update_emas()
        return dict(loss=loss.detach())

    def as_denoiser(self, ema: Optional[str] = 'ema') -> FlowDenoiser:
        """The (EMA) velocity network as a sigma-space Denoiser (attribute ``net``; native ``velocity()``)."""
        return FlowDenoiser(self.get_net(ema), convention=self.convention, time_scale=self.time_scale,
                            img_channels=self.img_shape[0], img_resolution=self.img_shape[-1],
                            label_dim=self.label_dim, eps=self.eps)

    @torch.no_grad()
    def sample(self, noise: Tensor, cond: Optional[Tensor] = None, ema: Optional[str] = 'ema',
               randn_like=None) -> Tensor:
        """Integrate the flow ODE from ``noise_scale * noise`` at the noise end to the data end."""
        times = self.times.to(noise.device)
        return self.solver(self.as_denoiser(ema), noise * self.noise_scale, times, cond=cond,
                           convention=self.convention, **self.solver_kwargs)
