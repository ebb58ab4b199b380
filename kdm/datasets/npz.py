# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Image batches in ``.npz``/``.npy`` files: the ADM / DKDM sample and reference format (``arr_0``, uint8 NHWC)."""
import os
import zipfile
from typing import Optional, Union

import numpy as np
import torch

from kdm.registry import DATASETS

from .base import UInt8ImageDataset, hwc_to_chw, num_classes_of


def _npz_member_layout(path: str, key: str):
    """``(offset, shape, dtype, fortran_order)`` of an uncompressed npz member, or None if it cannot be mapped."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f'{key}.npy')
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            return None
    with open(path, 'rb') as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the local file header; its name/extra lengths may differ from the central directory
        if local[:4] != b'PK\x03\x04':
            return None
        f.seek(info.header_offset + 30 + int.from_bytes(local[26:28], 'little') +
               int.from_bytes(local[28:30], 'little'))
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        if dtype.hasobject:
            return None
        return f.tell(), shape, dtype, fortran


def load_array(path: str, key: Optional[str] = None, mmap: bool = True) -> np.ndarray:
    """Load one array of a ``.npy`` file or one member of a ``.npz`` file, memory-mapped where possible.

    Members of uncompressed archives (``np.savez``) are mapped in place; compressed ones (``np.savez_compressed``)
    are read into memory. Object arrays are refused (``allow_pickle=False``).

    Args:
        path (str): ``.npy`` or ``.npz`` file.
        key (str, optional): The member of an ``.npz`` (ignored for ``.npy``).
        mmap (bool): Map the array read-only instead of reading it.

    Raises:
        FileNotFoundError: if the file does not exist. KeyError: naming the available keys.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"array file '{path}' does not exist")
    if not zipfile.is_zipfile(path):  # a plain .npy
        return np.load(path, mmap_mode='r' if mmap else None, allow_pickle=False)
    with np.load(path, allow_pickle=False) as npz:
        if key not in npz.files:
            raise KeyError(f"'{path}' has no array '{key}'; it holds {npz.files}")
        layout = _npz_member_layout(path, key) if mmap else None
        if layout is None:
            return npz[key]
    offset, shape, dtype, fortran = layout
    if int(np.prod(shape)) == 0:
        return np.empty(shape, dtype)
    return np.memmap(path, dtype=dtype, mode='r', offset=offset, shape=shape, order='F' if fortran else 'C')


def check_uint8_nhwc(images: np.ndarray, name: str) -> None:
    """Raise a clear error unless ``images`` is a uint8 (N, H, W, C) array with C in {1, 3}."""
    if images.dtype != np.uint8:
        raise ValueError(f'{name}: images must be uint8 (N, H, W, C) in 0..255, got dtype {images.dtype}')
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        hint = ' (it looks like NCHW: transpose to NHWC)' if images.ndim == 4 and images.shape[1] in (1, 3) else ''
        raise ValueError(f'{name}: images must be (N, H, W, C) with C = 1 or 3, got shape {images.shape}{hint}')


@DATASETS.register_module()
class NpzDataset(UInt8ImageDataset):
    """Images stored as one uint8 NHWC array: ADM / DKDM sample batches and reference batches, converted datasets.

    ``tools/sample.py`` and ADM's ``image_sample.py`` write ``arr_0`` (images) and, for class-conditional models,
    ``arr_1`` (labels). The array is memory-mapped when the archive is uncompressed (``np.savez``,
    :func:`save_npz_batch`) and opened lazily in each process, so dataloader workers share the page cache.

    Args:
        path (str): ``.npz`` (or ``.npy``) file.
        key (str): The images' array. Defaults to ``'arr_0'``.
        label_key (str, optional): The labels' array (int, shape (N,)), e.g. ``'arr_1'``. None: unlabelled.
    """

    def __init__(self, path: str, key: str = 'arr_0', label_key: Optional[str] = None):
        self.path, self.key = path, key
        self._images, self._pid = None, None
        images = self._array()
        check_uint8_nhwc(images, f'{path}:{key}')
        self.labels = None
        if label_key is not None:
            labels = np.asarray(load_array(path, label_key, mmap=False))
            if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f'{path}:{label_key}: labels must be integers of shape ({len(images)},), got '
                                 f'{labels.dtype} {labels.shape}')
            self.labels = labels.astype(np.int64)
        n, h, w, c = images.shape
        self.metainfo = dict(name='npz', path=path, num_images=n, resolution=h if h == w else (h, w), channels=c,
                             num_classes=num_classes_of(self.labels))

    def _array(self) -> np.ndarray:
        if self._images is None or self._pid != os.getpid():
            self._images, self._pid = load_array(self.path, self.key), os.getpid()
        return self._images

    def __getstate__(self):
        state = self.__dict__.copy()
        if isinstance(self._images, np.memmap):  # reopen the mapping in the new process, do not copy the data
            state['_images'] = state['_pid'] = None
        return state

    def __len__(self) -> int:
        return self.metainfo['num_images']

    def get_uint8(self, idx: int) -> torch.Tensor:
        """The stored pixels of image ``idx``: uint8 (C, H, W)."""
        return hwc_to_chw(self._array()[idx])

    def get_label(self, idx: int) -> int:
        """The class of image ``idx``, -1 when unlabelled."""
        return -1 if self.labels is None else int(self.labels[idx])


def save_npz_batch(path: str, images: Union[np.ndarray, torch.Tensor],
                   labels: Optional[Union[np.ndarray, torch.Tensor]] = None) -> None:
    """Write an ADM-format sample batch atomically: ``arr_0`` = uint8 NHWC images (+ ``arr_1`` = int64 labels).

    The archive is uncompressed, so :class:`NpzDataset` can memory-map it and ADM's evaluator reads it as is.

    Args:
        path (str): Destination (``.npz`` is the convention; the name is used as given).
        images: uint8 (N, H, W, C) with C = 1 or 3.
        labels (optional): Integer class labels, shape (N,).
    """
    images = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    check_uint8_nhwc(images, 'save_npz_batch')
    arrays = dict(arr_0=images)
    if labels is not None:
        labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f'save_npz_batch: labels must be integers of shape ({len(images)},), got '
                             f'{labels.dtype} {labels.shape}')
        arrays['arr_1'] = labels.astype(np.int64)
    from kdm.engine.checkpoint import atomic_write  # here: kdm.engine imports the models, which import datasets
    atomic_write(path, lambda f: np.savez(f, **arrays))
