# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""A folder of PNG/JPG images (searched recursively), with optional EDM ``dataset.json`` labels."""
import os
from typing import List, Optional, Union

import torch

from kdm.registry import DATASETS
from .base import (IMAGE_EXTENSIONS, UInt8ImageDataset, decode_image, hwc_to_chw, num_classes_of,
                   parse_edm_labels)


def resolve_labels_file(labels: Union[None, bool, str], default: str, exists: bool, where: str) -> Optional[str]:
    """Decide which labels file to read from the ``labels`` argument of the folder and zip datasets.

    ``None``: ``default`` if ``exists``; ``False``: none; ``True``: ``default``, which must exist; a string: that file.
    """
    if labels is None:
        return default if exists else None
    if labels is False:
        return None
    if labels is True:
        if not exists:
            raise FileNotFoundError(f'labels=True but {where} has no dataset.json')
        return default
    return str(labels)


@DATASETS.register_module()
class ImageFolderDataset(UInt8ImageDataset):
    """All ``.png``/``.jpg``/``.jpeg`` files under a folder, in sorted order of their relative paths.

    This reads EDM's ``dataset_tool.py`` output folders, DKDM's PNG folders (``000000.png``, ...) and any folder
    a user has. Grey images (PIL mode ``L``) give 1 channel, everything else 3 (RGB); the mode of the first image
    decides for the whole folder unless ``channels`` is given.

    Args:
        data_root (str): The folder.
        resolution (int, optional): Resize every image to ``resolution x resolution`` (squashing, no crop, with
            ``resample``) when its size differs. None (default) never resizes: all images must then share the
            first image's square size.
        labels (None | bool | str): None: read ``<data_root>/dataset.json`` when it exists; False: unlabelled;
            True: ``dataset.json`` must exist; a path: that JSON file. EDM's format:
            ``{"labels": [["sub/img0.png", 3], ...]}`` with names relative to ``data_root``.
        channels (int, optional): Force 1 (grey) or 3 (RGB) channels.
        resample (str): PIL filter for resizing (``bicubic`` default; ``bilinear``, ``lanczos``, ``box``, ...).
    """

    def __init__(self, data_root: str, resolution: Optional[int] = None, labels: Union[None, bool, str] = None,
                 channels: Optional[int] = None, resample: str = 'bicubic'):
        if not os.path.isdir(data_root):
            raise FileNotFoundError(f"image folder '{data_root}' does not exist")
        self.data_root = data_root
        self.fnames: List[str] = sorted(
            os.path.relpath(os.path.join(root, f), data_root).replace(os.sep, '/')
            for root, _, files in os.walk(data_root, followlinks=True) for f in files
            if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
        if not self.fnames:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under '{data_root}' (searched "
                             'recursively)')
        self.resolution, self.resample = resolution, resample
        first = decode_image(self._path(0), channels, resolution, resample, name=self._path(0))
        self.shape = first.shape  # (H, W, C) every image must have
        self.channels = first.shape[2]
        if first.shape[0] != first.shape[1]:
            raise ValueError(f'{self._path(0)} is {first.shape[0]}x{first.shape[1]}; images must be square '
                             '(pass resolution= to resize)')
        json_path = os.path.join(data_root, 'dataset.json')
        labels_file = resolve_labels_file(labels, json_path, os.path.isfile(json_path), data_root)
        self.labels = None
        if labels_file is not None:
            with open(labels_file, 'r') as f:
                self.labels = parse_edm_labels(f.read(), self.fnames, labels_file)
        self.metainfo = dict(name='image_folder', data_root=data_root, num_images=len(self.fnames),
                             resolution=first.shape[0], channels=self.channels,
                             num_classes=num_classes_of(self.labels))

    def _path(self, idx: int) -> str:
        return os.path.join(self.data_root, self.fnames[idx])

    def __len__(self) -> int:
        return len(self.fnames)

    def get_uint8(self, idx: int) -> torch.Tensor:
        """The pixels of image ``idx`` (after the optional resize): uint8 (C, H, W)."""
        path = self._path(idx)
        arr = decode_image(path, self.channels, self.resolution, self.resample, name=path)
        if arr.shape != self.shape:
            raise ValueError(f'{path} is {arr.shape[0]}x{arr.shape[1]}, the folder\'s first image is '
                             f'{self.shape[0]}x{self.shape[1]}; pass resolution= to resize')
        return hwc_to_chw(arr)

    def get_label(self, idx: int) -> int:
        """The class of image ``idx``, -1 when unlabelled."""
        return -1 if self.labels is None else self.labels[idx]
