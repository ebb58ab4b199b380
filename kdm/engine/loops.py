# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The iteration-based training loop with exact, fast resume."""
import random

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

from kdm.registry import LOOPS


def reseed(seed: int, rank: int, iteration: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from ``(seed, rank, iteration)`` (EDM2 reseeds per step)."""
    state = np.random.SeedSequence([int(seed) % 2**32, int(rank), int(iteration)]).generate_state(2)
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))
    np.random.seed(int(state[0]))
    random.seed(int(state[1]))


@LOOPS.register_module()
class KDMIterBasedTrainLoop(IterBasedTrainLoop):
    """MMEngine's ``IterBasedTrainLoop`` with two changes that make resume exact and cheap.

    1. Before every iteration all random generators are reseeded from ``(runner.seed, rank, iteration)``: the
       random numbers of iteration ``k`` do not depend on what happened before, so N iterations straight and
       N/2 + resume + N/2 draw the same numbers (MMEngine restores only the seed, not the generator states).
    2. On resume the data position is set directly on a sampler that supports it
       (:class:`~kdm.datasets.ResumableInfiniteSampler`) instead of loading and discarding ``iter`` batches.
       Other samplers fall back to MMEngine's replay.

    Args are those of ``IterBasedTrainLoop`` (``max_iters``, ``val_begin``, ``val_interval``, ...).
    """

    def _skip_trained_data(self) -> None:
        sampler = getattr(self.dataloader, 'sampler', None)
        if hasattr(sampler, 'set_start_iter'):
            sampler.set_start_iter(self._iter, self.dataloader.batch_size)
            self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
            print_log(f'Resumed the data stream at iteration {self._iter} without replay', logger='current')
        else:
            print_log(f'Advance dataloader {self._iter} steps to skip data that has already been trained '
                      f'({type(sampler).__name__} cannot seek; use ResumableInfiniteSampler)', logger='current')
            for _ in range(self._iter):
                next(self.dataloader_iterator)

    def run(self) -> torch.nn.Module:
        """Launch training (MMEngine's loop with a seekable data stream)."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self._skip_trained_data()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_iter(self, data_batch) -> None:
        """Reseed from ``(seed, rank, iteration)``, then run MMEngine's iteration."""
        reseed(self.runner.seed, get_rank(), self._iter)
        super().run_iter(data_batch)
