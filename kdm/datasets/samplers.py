# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""A resumable infinite sampler: resume continues at the exact sample instead of replaying the dataloader."""
from typing import Iterator, Optional, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from kdm.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(Sampler):
    """Infinite sampler whose position can be set, so resume needs no replay of the data (EDM2's
    ``InfiniteSampler(start_idx=...)``; MMEngine's loop instead loads ``iter`` batches to skip them).

    The global stream of indices is epoch after epoch of a permutation seeded by ``(seed, epoch)``; global
    position ``g`` holds ``perm_{g // len}[g % len]``. Rank ``r`` of ``W`` yields positions ``start + r``,
    ``start + r + W``, ... so after ``k`` iterations of per-rank batch ``b`` every rank resumes at
    ``start = k * b * W`` (:meth:`set_start_iter`).

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Permute each epoch. Defaults to True.
        seed (int, optional): Shuffle seed, identical on every rank. Defaults to a seed synced across ranks.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: Optional[int] = None):
        self.size = len(dataset)
        if self.size == 0:
            raise ValueError('ResumableInfiniteSampler got an empty dataset')
        self.rank, self.world_size = get_dist_info()
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.start = 0

    def set_start_iter(self, iteration: int, batch_size: int) -> None:
        """Continue after ``iteration`` iterations of per-rank ``batch_size`` (called by the train loop)."""
        self.start = int(iteration) * int(batch_size) * self.world_size

    def _epoch_indices(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.size)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g)

    def __iter__(self) -> Iterator[int]:
        pos = self.start + self.rank
        epoch, perm = -1, None
        while True:
            e, i = divmod(pos, self.size)
            if e != epoch:
                epoch, perm = e, self._epoch_indices(e)
            yield int(perm[i])
            pos += self.world_size

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Present for API compatibility with MMEngine samplers; the position alone defines the stream."""
