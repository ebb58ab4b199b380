# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""2-D toy distributions for the fastest tests of flows and distillers (generated with NumPy, no files)."""
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from kdm.registry import DATASETS

#: Default jitter (standard deviation, in output units) per distribution.
DEFAULT_NOISE = {'moons': 0.05, '8gaussians': 0.05, 'checkerboard': 0.0, 'circles': 0.02}


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    # scikit-learn's two moons (outer: (cos t, sin t), inner: (1 - cos t, 1/2 - sin t)), centred and scaled by 1/1.5
    # so x spans [-1, 1] and y [-0.5, 0.5].
    t = rng.uniform(0.0, np.pi, n)
    inner = np.arange(n) >= n // 2
    x = np.where(inner, 1.0 - np.cos(t), np.cos(t))
    y = np.where(inner, 0.5 - np.sin(t), np.sin(t))
    return np.stack([x - 0.5, y - 0.25], 1) / 1.5


def _8gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    # Eight modes on the circle of radius 0.8 (angles k * pi / 4); their width is the `noise` jitter.
    angle = rng.integers(0, 8, n) * (np.pi / 4)
    return 0.8 * np.stack([np.cos(angle), np.sin(angle)], 1)


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    # A 4 x 4 board on [-1, 1]^2 whose 8 squares with (row + col) even are filled uniformly.
    col = rng.integers(0, 4, n)
    row = 2 * rng.integers(0, 2, n) + col % 2
    return np.stack([col + rng.uniform(0, 1, n), row + rng.uniform(0, 1, n)], 1) / 2.0 - 1.0


def _circles(rng: np.random.Generator, n: int) -> np.ndarray:
    # Two concentric circles of radius 0.9 and 0.45 (scikit-learn's make_circles with factor 0.5, scaled by 0.9).
    t = rng.uniform(0.0, 2 * np.pi, n)
    radius = np.where(np.arange(n) >= n // 2, 0.45, 0.9)
    return radius[:, None] * np.stack([np.cos(t), np.sin(t)], 1)


_GENERATORS = {'moons': _moons, '8gaussians': _8gaussians, 'checkerboard': _checkerboard, 'circles': _circles}


@DATASETS.register_module()
class Toy2DDataset(Dataset):
    """Points of a 2-D toy distribution, values roughly in [-1, 1].

    Documented exception to the image item format: ``img`` is a float32 **2-vector** (shape (2,)), and ``label`` is
    always -1. The points are drawn once, in ``__init__``, from ``np.random.default_rng(seed)`` (shuffled, then
    jittered with N(0, noise^2)), so a dataset is fully defined by its arguments.

    Args:
        name (str): ``'moons'``, ``'8gaussians'``, ``'checkerboard'`` or ``'circles'``.
        num_samples (int): Number of points. Defaults to 10,000.
        seed (int): Seed of the points. Defaults to 0.
        noise (float, optional): Standard deviation of the Gaussian jitter added to every point, in output units.
            None uses :data:`DEFAULT_NOISE` (moons 0.05, 8gaussians 0.05, checkerboard 0, circles 0.02).
    """

    def __init__(self, name: str = 'moons', num_samples: int = 10000, seed: int = 0, noise: Optional[float] = None):
        if name not in _GENERATORS:
            raise ValueError(f'unknown toy distribution {name!r}; choose one of {sorted(_GENERATORS)}')
        if int(num_samples) < 1:
            raise ValueError(f'num_samples must be positive, got {num_samples}')
        noise = DEFAULT_NOISE[name] if noise is None else float(noise)
        if noise < 0:
            raise ValueError(f'noise must be non-negative, got {noise}')
        rng = np.random.default_rng(seed)
        points = _GENERATORS[name](rng, int(num_samples))
        points = points[rng.permutation(len(points))]
        if noise > 0:
            points = points + noise * rng.standard_normal(points.shape)
        self.points = torch.from_numpy(points.astype(np.float32))
        self.metainfo = dict(name='toy2d', distribution=name, num_images=len(self.points), resolution=None,
                             channels=2, dim=2, num_classes=0, noise=noise, seed=seed)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, idx: int) -> dict:
        return dict(img=self.points[idx].clone(), label=torch.tensor(-1, dtype=torch.int64))

    def get_label(self, idx: int) -> int:
        """Always -1: the toy points are unlabelled."""
        return -1

    def get_uint8(self, idx: int) -> torch.Tensor:
        """Not available: 2-D points have no pixels (raises TypeError)."""
        raise TypeError('Toy2DDataset holds 2-D points, not images; it has no uint8 pixels')
