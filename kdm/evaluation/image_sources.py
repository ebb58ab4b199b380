# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Where real or generated images come from when they are not produced by a model: a dataset config, or a path
(image folder, EDM zip, ADM/DKDM ``.npz`` batch, CIFAR-10 python batches). Everything is read through the
datasets of :mod:`kdm.datasets` and their ``get_uint8(idx)`` (the exact stored pixels)."""
import os
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


def open_image_source(source, split: str = 'train'):
    """A dataset with ``__len__`` and ``get_uint8(idx) -> uint8 (C, H, W)`` for ``source``.

    Args:
        source: A built dataset, a dataset config dict (built with kdm's ``DATASETS``), or a path:
            ``*.npz``/``*.npy`` (``arr_0`` uint8 NHWC, labels ``arr_1`` when present), ``*.zip`` (EDM dataset zip),
            a CIFAR-10 ``cifar-10-batches-py`` folder (or its parent), or any folder of PNG/JPG images.
        split: CIFAR-10 split for CIFAR-10 folders.

    Raises:
        FileNotFoundError: the path does not exist. ValueError: an empty folder or an unreadable file.
    """
    import kdm.datasets  # noqa: F401 - registers the datasets
    from kdm.registry import DATASETS
    if isinstance(source, dict):
        source = DATASETS.build(dict(source))
    if not isinstance(source, (str, os.PathLike)):
        if not hasattr(source, 'get_uint8'):
            raise TypeError(f'{type(source).__name__} has no get_uint8(idx); image sources must be kdm datasets')
        return source
    path = os.path.expanduser(os.fspath(source))
    if not os.path.exists(path):
        raise FileNotFoundError(f"image source '{path}' does not exist")
    if path.endswith(('.npz', '.npy')):
        from kdm.datasets.npz import NpzDataset
        label_key = None
        if path.endswith('.npz'):
            with np.load(path, allow_pickle=False) as npz:
                if 'arr_0' not in npz.files:
                    raise ValueError(f'{path} has no arr_0 image array (keys: {npz.files})')
                label_key = 'arr_1' if 'arr_1' in npz.files else None
        return NpzDataset(path, key='arr_0', label_key=label_key)
    if path.endswith('.zip'):
        from kdm.datasets.edm_zip import EDMZipDataset
        return EDMZipDataset(path)
    if os.path.isdir(path):
        for cand in (path, os.path.join(path, 'cifar-10-batches-py')):
            if os.path.isfile(os.path.join(cand, 'data_batch_1')) or os.path.isfile(os.path.join(cand, 'test_batch')):
                from kdm.datasets.cifar10 import CIFAR10Dataset
                return CIFAR10Dataset(cand, split=split)
        from kdm.datasets.image_folder import ImageFolderDataset
        return ImageFolderDataset(path)
    raise ValueError(f"cannot read images from '{path}': expected a folder, a .zip (EDM) or a .npz (ADM arr_0)")


def source_label(ds, idx: int) -> int:
    """Class of item ``idx`` of a dataset (-1 when unlabelled)."""
    if hasattr(ds, 'get_label'):
        return int(ds.get_label(idx))
    labels = getattr(ds, 'labels', None)
    return -1 if labels is None else int(labels[idx])


def describe_source(source) -> str:
    """Short text naming an image source (for protocols)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, dict):
        return ', '.join(f'{k}={v}' for k, v in source.items())
    meta = getattr(source, 'metainfo', None) or {}
    shown = ', '.join(f'{k}={v}' for k, v in meta.items() if k in ('name', 'split', 'path', 'data_root'))
    return f'{type(source).__name__}({shown})'


def iter_uint8_batches(ds, indices: Sequence[int], batch_size: int = 250,
                       progress: Optional[str] = None) -> Iterator[Tuple[Sequence[int], Tensor]]:
    """Yield ``(indices, uint8 (B, C, H, W))`` batches of ``ds`` (with a progress bar titled ``progress``)."""
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        print(progress, flush=True)
        bar = ProgressBar(len(indices))
    for start in range(0, len(indices), batch_size):
        idx = list(indices[start:start + batch_size])
        imgs = torch.stack([ds.get_uint8(int(i)) for i in idx])
        yield idx, imgs
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        print(flush=True)


def subset_indices(n: int, max_items: Optional[int], seed: int = 0) -> np.ndarray:
    """All of ``range(n)``, or a seeded random subset of ``max_items`` of them in ascending order."""
    if max_items is None or max_items >= n:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, int(max_items), replace=False))
