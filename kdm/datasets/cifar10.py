# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""CIFAR-10 from the official python pickle batches (``cifar-10-batches-py/``); no download code."""
import os
import pickle

import numpy as np
import torch

from kdm.registry import DATASETS
from .base import UInt8ImageDataset

CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar.html'
CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
_SPLITS = dict(train=[f'data_batch_{i}' for i in range(1, 6)], test=['test_batch'])


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else (a batch file cannot run code when loaded)."""

    _ALLOWED = {
        ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
        ('numpy.core.numeric', '_frombuffer'), ('numpy._core.numeric', '_frombuffer'),
        ('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode'),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f'CIFAR-10 batch refers to {module}.{name}, which a data file never needs')
        core = 'numpy._core' if int(np.__version__.split('.')[0]) >= 2 else 'numpy.core'  # renamed in numpy 2
        module = module.replace('numpy._core', core).replace('numpy.core', core)
        return super().find_class(module, name)


def find_cifar10_folder(data_root: str) -> str:
    """The folder holding the batches: ``data_root`` itself or ``data_root/cifar-10-batches-py``.

    Raises:
        FileNotFoundError: naming the path and saying where to get ``cifar-10-python.tar.gz``.
    """
    for folder in (data_root, os.path.join(data_root, 'cifar-10-batches-py')):
        if os.path.isfile(os.path.join(folder, 'test_batch')) or os.path.isfile(os.path.join(folder, 'data_batch_1')):
            return folder
    hint = ''
    if os.path.isfile(os.path.join(data_root, 'cifar-10-python.tar.gz')):
        hint = f' The archive is there: extract it with `tar -xzf {data_root}/cifar-10-python.tar.gz -C {data_root}`.'
    raise FileNotFoundError(
        f"CIFAR-10 not found at '{data_root}' (looked for data_batch_1..5 and test_batch in it and in its "
        f"'cifar-10-batches-py' subfolder). Download cifar-10-python.tar.gz (the python version) from "
        f'{CIFAR10_URL} and extract it there.{hint}')


def load_cifar10_batch(path: str):
    """Read one official batch file: ``(uint8 (N, 3, 32, 32), int64 (N,))``."""
    with open(path, 'rb') as f:
        try:
            entry = _ArrayUnpickler(f, encoding='bytes').load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f'{path} is not a CIFAR-10 python batch: {e}') from e
    if not isinstance(entry, dict) or b'data' not in entry or b'labels' not in entry:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (expected a dict with b'data' and b'labels')")
    data = np.asarray(entry[b'data'])
    labels = np.asarray(entry[b'labels'], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path}: b'data' must be uint8 (N, 3072) with N labels, got {data.dtype} {data.shape} "
                         f'and {len(labels)} labels')
    # Each row holds the 1024 red, then 1024 green, then 1024 blue values of a row-major 32x32 image.
    return data.reshape(-1, 3, 32, 32), labels


@DATASETS.register_module()
class CIFAR10Dataset(UInt8ImageDataset):
    """CIFAR-10 (Krizhevsky 2009): 50,000 train / 10,000 test RGB 32x32 images, 10 classes.

    Reads the official python pickle batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) with an
    unpickler restricted to numpy arrays. All images of the split are held in memory (150 MB for train).

    Args:
        data_root (str): ``cifar-10-batches-py/`` or the folder that contains it. Defaults to ``data/cifar10``.
        split (str): ``'train'`` or ``'test'``.
    """

    def __init__(self, data_root: str = 'data/cifar10', split: str = 'train'):
        if split not in _SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got '{split}'")
        folder = find_cifar10_folder(data_root)
        images, labels = [], []
        for name in _SPLITS[split]:
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f'CIFAR-10 batch {path} is missing; re-extract cifar-10-python.tar.gz '
                                        f'from {CIFAR10_URL}')
            x, y = load_cifar10_batch(path)
            images.append(x)
            labels.append(y)
        self.images = torch.from_numpy(np.concatenate(images))
        self.labels = np.concatenate(labels)
        self.data_root, self.split = folder, split
        self.metainfo = dict(name='cifar10', split=split, num_images=len(self.images), resolution=32, channels=3,
                             num_classes=10, classes=CIFAR10_CLASSES)

    def __len__(self) -> int:
        return len(self.images)

    def get_uint8(self, idx: int) -> torch.Tensor:
        """The stored pixels of image ``idx``: uint8 (3, 32, 32)."""
        return self.images[idx].clone()

    def get_label(self, idx: int) -> int:
        """The class of image ``idx`` (0..9)."""
        return int(self.labels[idx])
