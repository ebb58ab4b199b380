# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Training hooks: the NaN/inf guard and the fixed-noise sample grid."""
import math
from typing import Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from torchvision.utils import make_grid

from kdm.models.base import unwrap
from kdm.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`NanGuardHook`; the message names the loss and the iteration."""


@HOOKS.register_module()
class NanGuardHook(Hook):
    """Stop training when a logged loss is NaN or infinite.

    Runs right after each iteration, before the checkpoint hook (priority ``VERY_HIGH``), so the last checkpoint
    written is the last good state. Raises :class:`NonFiniteLossError` naming the loss and the iteration.

    Args:
        keys (tuple, optional): Names of the logged values to check; default: every key containing ``loss``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, keys: Optional[tuple] = None):
        self.keys = keys

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for name, value in (outputs or {}).items():
            if self.keys is not None and name not in self.keys:
                continue
            if self.keys is None and 'loss' not in name:
                continue
            v = value.detach().float() if torch.is_tensor(value) else torch.tensor(float(value))
            if not torch.isfinite(v).all():
                raise NonFiniteLossError(
                    f"non-finite loss '{name}' = {v.flatten()[:4].tolist()} at iteration {runner.iter + 1}; "
                    'training stopped (the last checkpoint is unaffected). Lower the learning rate, check the '
                    'data range, or use fp32.')


@HOOKS.register_module()
class SampleGridHook(Hook):
    """Every ``interval`` iterations, sample a grid from the same fixed seeds and send it to the visualizer.

    The grid goes through MMEngine's visualizer (``LocalVisBackend`` writes
    ``<work_dir>/<timestamp>/vis_data/vis_image/<name>_<iter>.png``; TensorBoard/W&B backends work the same way).

    Args:
        interval (int): Iterations between grids. Defaults to 1000.
        num_samples (int): Images in the grid. Defaults to 64.
        nrow (int): Images per row. Defaults to 8.
        seed (int): First seed; image i uses seed ``seed + i`` (per-image seeding, see ``seeded_noise``).
        ema (str, optional): EMA to sample; None samples the raw network. Defaults to 'ema'.
        name (str): Image name for the visualizer. Defaults to 'samples'.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1000, num_samples: int = 64, nrow: int = 8, seed: int = 0,
                 ema: Optional[str] = 'ema', name: str = 'samples'):
        if interval <= 0 or num_samples <= 0:
            raise ValueError('SampleGridHook needs interval > 0 and num_samples > 0')
        self.interval, self.num_samples, self.nrow = interval, num_samples, nrow
        self.seed, self.ema, self.name = seed, ema, name

    def render(self, model) -> torch.Tensor:
        """Sample the fixed grid with ``model`` and return it as uint8 (3, H, W)."""
        model = unwrap(model)
        device = next(model.parameters()).device
        seeds = list(range(self.seed, self.seed + self.num_samples))
        labels = None
        if model.label_dim > 0:  # one row per class, cycling
            labels = torch.tensor([i % model.label_dim for i in range(self.num_samples)], device=device)
        images, _ = model.sample_seeds(seeds, labels, ema=self.ema, device=device)
        return make_grid(images, nrow=self.nrow or int(math.sqrt(self.num_samples)), padding=1)

    def _draw(self, runner, step: int) -> None:
        if not is_main_process():
            return
        grid = self.render(runner.model)
        runner.visualizer.add_image(self.name, grid.permute(1, 2, 0).numpy(), step=step)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):  # runner.iter is 0-based here
            self._draw(runner, runner.iter + 1)

    def after_train(self, runner) -> None:
        if runner.iter % self.interval != 0:
            self._draw(runner, runner.iter)
