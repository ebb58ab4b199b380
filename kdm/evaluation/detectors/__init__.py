# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Feature detectors of the metrics.

Interface: ``detector(uint8 (N, C, H, W), features=(...)) -> dict(name=float32 (N, D))`` with the attributes
``feature_dims`` (name -> D) and ``protocol`` (a dict printed with every number). :func:`get_detector` builds a
detector from its config once per process and shares it between metrics, so FID, IS and PRDC of one evaluation
run the network once per batch (see :func:`extract_features`).
"""
from typing import Dict, Sequence, Union

import torch
from torch import Tensor, nn

from kdm.registry import MODELS
from .classifier import DIGITS_CLASSIFIER_ENV, DigitsClassifier
from .inception import (INCEPTION_ENV, INCEPTION_FILES, FIDInceptionV3, check_uint8_images,
                        resolve_inception_weights, tf1_bilinear_resize, tf1_resize_matrix)

__all__ = ['FIDInceptionV3', 'DigitsClassifier', 'get_detector', 'detector_key', 'extract_features',
           'check_uint8_images', 'tf1_bilinear_resize', 'tf1_resize_matrix', 'resolve_inception_weights',
           'INCEPTION_ENV', 'INCEPTION_FILES', 'DIGITS_CLASSIFIER_ENV']

_DETECTORS: Dict[str, nn.Module] = {}


def detector_key(cfg: Union[dict, nn.Module]) -> str:
    """A string identifying a detector config (or instance) within this process."""
    if isinstance(cfg, nn.Module):
        return f'module:{id(cfg)}'
    return repr(sorted((k, repr(v)) for k, v in dict(cfg).items()))


def default_device() -> torch.device:
    """The current CUDA device if there is one, else the CPU."""
    return torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else torch.device('cpu')


def get_detector(cfg: Union[dict, nn.Module], device=None) -> nn.Module:
    """Build (once per process) the detector described by ``cfg`` and move it to ``device`` (default: the current
    CUDA device, else CPU). An ``nn.Module`` is returned as is (moved to ``device``)."""
    key = detector_key(cfg)
    if key not in _DETECTORS:
        det = cfg if isinstance(cfg, nn.Module) else MODELS.build(dict(cfg))
        for attr in ('feature_dims', 'protocol'):
            if not hasattr(det, attr):
                raise TypeError(f'detector {type(det).__name__} lacks the attribute `{attr}` of the detector '
                                'interface (see kdm/evaluation/detectors/__init__.py)')
        _DETECTORS[key] = det.eval()
    det = _DETECTORS[key]
    return det.to(device if device is not None else default_device())


def extract_features(detector: nn.Module, samples: Sequence[dict], features: Sequence[str], key: str,
                     image_key: str = 'fake') -> Dict[str, Tensor]:
    """Features of a batch of sample dicts, computed once per detector and batch.

    The first metric that asks runs ``detector`` on the stacked ``sample[image_key]`` and stores one row per
    sample under ``sample['_kdm_features'][key]``; later metrics of the same evaluator reuse the rows (MMEngine
    passes the same sample dicts to every metric). Returns float32 CPU-or-device tensors (N, D) per feature.
    """
    if not samples:
        return {f: torch.zeros(0, detector.feature_dims[f]) for f in features}
    cached = [s.get('_kdm_features', {}).get(key, {}) for s in samples]
    missing = [f for f in features if any(f not in c for c in cached)]
    if missing:
        imgs = []
        for i, s in enumerate(samples):
            if image_key not in s:
                raise KeyError(f'sample {i} has no "{image_key}" image; samples must be dicts '
                               f'dict({image_key}=uint8 (C, H, W) tensor, seed=int, label=int), got keys {sorted(s)}')
            imgs.append(s[image_key])
        shapes = {tuple(t.shape) for t in imgs if isinstance(t, Tensor)}
        if len(shapes) > 1:
            raise ValueError(f'samples of one batch have different shapes {sorted(shapes)}')
        batch = check_uint8_images(torch.stack(imgs) if all(isinstance(t, Tensor) for t in imgs) else imgs,
                                   f'samples["{image_key}"]', channels=getattr(detector, 'input_channels', (1, 3)))
        out = detector(batch, features=missing)
        for i, s in enumerate(samples):
            s.setdefault('_kdm_features', {}).setdefault(key, {}).update({f: out[f][i] for f in missing})
    return {f: torch.stack([s['_kdm_features'][key][f] for s in samples]) for f in features}
