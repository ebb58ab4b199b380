# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Shared pieces of the image datasets: the uint8-backed base class, image decoding, EDM labels, atomic writes.

Every image dataset of kdm returns ``dict(img=float32 (C, H, W) in [-1, 1], label=int64 scalar)`` (label -1 when
unlabelled), exposes ``metainfo`` (at least ``name, num_images, resolution, channels, num_classes``) and
``get_uint8(idx)``, the exact stored pixels as a uint8 (C, H, W) tensor (what reference statistics are computed
from). Datasets never augment: methods flip on the device.
"""
import io
import json
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

#: File extensions (lower case) read as images by the folder and zip datasets.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')


def uint8_to_float(img: torch.Tensor) -> torch.Tensor:
    """Map uint8 pixels to float32 in [-1, 1] as EDM and ADM do: ``x / 127.5 - 1``."""
    return img.to(torch.float32) / 127.5 - 1


def float_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Quantise [-1, 1] floats to uint8 as EDM's ``generate.py`` does: ``(x * 127.5 + 128).clamp(0, 255)``."""
    return (img.to(torch.float32) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def as_label(label: int) -> torch.Tensor:
    """An int64 scalar tensor (the ``label`` of an item)."""
    return torch.tensor(int(label), dtype=torch.int64)


class UInt8ImageDataset(Dataset):
    """Base class of datasets that store uint8 pixels: items come from :meth:`get_uint8` and :meth:`get_label`.

    Subclasses set ``self.metainfo`` and implement ``__len__``, ``get_uint8`` and (when labelled) ``get_label``.
    """

    metainfo: Dict

    def get_uint8(self, idx: int) -> torch.Tensor:
        """The stored pixels of image ``idx``: uint8 (C, H, W). Abstract: every dataset implements it."""
        raise NotImplementedError(f'{type(self).__name__} must implement get_uint8 (abstract)')

    def get_label(self, idx: int) -> int:
        """The class of image ``idx``, -1 when the dataset is unlabelled."""
        return -1

    def __getitem__(self, idx: int) -> dict:
        return dict(img=uint8_to_float(self.get_uint8(idx)), label=as_label(self.get_label(idx)))


def decode_image(source: Union[str, bytes, io.IOBase], channels: Optional[int] = None,
                 resolution: Optional[int] = None, resample: str = 'bicubic', name: str = '') -> np.ndarray:
    """Decode one image file to uint8 (H, W, C).

    Args:
        source: A path, the file's bytes or a binary file object.
        channels (int, optional): 1 (grey, PIL mode ``L``) or 3 (``RGB``); None keeps grey images grey and
            converts everything else (palette, RGBA, CMYK, ...) to RGB.
        resolution (int, optional): Resize to ``resolution x resolution`` (no crop; the aspect ratio is squashed,
            as DKDM's CelebA-64 preparation does) when the image has another size. None never resizes.
        resample (str): PIL filter for the resize: ``nearest``, ``box``, ``bilinear``, ``bicubic`` or ``lanczos``.
        name (str): Shown in errors.
    """
    from PIL import Image
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with Image.open(source) as im:
            im.load()
            if channels is None:
                channels = 1 if im.mode in ('1', 'L', 'I', 'I;16', 'F') else 3
            if channels not in (1, 3):
                raise ValueError(f'channels must be 1 or 3, got {channels}')
            mode = 'L' if channels == 1 else 'RGB'
            if im.mode != mode:
                im = im.convert(mode)
            if resolution is not None and im.size != (resolution, resolution):
                filters = dict(nearest=Image.NEAREST, box=Image.BOX, bilinear=Image.BILINEAR,
                               bicubic=Image.BICUBIC, lanczos=Image.LANCZOS)
                if resample not in filters:
                    raise ValueError(f"resample must be one of {sorted(filters)}, got '{resample}'")
                im = im.resize((resolution, resolution), filters[resample])
            arr = np.asarray(im, dtype=np.uint8)
    except OSError as e:
        raise OSError(f'cannot decode image {name or source}: {e}') from e
    return arr[:, :, None] if arr.ndim == 2 else arr


def hwc_to_chw(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) array to a contiguous uint8 (C, H, W) tensor."""
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())  # a writable copy, never a view of the source


def parse_edm_labels(text: Union[str, bytes], fnames: Sequence[str], source: str) -> Optional[List[int]]:
    """Read the labels of EDM's ``dataset.json`` (``{"labels": [["00000/img00000000.png", 6], ...]}``).

    Args:
        text: The JSON text.
        fnames: Image names relative to the dataset root, with ``/`` separators, in dataset order.
        source: Where the JSON came from (for errors).

    Returns:
        One int per name, or None when the file says ``"labels": null``.
    """
    try:
        labels = json.loads(text).get('labels')
    except (ValueError, AttributeError) as e:
        raise ValueError(f'{source} is not an EDM dataset.json ({{"labels": [[fname, label], ...]}}): {e}') from e
    if labels is None:
        return None
    table = {str(fname).replace('\\', '/'): lab for fname, lab in labels}
    out = []
    for fname in fnames:
        if fname not in table:
            raise ValueError(f'{source} has no label for image {fname}')
        lab = table[fname]
        if isinstance(lab, bool) or not isinstance(lab, (int, np.integer)):
            raise ValueError(f'{source}: label of {fname} is {lab!r}; kdm supports integer class labels only')
        out.append(int(lab))
    return out


def num_classes_of(labels: Optional[Union[Sequence[int], np.ndarray]]) -> int:
    """``max(label) + 1`` for labelled data, 0 for unlabelled data (EDM's ``label_dim`` convention)."""
    if labels is None or len(labels) == 0:
        return 0
    return int(np.max(np.asarray(labels))) + 1
