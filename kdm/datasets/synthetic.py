# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Teacher-generated data: (noise, sample) reflow pairs and DKDM's data-limited mix of real and synthetic images.

Teacher sample *pools* (DKDM's data-free baseline: ADM's ``samples_<K>t_<N>x<H>x<W>x3.npz``) are plain image
batches: read them with :class:`~kdm.datasets.npz.NpzDataset`.

Pair file format (written by :func:`save_pairs`, read by :class:`SyntheticPairDataset`), ``.pt`` or ``.npz``:

=========  ==========================================  ==============================================================
key        dtype / shape                               meaning
=========  ==========================================  ==============================================================
``noise``  float (N, C, H, W) or (N, D)                the standard-normal draw the teacher's sampler started from
                                                       (unit variance, *before* any scaling by sigma_max); RF's z0
``sample`` float, same shape as ``noise``, in [-1, 1]  the teacher's output for that noise (RF's z1 / x1)
``label``  int64 (N,), optional                        the class the teacher was conditioned on
=========  ==========================================  ==============================================================

``.pt`` files are loaded with ``torch.load(weights_only=True, mmap=True)``; ``.npz`` files are written uncompressed
and memory-mapped. A directory is read as the concatenation, in sorted order, of its ``*.pt``/``*.npz`` shards and
of RectifiedFlow/SlimFlow seed folders (``<dir>/<seed>/z0.npy``, ``z1.npy``, optional ``label.npy``).
"""
import bisect
import os
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from kdm.registry import DATASETS

from .base import as_label, float_to_uint8, num_classes_of
from .npz import load_array

Array = Union[np.ndarray, torch.Tensor]
_PAIR_SUFFIXES = ('.pt', '.npz')


def _to_tensor(x: Array) -> torch.Tensor:
    """A CPU tensor owning its storage (so torch.save writes only these elements)."""
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    return t.contiguous().clone()


def save_pairs(path: str, noise: Array, sample: Array, label: Optional[Array] = None) -> None:
    """Write (noise, sample[, label]) pairs atomically (temporary file + ``os.replace``) in the format above.

    Args:
        path (str): Destination ending in ``.pt`` (torch tensors; keeps float16/bfloat16) or ``.npz``
            (uncompressed numpy; bfloat16 is stored as float32).
        noise: Float (N, ...) standard-normal draws the teacher started from.
        sample: Float (N, ...) teacher outputs in [-1, 1], same shape as ``noise``.
        label (optional): Int (N,) classes the teacher was conditioned on.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _PAIR_SUFFIXES:
        raise ValueError(f"save_pairs writes .pt or .npz files, got '{path}'")
    data = dict(noise=_to_tensor(noise), sample=_to_tensor(sample))
    if label is not None:
        data['label'] = _to_tensor(label)
    _check_pairs(data, f'save_pairs({path})')
    if 'label' in data:
        data['label'] = data['label'].to(torch.int64)
    from kdm.engine.checkpoint import atomic_write  # here: kdm.engine imports the models, which import datasets
    if suffix == '.pt':
        atomic_write(path, lambda f: torch.save(data, f))
    else:
        arrays = {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in data.items()}
        atomic_write(path, lambda f: np.savez(f, **arrays))


def _is_dtype(x: Array, kind: str) -> bool:
    if isinstance(x, torch.Tensor):
        return x.is_floating_point() if kind == 'float' else not (x.is_floating_point() or x.is_complex()
                                                                   or x.dtype == torch.bool)
    return np.issubdtype(x.dtype, np.floating if kind == 'float' else np.integer)


def _check_pairs(data: dict, source: str) -> None:
    noise, sample, label = data['noise'], data['sample'], data.get('label')
    if tuple(noise.shape) != tuple(sample.shape) or len(noise.shape) < 2 or noise.shape[0] == 0:
        raise ValueError(f'{source}: noise and sample must have the same shape (N, ...) with N > 0, got '
                         f'{tuple(noise.shape)} and {tuple(sample.shape)}')
    if not (_is_dtype(noise, 'float') and _is_dtype(sample, 'float')):
        raise ValueError(f'{source}: noise and sample must be float arrays, got {noise.dtype} and {sample.dtype}')
    if label is not None and (tuple(label.shape) != (noise.shape[0],) or not _is_dtype(label, 'int')):
        raise ValueError(f'{source}: label must be integers of shape ({noise.shape[0]},), got {label.dtype} '
                         f'{tuple(label.shape)}')


def _load_shard(path: str) -> dict:
    """Read one pair file or seed folder as ``dict(noise, sample[, label])`` (tensors or arrays, not copied)."""
    if os.path.isdir(path):  # RectifiedFlow / SlimFlow: z0 = noise, z1 = sample
        data = dict(noise=load_array(os.path.join(path, 'z0.npy')), sample=load_array(os.path.join(path, 'z1.npy')))
        if os.path.isfile(os.path.join(path, 'label.npy')):
            data['label'] = np.asarray(load_array(os.path.join(path, 'label.npy'), mmap=False)).reshape(-1)
    elif path.lower().endswith('.pt'):
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except RuntimeError as e:  # files in torch's legacy (non-zip) format cannot be mapped
            if 'mmap' not in str(e):
                raise
            obj = torch.load(path, map_location='cpu', weights_only=True)
        if not isinstance(obj, dict) or 'noise' not in obj or 'sample' not in obj:
            raise ValueError(f"{path}: a pair file is a dict with 'noise' and 'sample' (and optional 'label')")
        data = {k: obj[k] for k in ('noise', 'sample', 'label') if k in obj}
    else:
        with np.load(path, allow_pickle=False) as npz:
            keys = npz.files
        if 'noise' not in keys or 'sample' not in keys:
            raise ValueError(f"{path}: a pair file holds 'noise' and 'sample' (and optional 'label'), found {keys}")
        data = {k: load_array(path, k) for k in ('noise', 'sample', 'label') if k in keys}
    _check_pairs(data, path)
    return data


def find_pair_shards(path: str) -> List[str]:
    """The pair files/seed folders that make up ``path`` (a file, or a directory of shards), in sorted order."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"pair data '{path}' does not exist (write it with kdm.datasets.save_pairs)")
    shards = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full) and os.path.splitext(name)[1].lower() in _PAIR_SUFFIXES:
            shards.append(full)
        elif os.path.isfile(os.path.join(full, 'z0.npy')) and os.path.isfile(os.path.join(full, 'z1.npy')):
            shards.append(full)
    if os.path.isfile(os.path.join(path, 'z0.npy')) and os.path.isfile(os.path.join(path, 'z1.npy')):
        shards.insert(0, path)
    if not shards:
        raise ValueError(f"no pair files (*.pt, *.npz) or seed folders (<seed>/z0.npy, z1.npy) in '{path}'")
    return shards


@DATASETS.register_module()
class SyntheticPairDataset(Dataset):
    """(noise, sample) pairs generated by a teacher, for reflow / SlimFlow / distillation on fixed couplings.

    Items: ``dict(img=float32 sample, noise=float32 noise, label=int64)`` (label -1 when the file has none);
    ``img`` and ``noise`` are (C, H, W) for images or (D,) for 2-D toys. Files are memory-mapped and opened
    lazily in each process. The file format is described in this module's docstring.

    Args:
        path (str): A ``.pt``/``.npz`` pair file, or a directory of them and/or of ``<seed>/{z0,z1}.npy`` folders.
    """

    def __init__(self, path: str):
        self.path = path
        self.shard_paths = find_pair_shards(path)
        self._data, self._pid = None, None
        shards = self._shards()
        shapes = {tuple(s['noise'].shape[1:]) for s in shards}
        if len(shapes) != 1:
            raise ValueError(f'{path}: shards hold pairs of different shapes {sorted(shapes)}')
        if len({'label' in s for s in shards}) != 1:
            raise ValueError(f'{path}: some shards have labels and some do not')
        self.ends = np.cumsum([s['noise'].shape[0] for s in shards]).tolist()
        shape = shapes.pop()
        labels = [np.asarray(s['label']) for s in shards if 'label' in s]
        self.metainfo = dict(name='synthetic_pairs', path=path, num_images=self.ends[-1],
                             resolution=shape[1] if len(shape) == 3 and shape[1] == shape[2] else None,
                             channels=shape[0], shape=shape,
                             num_classes=num_classes_of(np.concatenate(labels) if labels else None))

    def _shards(self) -> List[dict]:
        if self._data is None or self._pid != os.getpid():
            self._data, self._pid = [_load_shard(p) for p in self.shard_paths], os.getpid()
        return self._data

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_data'] = state['_pid'] = None  # each process maps the files itself
        return state

    def __len__(self) -> int:
        return self.ends[-1]

    def _locate(self, idx: int) -> Tuple[dict, int]:
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f'index {idx} out of range for {len(self)} pairs')
        k = bisect.bisect_right(self.ends, idx)
        return self._shards()[k], idx - (self.ends[k - 1] if k else 0)

    @staticmethod
    def _float(x: Array) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x.to(torch.float32, copy=True)
        return torch.from_numpy(np.array(x, dtype=np.float32))

    def __getitem__(self, idx: int) -> dict:
        shard, i = self._locate(idx)
        return dict(img=self._float(shard['sample'][i]), noise=self._float(shard['noise'][i]),
                    label=as_label(self.get_label(idx)))

    def get_label(self, idx: int) -> int:
        """The class of pair ``idx``, -1 when the files hold no labels."""
        shard, i = self._locate(idx)
        return int(shard['label'][i]) if 'label' in shard else -1

    def get_uint8(self, idx: int) -> torch.Tensor:
        """The sample of pair ``idx`` quantised to uint8 (C, H, W) as EDM does (images only)."""
        if self.metainfo['resolution'] is None and len(self.metainfo['shape']) != 3:
            raise TypeError(f"{self.path}: samples of shape {self.metainfo['shape']} are not images")
        shard, i = self._locate(idx)
        return float_to_uint8(self._float(shard['sample'][i]))


@DATASETS.register_module()
class MixedDataset(Dataset):
    """DKDM's data-limited training set: a fraction of real images topped up with teacher samples.

    Reproduces DKDM's ``datasets/mix.py``: with ``L`` images per source, draw ``n = round(r * L)`` real and
    ``L - n`` synthetic indices without replacement from ``np.random.seed(seed)``'s stream (real first, the same
    RNG continuing for the synthetic draw) and list the real ones first. ``r = 0`` is data-free, ``r = 1`` data-based,
    ``r`` in {0.05, 0.1, 0.15, 0.2} the paper's data-limited settings. Items pass through unchanged (an
    unlabelled source keeps label -1; DKDM's baselines are unconditional).

    Args:
        real (Dataset | dict): The real dataset (or its config, built from ``DATASETS``).
        synthetic (Dataset | dict): The teacher's samples, e.g. an :class:`NpzDataset` of the same length.
        real_fraction (float): ``r`` in [0, 1].
        seed (int): NumPy seed. Defaults to 0 (as in DKDM).
        length (int, optional): ``L``. Defaults to ``len(real)``, which must then equal ``len(synthetic)``
            (DKDM asserts it).
    """

    def __init__(self, real: Union[Dataset, dict], synthetic: Union[Dataset, dict], real_fraction: float,
                 seed: int = 0, length: Optional[int] = None):
        real = DATASETS.build(real) if isinstance(real, dict) else real
        synthetic = DATASETS.build(synthetic) if isinstance(synthetic, dict) else synthetic
        if not 0.0 <= real_fraction <= 1.0:
            raise ValueError(f'real_fraction must be in [0, 1], got {real_fraction}')
        if length is None:
            if len(real) != len(synthetic):
                raise ValueError(f'MixedDataset: real ({len(real)}) and synthetic ({len(synthetic)}) sets differ in '
                                 'length; DKDM mixes sets of the same length L (or pass length=L)')
            length = len(real)
        n_real = round(length * real_fraction)  # Python's round, as mix.py
        n_syn = length - n_real
        if n_real > len(real) or n_syn > len(synthetic):
            raise ValueError(f'MixedDataset: need {n_real} real of {len(real)} and {n_syn} synthetic of '
                             f'{len(synthetic)} images')
        rng = np.random.RandomState(seed)  # the legacy global stream that np.random.seed(0) drives in mix.py
        real_idx = rng.choice(len(real), n_real, replace=False)
        syn_idx = rng.choice(len(synthetic), n_syn, replace=False)
        self.real, self.synthetic = real, synthetic
        self.index = [(0, int(i)) for i in real_idx] + [(1, int(i)) for i in syn_idx]
        meta = getattr(real, 'metainfo', {}) or {}
        syn_meta = getattr(synthetic, 'metainfo', {}) or {}
        for key in ('resolution', 'channels'):
            if key in meta and key in syn_meta and meta[key] != syn_meta[key]:
                raise ValueError(f'MixedDataset: real and synthetic images differ in {key}: {meta[key]} vs '
                                 f'{syn_meta[key]}')
        self.metainfo = dict(name='mixed', num_images=length, resolution=meta.get('resolution'),
                             channels=meta.get('channels'), num_classes=meta.get('num_classes', 0),
                             real_fraction=real_fraction, num_real=n_real, num_synthetic=n_syn)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> dict:
        src, i = self.index[idx]
        return (self.synthetic if src else self.real)[i]

    def get_uint8(self, idx: int) -> torch.Tensor:
        """The stored pixels of image ``idx`` (from whichever source it came): uint8 (C, H, W)."""
        src, i = self.index[idx]
        return (self.synthetic if src else self.real).get_uint8(i)

    def get_label(self, idx: int) -> int:
        """The label of image ``idx`` in its source dataset."""
        src, i = self.index[idx]
        ds = self.synthetic if src else self.real
        return int(ds.get_label(i)) if hasattr(ds, 'get_label') else int(ds[i]['label'])
