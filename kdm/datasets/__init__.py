# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Datasets (they know no method) and samplers; importing this registers all of them.

Image datasets return ``dict(img=float32 (C, H, W) in [-1, 1], label=int64 scalar)`` (label -1 when unlabelled),
expose ``metainfo`` and ``get_uint8(idx)``; see ``docs/datasets.md``.
"""
from .base import float_to_uint8, uint8_to_float  # noqa: F401
from .cifar10 import CIFAR10Dataset  # noqa: F401
from .digits import DigitsDataset  # noqa: F401
from .edm_zip import EDMZipDataset  # noqa: F401
from .generation import IndexDataset, SeedDataset, parse_seeds  # noqa: F401
from .image_folder import ImageFolderDataset  # noqa: F401
from .npz import NpzDataset, load_array, save_npz_batch  # noqa: F401
from .samplers import ResumableInfiniteSampler  # noqa: F401
from .synthetic import MixedDataset, SyntheticPairDataset, save_pairs  # noqa: F401
from .toy2d import Toy2DDataset  # noqa: F401
