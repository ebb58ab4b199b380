# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The zip archives written by EDM's ``dataset_tool.py`` (PNG files + optional ``dataset.json``)."""
import os
import zipfile
from typing import Optional, Union

import torch

from kdm.registry import DATASETS
from .base import IMAGE_EXTENSIONS, UInt8ImageDataset, decode_image, hwc_to_chw, num_classes_of, parse_edm_labels
from .image_folder import resolve_labels_file

_IN_ZIP = '<dataset.json inside the zip>'


@DATASETS.register_module()
class EDMZipDataset(UInt8ImageDataset):
    """An EDM dataset zip (e.g. ``cifar10-32x32.zip``, ``imagenet-64x64.zip``), read without extracting it.

    Image members (``.png``/``.jpg``) are taken in sorted order of their names, as EDM does. The archive is opened
    lazily in each process (each dataloader worker gets its own handle; none is pickled).

    Args:
        path (str): The ``.zip`` file.
        labels (None | bool | str): None: use ``dataset.json`` in the zip when present; False: unlabelled;
            True: ``dataset.json`` must be present; a path: an external JSON file in EDM's format.
        channels (int, optional): Force 1 (grey) or 3 (RGB) channels; by default the first image decides.
    """

    def __init__(self, path: str, labels: Union[None, bool, str] = None, channels: Optional[int] = None):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"EDM dataset zip '{path}' does not exist (create it with EDM's "
                                    '`dataset_tool.py convert --dest=<name>.zip`)')
        if not zipfile.is_zipfile(path):
            raise ValueError(f"'{path}' is not a zip archive")
        self.path = path
        self._zip, self._pid = None, None
        names = self._zipfile().namelist()
        self.fnames = sorted(n for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
        if not self.fnames:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the zip '{path}'")
        first = decode_image(self._read(0), channels, name=f'{path}:{self.fnames[0]}')
        self.shape, self.channels = first.shape, first.shape[2]
        labels_file = resolve_labels_file(labels, _IN_ZIP, 'dataset.json' in names, path)
        self.labels = None
        if labels_file is _IN_ZIP:
            self.labels = parse_edm_labels(self._zipfile().read('dataset.json'), self.fnames, f'{path}:dataset.json')
        elif labels_file is not None:
            with open(labels_file, 'r') as f:
                self.labels = parse_edm_labels(f.read(), self.fnames, labels_file)
        self.metainfo = dict(name='edm_zip', path=path, num_images=len(self.fnames), resolution=first.shape[0],
                             channels=self.channels, num_classes=num_classes_of(self.labels))

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():  # a forked worker opens its own handle
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def _read(self, idx: int) -> bytes:
        return self._zipfile().read(self.fnames[idx])

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_zip'] = state['_pid'] = None
        return state

    def close(self) -> None:
        """Close this process's handle on the archive (reopened on the next access)."""
        if self._zip is not None:
            self._zip.close()
        self._zip = self._pid = None

    def __len__(self) -> int:
        return len(self.fnames)

    def get_uint8(self, idx: int) -> torch.Tensor:
        """The stored pixels of image ``idx``: uint8 (C, H, W)."""
        name = f'{self.path}:{self.fnames[idx]}'
        arr = decode_image(self._read(idx), self.channels, name=name)
        if arr.shape != self.shape:
            raise ValueError(f'{name} is {arr.shape[0]}x{arr.shape[1]}x{arr.shape[2]}, the first image is '
                             f'{self.shape[0]}x{self.shape[1]}x{self.shape[2]}')
        return hwc_to_chw(arr)

    def get_label(self, idx: int) -> int:
        """The class of image ``idx``, -1 when unlabelled."""
        return -1 if self.labels is None else self.labels[idx]
