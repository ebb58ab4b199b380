# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""scikit-learn's handwritten digits (shipped inside its wheel, no download): the quickstart and toy benchmark data."""
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from kdm.registry import DATASETS
from .base import as_label, float_to_uint8

_SPLITS = ('train', 'test', 'all')


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask: per class, ``round(test_fraction * n_c)`` images drawn by ``default_rng(seed)``.

    Classes are visited in increasing order with one generator, so the split depends only on the labels, the
    fraction and the seed (not on the scikit-learn version's splitter).
    """
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test[rng.permutation(idx)[:int(round(test_fraction * len(idx)))]] = True
    return test


@DATASETS.register_module()
class DigitsDataset(Dataset):
    """The 1,797 8x8 grey handwritten digits of ``sklearn.datasets.load_digits`` (UCI optdigits test set).

    Pixel values 0..16 (ink counts) map to ``v / 8 - 1`` in [-1, 1] (background -1, ink +1), then the images are
    upsampled to ``resolution`` with bilinear interpolation (``F.interpolate(mode='bilinear',
    align_corners=False, antialias=False)``), which keeps values in [-1, 1]. Labels are the digits 0..9.

    The split is stratified and deterministic (:func:`stratified_split`): with the defaults 1,438 train and 359
    test images, so the quickstart has held-out digits to compute Fréchet distances against.

    Args:
        split (str): ``'train'``, ``'test'`` or ``'all'``.
        resolution (int): Output side length (8 = the original pixels). Defaults to 16.
        test_fraction (float): Share of each class held out for ``'test'``. Defaults to 0.2.
        split_seed (int): Seed of the split. Defaults to 0.
    """

    def __init__(self, split: str = 'train', resolution: int = 16, test_fraction: float = 0.2, split_seed: int = 0):
        if split not in _SPLITS:
            raise ValueError(f'split must be one of {_SPLITS}, got {split!r}')
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f'test_fraction must be in (0, 1), got {test_fraction}')
        if int(resolution) < 1:
            raise ValueError(f'resolution must be positive, got {resolution}')
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ImportError('DigitsDataset needs scikit-learn (pip install scikit-learn); the digits ship inside '
                              'its wheel, nothing is downloaded') from e
        digits = load_digits()
        labels = digits.target.astype(np.int64)
        test = stratified_split(labels, test_fraction, split_seed)
        keep = {'train': ~test, 'test': test, 'all': np.ones_like(test)}[split]
        self.indices = np.flatnonzero(keep)  # positions in load_digits(), ascending
        x = torch.from_numpy(digits.images[keep].astype(np.float32)) / 8.0 - 1.0
        x = x[:, None]  # (N, 1, 8, 8)
        if resolution != 8:
            x = F.interpolate(x, size=(resolution, resolution), mode='bilinear', align_corners=False,
                              antialias=False)
        self.images = x.clamp_(-1.0, 1.0).contiguous()
        self.labels = torch.from_numpy(labels[keep])
        self.metainfo = dict(name='digits', split=split, num_images=len(self.images), resolution=int(resolution),
                             channels=1, num_classes=10, test_fraction=test_fraction, split_seed=split_seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> dict:
        return dict(img=self.images[idx].clone(), label=as_label(self.labels[idx]))

    def get_label(self, idx: int) -> int:
        """The digit shown by image ``idx`` (0..9)."""
        return int(self.labels[idx])

    def get_uint8(self, idx: int) -> torch.Tensor:
        """The upsampled image quantised as EDM quantises samples: uint8 (1, R, R)."""
        return float_to_uint8(self.images[idx])
