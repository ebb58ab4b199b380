# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Exponential moving averages of a student network, on MMEngine's ``ExponentialMovingAverage``.

MMEngine's averager deep-copies the network, keeps an update counter ``steps`` as a buffer (so warm-ups survive
resume) and copies the weights on the first update; ``avg_func`` then does ``ema.lerp_(p, momentum)``, i.e.
``momentum = 1 - beta``. The three classes below differ only in how ``beta`` depends on the step:

- :class:`ConstantEMA`: a fixed decay (DKDM, ADM: beta = 0.9999, momentum = 1e-4).
- :class:`HalfLifeEMA`: EDM's half-life in images with a ramp-up (EDM ``training_loop.py``).
- :class:`PowerEMA`: EDM2's power-function profile (EDM2 ``phema.py``), parametrised by its relative std.

Distillers hold these for the *student only* (DESIGN.md section 5): MMEngine's ``EMAHook`` would average the
whole model, teacher included.
"""
import math

import torch
from mmengine.model import ExponentialMovingAverage
from torch import Tensor, nn

from kdm.registry import MODELS


@MODELS.register_module()
class ConstantEMA(ExponentialMovingAverage):
    """EMA with a constant decay: ``ema <- beta * ema + (1 - beta) * p`` with ``beta = 1 - momentum``.

    Args:
        model (nn.Module): The network to average (deep-copied).
        momentum (float): ``1 - beta``; 1e-4 is the 0.9999 EMA of ADM/DKDM. Defaults to 1e-4.
        interval (int): Update every ``interval`` calls. Defaults to 1.
        update_buffers (bool): Average buffers too instead of copying them. Defaults to False.
    """

    def __init__(self, model: nn.Module, momentum: float = 1e-4, interval: int = 1, update_buffers: bool = False):
        super().__init__(model, momentum=momentum, interval=interval, update_buffers=update_buffers)


@MODELS.register_module()
class HalfLifeEMA(ExponentialMovingAverage):
    """EDM's EMA: a half-life measured in training images, ramped up at the start of training.

    Before update number ``s`` (0-based) the network has seen ``n = s * batch_size`` images;
    ``h = min(halflife_kimg * 1000, rampup_ratio * n)`` and ``beta = 0.5 ** (batch_size / max(h, 1e-8))``
    (EDM ``training_loop.py``; the ramp-up is evaluated before ``cur_nimg += batch``). At ``s = 0`` this copies.

    Args:
        model (nn.Module): The network to average.
        batch_size (int): Global batch size (images per optimiser step over all GPUs).
        halflife_kimg (float): Half-life in thousands of images. EDM CIFAR-10: 500. Defaults to 500.
        rampup_ratio (float, optional): Ramp-up ratio; None disables it. EDM: 0.05. Defaults to 0.05.
        interval (int): Update every ``interval`` calls. Defaults to 1.
    """

    def __init__(self, model: nn.Module, batch_size: int, halflife_kimg: float = 500.0,
                 rampup_ratio: float = 0.05, interval: int = 1):
        # `momentum` is recomputed at every step; 0.5 is a placeholder that passes the parent's range check.
        super().__init__(model, momentum=0.5, interval=interval, update_buffers=False)
        if batch_size <= 0 or halflife_kimg <= 0:
            raise ValueError('HalfLifeEMA needs batch_size > 0 and halflife_kimg > 0, '
                             f'got {batch_size} and {halflife_kimg}')
        self.batch_size = int(batch_size)
        self.halflife_kimg = float(halflife_kimg)
        self.rampup_ratio = rampup_ratio

    def beta(self, steps: int) -> float:
        """EMA decay for update number ``steps`` (0-based)."""
        halflife_nimg = self.halflife_kimg * 1000
        if self.rampup_ratio is not None:
            halflife_nimg = min(halflife_nimg, steps * self.batch_size * self.rampup_ratio)
        return 0.5**(self.batch_size / max(halflife_nimg, 1e-8))

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, 1.0 - self.beta(int(steps)))


def power_std_to_exp(std: float) -> float:
    """EDM2: the exponent gamma of a power-function EMA with relative standard deviation ``std``.

    Largest real root of gamma^3 + 7 gamma^2 + (16 - std^-2) gamma + (12 - std^-2) = 0, i.e. the inverse of
    std = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3))). Example: std 0.05 -> gamma 16.97.
    """
    if not 0 < std < math.sqrt(1 / 12):
        raise ValueError(f'power EMA std must lie in (0, {math.sqrt(1 / 12):.4f}), got {std}')
    s2 = std**-2
    roots = torch.linalg.eigvals(torch.tensor([[-7.0, -(16 - s2), -(12 - s2)], [1, 0, 0], [0, 1, 0]],
                                              dtype=torch.float64))
    real = [r.real.item() for r in roots if abs(r.imag.item()) < 1e-9]
    return max(real)


@MODELS.register_module()
class PowerEMA(ExponentialMovingAverage):
    """EDM2's power-function EMA: ``beta_t = (1 - 1/t) ** (gamma + 1)`` at the ``t``-th update (t = steps + 1,
    so the first update copies), with gamma from the relative std (EDM2 uses std 0.050 and 0.100).

    Args:
        model (nn.Module): The network to average.
        std (float): Relative standard deviation of the averaging profile. Defaults to 0.05.
        interval (int): Update every ``interval`` calls. Defaults to 1.
    """

    def __init__(self, model: nn.Module, std: float = 0.05, interval: int = 1):
        super().__init__(model, momentum=0.5, interval=interval, update_buffers=False)
        self.std = float(std)
        self.gamma = power_std_to_exp(self.std)

    def beta(self, steps: int) -> float:
        """EMA decay for update number ``steps`` (0-based)."""
        t = steps + 1
        return (1 - 1 / t)**(self.gamma + 1)

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, 1.0 - self.beta(int(steps)))


@MODELS.register_module()
class WarmupEMA(ExponentialMovingAverage):
    """score_sde's EMA (used by RectifiedFlow / SlimFlow): ``beta_n = min(decay, (1 + n) / (10 + n))`` at update
    ``n`` (0-based; the first update copies). With ``decay = 0.999999`` the cap is practically never reached, so
    the warm-up term sets the averaging (spec ``cud_slimflow_rf.md`` 4.8).

    Args:
        model (nn.Module): The network to average.
        decay (float): Cap on the decay. RectifiedFlow 1-RF: 0.999999; reflow/distillation: 0.9999.
        interval (int): Update every ``interval`` calls. Defaults to 1.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999999, interval: int = 1):
        super().__init__(model, momentum=0.5, interval=interval, update_buffers=False)
        if not 0 < decay < 1:
            raise ValueError(f'WarmupEMA decay must lie in (0, 1), got {decay}')
        self.decay = float(decay)

    def beta(self, steps: int) -> float:
        """EMA decay for update number ``steps`` (0-based)."""
        return min(self.decay, (1 + steps) / (10 + steps))

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, 1.0 - self.beta(int(steps)))
