# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The machinery every kdm metric shares: detector features of sample batches, exact distributed collection and
the real side (reference files or datasets).

Samples reach a metric as MMEngine passes them from ``model.test_step``/``val_step``: a list of
``dict(fake=uint8 (C, H, W), seed=int, label=int)``. Two ways of collecting over ranks:

- :class:`StatsMetric` (FID, sFID, classifier accuracy): per-rank float64 sums ``Σf``, ``Σfᵀf`` and a count,
  ``all_reduce``-d in :meth:`evaluate` (EDM's ``fid.py``), instead of pickling 50k x 2048 features through
  MMEngine's ``collect_results``.
- :class:`GatherMetric` (IS, KID, PRDC, P/R): all features are gathered to rank 0 and sorted by sample seed, so
  the values do not depend on the number of processes.

Both need ``DefaultSampler(shuffle=False, round_up=False)`` (no padded duplicates); a padded sampler is detected
(more samples than the dataset has) and refused for sums, de-duplicated by seed for gathered features.
"""
import logging
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import (all_reduce, broadcast_object_list, collect_results, get_dist_info,
                           is_main_process)
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from torch import Tensor

from .detectors import detector_key, extract_features, get_detector
from .image_sources import describe_source, iter_uint8_batches, open_image_source, subset_indices
from .ref_stats import check_protocol, load_reference


class FeatureStats:
    """Streaming float64 mean/covariance of feature rows (EDM ``fid.py``: ``Σf``, ``Σfᵀf``, count).

    Args:
        dim (int, optional): Feature dimension (taken from the first batch when None).
    """

    def __init__(self, dim: Optional[int] = None):
        self.dim = dim
        self.n = 0
        self.sum: Optional[Tensor] = None
        self.sum_sq: Optional[Tensor] = None

    def update(self, feats: Tensor) -> None:
        """Add (N, D) feature rows (any float dtype/device; accumulated in float64 on that device)."""
        if feats.ndim != 2:
            raise ValueError(f'features must be (N, D), got shape {tuple(feats.shape)}')
        if self.dim is None:
            self.dim = feats.shape[1]
        if feats.shape[1] != self.dim:
            raise ValueError(f'feature dimension mismatch: got {feats.shape[1]}, expected {self.dim}')
        f = feats.to(torch.float64)
        if self.sum is None:
            self.sum = torch.zeros(self.dim, dtype=torch.float64, device=f.device)
            self.sum_sq = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=f.device)
        self.sum += f.sum(0)
        self.sum_sq += f.t() @ f
        self.n += f.shape[0]

    def all_reduce(self) -> None:
        """Sum the statistics over all ranks (every rank must call it, also with zero samples)."""
        _, world = get_dist_info()
        if world == 1:
            return
        dim = torch.tensor([self.dim or 0], dtype=torch.int64)
        all_reduce(dim, op='max')
        d = int(dim)
        if self.sum is None:
            self.dim = d
            self.sum = torch.zeros(d, dtype=torch.float64)
            self.sum_sq = torch.zeros(d, d, dtype=torch.float64)
        n = torch.tensor([float(self.n)], dtype=torch.float64, device=self.sum.device)
        for t in (n, self.sum, self.sum_sq):
            all_reduce(t, op='sum')
        self.n = int(round(float(n)))

    def mean_cov(self, ddof: int = 1):
        """(mu (D,), sigma (D, D)) as float64 numpy arrays; ``ddof=1`` is EDM's/pytorch-fid's unbiased Σ."""
        if self.n <= ddof:
            raise ValueError(f'need more than {ddof} samples for a covariance, got {self.n}')
        mu = self.sum / self.n
        sigma = (self.sum_sq - self.n * torch.outer(mu, mu)) / (self.n - ddof)
        return mu.cpu().numpy(), sigma.cpu().numpy()


def as_numpy_features(x) -> np.ndarray:
    """Tensor/array (N, D) -> float32 numpy."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


# module-level caches shared by metrics of one process: real statistics and real features per (source, detector)
_REAL_CACHE: Dict[tuple, object] = {}


class DetectorMetric(BaseMetric):
    """Base of metrics computed from detector features of generated samples.

    Args:
        detector (dict): Detector config (``MODELS``), e.g. ``dict(type='FIDInceptionV3', weights=PATH)`` or
            ``dict(type='DigitsClassifier', weights=PATH)``. Built once per process, shared between metrics.
        ref (str, optional): Reference file (see :mod:`kdm.evaluation.ref_stats`).
        real (dict | str, optional): Real images instead of a reference file: a dataset config or a path
            (folder, EDM zip, ADM npz, CIFAR-10 folder); features are computed (split over ranks) at the first
            evaluation and cached for the process.
        real_max (int, optional): Use a seeded random subset of this many real images.
        real_split (str): CIFAR-10 split when ``real`` is a CIFAR-10 folder.
        batch_size (int): Detector batch size for real images.
        image_key (str): Key of the images in the sample dicts.
        seed (int): Seed of random subsets.
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``.
    """

    features: Sequence[str] = ('pool',)
    default_prefix = ''  # keys are self-explanatory ('FID', 'IS', ...); '' also silences MMEngine's warning

    def __init__(self, detector: Optional[dict] = None, ref: Optional[str] = None,
                 real: Union[dict, str, None] = None, real_max: Optional[int] = None, real_split: str = 'train',
                 batch_size: int = 250, image_key: str = 'fake', seed: int = 0, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, collect_dir: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.detector_cfg = dict(type='FIDInceptionV3') if detector is None else detector
        self.ref, self.real, self.real_max, self.real_split = ref, real, real_max, real_split
        self.batch_size, self.image_key, self.seed = int(batch_size), image_key, int(seed)
        self.protocol: Dict = {}

    # ---------------------------------------------------------------- detector and samples
    @property
    def detector(self):
        """The detector network, built once per process and shared by every metric with the same config."""
        return get_detector(self.detector_cfg)

    def sample_features(self, data_samples: Sequence[dict]) -> Dict[str, Tensor]:
        """Detector features (``self.features``) of a batch of generated samples (their uint8 ``image_key``)."""
        samples = [s if isinstance(s, dict) else s.to_dict() for s in data_samples]
        return extract_features(self.detector, samples, self.features, detector_key(self.detector_cfg),
                                self.image_key)

    @staticmethod
    def sample_ints(data_samples: Sequence[dict], key: str, default: int = -1) -> Tensor:
        """The integer field ``key`` (seed, label) of every sample as an int64 tensor; ``default`` if absent."""
        out = []
        for s in data_samples:
            v = s.get(key, default) if isinstance(s, dict) else getattr(s, key, default)
            out.append(int(v))
        return torch.tensor(out, dtype=torch.int64)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        feats = self.sample_features(data_samples)
        self.accumulate(feats, self.sample_ints(data_samples, 'seed'), self.sample_ints(data_samples, 'label'))

    def accumulate(self, feats: Dict[str, Tensor], seeds: Tensor, labels: Tensor) -> None:
        """Abstract: add one batch of detector features to the metric's state."""
        raise NotImplementedError(f'{type(self).__name__} must implement accumulate (abstract)')

    def compute_metrics(self, results: list) -> dict:
        """Not used: :meth:`evaluate` is overridden (it reduces feature statistics across ranks itself)."""
        raise RuntimeError(f'{type(self).__name__}.compute_metrics is not used; call evaluate()')

    # ---------------------------------------------------------------- the real side
    def _real_key(self, kind: str, names: Sequence[str]) -> tuple:
        src = self.ref if self.ref is not None else repr(self.real)
        return (kind, src, tuple(names), self.real_max, self.real_split, self.seed,
                detector_key(self.detector_cfg))

    def _open_real(self, ref: Optional[dict] = None, missing: str = ''):
        """The real images: the ``real`` dataset, or the images stored in the reference file ``ref`` (a
        ``load_reference`` dict), which must have them (else ``ValueError(missing)``)."""
        if ref is not None:
            if 'images' not in ref:
                raise ValueError(missing)
            from kdm.datasets.npz import NpzDataset
            return NpzDataset(ref['path'])
        if self.real is None:
            raise ValueError(f'{type(self).__name__}: give ref=PATH (reference statistics) or real=DATASET')
        return open_image_source(self.real, split=self.real_split)

    def _real_indices(self, n: int) -> np.ndarray:
        return subset_indices(n, self.real_max, self.seed)

    def real_stats(self, names: Sequence[str] = ('pool',), keys=(('mu', 'sigma'),), ddof: int = 1):
        """{name: (mu, sigma)} of the real set for each detector feature in ``names``; collective when computed
        from images (every rank must call it)."""
        key = self._real_key('stats', names)
        if key in _REAL_CACHE:
            return _REAL_CACHE[key]
        ref = None
        if self.ref is not None:
            ref = load_reference(self.ref)
            if all(m in ref for m, _ in keys):
                check_protocol(ref, self.detector.protocol, type(self).__name__)
                out = {n: (ref[m], ref[s]) for n, (m, s) in zip(names, keys)}
                self.real_desc = f'{self.ref} ({ref["format"]}, {ref.get("num_images") or "?"} images)'
                self.n_real = ref.get('num_images')
                _REAL_CACHE[key] = out
                return out
        ds = self._open_real(ref, f'{type(self).__name__}: {self.ref} has neither {[m for m, _ in keys]} statistics '
                             'nor arr_0 images to compute them from')
        idx = self._real_indices(len(ds))
        rank, world = get_dist_info()
        stats = {n: FeatureStats() for n in names}
        det = self.detector
        mine = idx[rank::world]
        progress = f'{type(self).__name__}: real features of {len(idx)} images' if rank == 0 else None
        for _, imgs in iter_uint8_batches(ds, mine, self.batch_size, progress):
            out = det(imgs, features=tuple(names))
            for n in names:
                stats[n].update(out[n])
        result = {}
        for n in names:
            if stats[n].dim is None:
                stats[n].dim = det.feature_dims[n]
            stats[n].all_reduce()
            result[n] = stats[n].mean_cov(ddof)
        self.real_desc = f'{describe_source(self.ref or self.real)} ({len(idx)} images, computed)'
        self.n_real = len(idx)
        _REAL_CACHE[key] = result
        return result

    def real_features(self, names: Sequence[str] = ('pool',)) -> Optional[Dict[str, np.ndarray]]:
        """{name: float32 (N, D)} real features on rank 0 (None elsewhere); collective when computed."""
        key = self._real_key('features', names)
        if key in _REAL_CACHE:
            return _REAL_CACHE[key]
        ref = None
        if self.ref is not None:
            ref = load_reference(self.ref)
            have = {'pool': 'features', 'logits': 'logits'}
            if all(have.get(n) in ref for n in names):
                check_protocol(ref, self.detector.protocol, type(self).__name__)
                sel = self._real_indices(len(ref[have[names[0]]]))
                out = {n: ref[have[n]][sel] for n in names}
                self.real_desc = f'{self.ref} ({ref["format"]} features, {len(sel)} used)'
                self.n_real = len(sel)
                _REAL_CACHE[key] = out
                return out
        ds = self._open_real(ref, f'{type(self).__name__} needs real features: {self.ref} has only mean/covariance '
                             'statistics. Recompute it with `tools/fid_ref.py --features` or pass real=DATASET')
        idx = self._real_indices(len(ds))
        rank, world = get_dist_info()
        det = self.detector
        parts = []
        progress = f'{type(self).__name__}: real features of {len(idx)} images' if rank == 0 else None
        for bidx, imgs in iter_uint8_batches(ds, idx[rank::world], self.batch_size, progress):
            out = det(imgs, features=tuple(names))
            parts.append(dict(index=np.asarray(bidx), **{n: as_numpy_features(out[n]) for n in names}))
        gathered = collect_results(parts, len(idx), device='cpu') if world > 1 else parts
        result = None
        if is_main_process():
            order = np.argsort(np.concatenate([p['index'] for p in gathered]), kind='stable')
            result = {n: np.concatenate([p[n] for p in gathered])[order] for n in names}
        self.real_desc = f'{describe_source(self.ref or self.real)} ({len(idx)} images, computed)'
        self.n_real = len(idx)
        _REAL_CACHE[key] = result
        return result

    def _base_protocol(self, n_fake: int) -> dict:
        det = self.detector.protocol
        return dict(metric=type(self).__name__, n_fake=n_fake, n_real=getattr(self, 'n_real', None),
                    real=getattr(self, 'real_desc', None), detector=det.get('detector'),
                    detector_weights=det.get('weights'), detector_sha256=det.get('weights_sha256'))


def _finish(metrics: Optional[dict], prefix: Optional[str]) -> dict:
    """Broadcast rank 0's metrics to every rank and add the prefix."""
    box = [metrics]
    broadcast_object_list(box)
    out = box[0]
    if prefix:
        out = {f'{prefix}/{k}': v for k, v in out.items()}
    return out


class StatsMetric(DetectorMetric):
    """A metric whose samples reduce to float64 sums (see the module docstring); subclasses implement
    :meth:`compute_from_stats` (rank 0) and may use :meth:`real_stats` (collective)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fake_stats: Dict[str, FeatureStats] = {n: FeatureStats() for n in self.features}

    def accumulate(self, feats: Dict[str, Tensor], seeds: Tensor, labels: Tensor) -> None:
        for n in self.features:
            self.fake_stats[n].update(feats[n])

    def _reduce(self, size: int) -> int:
        for n in self.features:
            if self.fake_stats[n].dim is None:
                self.fake_stats[n].dim = self.detector.feature_dims[n]
            self.fake_stats[n].all_reduce()
        count = self.fake_stats[self.features[0]].n
        if count > size:
            raise RuntimeError(
                f'{type(self).__name__}: {count} samples were processed for a dataset of {size}: the sampler padded '
                'the ranks with duplicates. Use sampler=dict(type="DefaultSampler", shuffle=False, round_up=False).')
        if count < size:
            print_log(f'{type(self).__name__}: {count} samples processed, the dataset has {size}',
                      logger='current', level=logging.WARNING)
        return count

    def evaluate(self, size: int) -> dict:
        """All-reduce the running statistics of ``size`` samples, then compute the metric on rank 0."""
        count = self._reduce(size)
        real = self.prepare_real()  # collective
        metrics = self.compute_from_stats(real, count) if is_main_process() else None
        self.fake_stats = {n: FeatureStats() for n in self.features}
        out = _finish(metrics, self.prefix)
        box = [self.protocol]
        broadcast_object_list(box)
        self.protocol = box[0]
        return out

    def prepare_real(self):
        """Reference-side data of the metric (collective: every rank calls it); None when it needs none."""
        return None

    def compute_from_stats(self, real, count: int) -> dict:
        """Abstract: the metric values from the reduced statistics and the reference."""
        raise NotImplementedError(f'{type(self).__name__} must implement compute_from_stats (abstract)')


class GatherMetric(DetectorMetric):
    """A metric that needs every sample's features on rank 0 (sorted by seed); subclasses implement
    :meth:`compute_from_features` (rank 0) and may use :meth:`real_features` (collective)."""

    def accumulate(self, feats: Dict[str, Tensor], seeds: Tensor, labels: Tensor) -> None:
        self.results.append(dict(seed=seeds.numpy(), label=labels.numpy(),
                                 **{n: as_numpy_features(feats[n]) for n in self.features}))

    def _gather(self, size: int) -> Optional[Dict[str, np.ndarray]]:
        _, world = get_dist_info()
        parts = self.results
        if world > 1:
            parts = collect_results(self.results, size, device=self.collect_device,
                                    **(dict(tmpdir=self.collect_dir) if self.collect_device == 'cpu' else {}))
        self.results = []
        if not is_main_process():
            return None
        parts = [p for p in parts if p is not None]
        if not parts:
            raise RuntimeError(f'{type(self).__name__}: no samples were processed')
        seeds = np.concatenate([p['seed'] for p in parts])
        order = np.argsort(seeds, kind='stable')
        out = {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0]}
        if len(out['seed']) > size:  # a padded sampler repeated some samples: keep each seed once
            keep = np.concatenate([[True], out['seed'][1:] != out['seed'][:-1]])
            out = {k: v[keep] for k, v in out.items()}
            print_log(f'{type(self).__name__}: dropped {int((~keep).sum())} duplicated samples (padded sampler; '
                      'use round_up=False)', logger='current', level=logging.WARNING)
        return out

    def evaluate(self, size: int) -> dict:
        """Gather the features of ``size`` samples in seed order, then compute the metric on rank 0."""
        fake = self._gather(size)
        real = self.prepare_real()  # collective
        metrics = self.compute_from_features(fake, real) if is_main_process() else None
        out = _finish(metrics, self.prefix)
        box = [self.protocol]
        broadcast_object_list(box)
        self.protocol = box[0]
        return out

    def prepare_real(self):
        """Reference-side data of the metric (collective: every rank calls it); None when it needs none."""
        return None

    def compute_from_features(self, fake: Dict[str, np.ndarray], real) -> dict:
        """Abstract: the metric values from the gathered fake features and the reference."""
        raise NotImplementedError(f'{type(self).__name__} must implement compute_from_features (abstract)')

