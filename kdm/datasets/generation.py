# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Datasets that carry no images: per-image seeds for generation and indices for data-free training."""
from typing import List, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset

from kdm.registry import DATASETS


def parse_seeds(seeds: Union[str, int, Sequence[int]]) -> List[int]:
    """Parse EDM-style seed ranges: ``'0-49999'``, ``'0-9,100,200-209'``, an int N (= ``0..N-1``) or a list.

    Raises:
        ValueError: on an empty, negative or malformed specification.
    """
    if isinstance(seeds, int):
        out = list(range(seeds))
    elif isinstance(seeds, str):
        out = []
        for part in seeds.replace(' ', '').split(','):
            if not part:
                continue
            lo, sep, hi = part.partition('-')
            try:
                lo_i = int(lo)
                hi_i = int(hi) if sep else lo_i
            except ValueError:
                raise ValueError(f"bad seed range '{part}' in '{seeds}': "
                                 "use e.g. '0-49999' or '0-9,20,30-39'") from None
            if hi_i < lo_i:
                raise ValueError(f"bad seed range '{part}': the end is smaller than the start")
            out.extend(range(lo_i, hi_i + 1))
    else:
        out = [int(s) for s in seeds]
    if not out:
        raise ValueError(f'no seeds in {seeds!r}')
    if min(out) < 0:
        raise ValueError(f'seeds must be non-negative, got {min(out)}')
    return out


@DATASETS.register_module()
class SeedDataset(Dataset):
    """One item per generated image: ``dict(seed=int, label=int)``.

    The seed fixes the image's initial noise (and its class, when ``label`` is -1 and the model is conditional),
    so the generated set does not depend on the batch size or on the number of GPUs (EDM's protocol). Use it
    with ``DefaultSampler(shuffle=False, round_up=False)`` so that no rank generates a padded duplicate.

    Args:
        seeds: Seed specification, see :func:`parse_seeds`. Defaults to ``'0-49999'`` (EDM's 50k protocol).
        label: Class of every image, or -1 to let the model draw one from the seed (also for unconditional models).
        labels_cycle (int, optional): If given, image ``i`` gets class ``seed % labels_cycle`` (a balanced
            conditional set, e.g. for classifier accuracy).
    """

    def __init__(self, seeds: Union[str, int, Sequence[int]] = '0-49999', label: int = -1,
                 labels_cycle: Optional[int] = None):
        self.seeds = parse_seeds(seeds)
        self.label = int(label)
        self.labels_cycle = labels_cycle
        self.metainfo = dict(seeds=f'{self.seeds[0]}-{self.seeds[-1]}' if self._contiguous() else 'custom',
                             num_seeds=len(self.seeds))

    def _contiguous(self) -> bool:
        return self.seeds == list(range(self.seeds[0], self.seeds[0] + len(self.seeds)))

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, idx: int) -> dict:
        seed = self.seeds[idx]
        label = seed % self.labels_cycle if self.labels_cycle else self.label
        return dict(seed=torch.tensor(seed, dtype=torch.int64), label=torch.tensor(label, dtype=torch.int64))


@DATASETS.register_module()
class IndexDataset(Dataset):
    """The dataset of data-free methods: ``dict(index=int)`` only. The method draws its inputs (noise, pool
    entries) on the device in ``train_step``; the index exists so MMEngine's loops have something to iterate.

    Args:
        size (int): Nominal length (one "epoch" of indices). Defaults to 2**20.
    """

    def __init__(self, size: int = 2**20):
        if size < 1:
            raise ValueError(f'IndexDataset size must be positive, got {size}')
        self.size = int(size)
        self.metainfo = dict(data_free=True)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx: int) -> dict:
        return dict(index=torch.tensor(idx, dtype=torch.int64))
