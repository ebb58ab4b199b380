# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""A small classifier used as the feature detector of low-resolution grey data (digits, MNIST-like).

This is the "LeNet-FID" practice: on 8x8 / 16x16 digits the ImageNet Inception is meaningless (and slow on a CPU),
so kdm trains a tiny CNN on the real training split (``tools/train_detector.py``) and measures Fréchet distance in
its penultimate feature space (``pool``, 64-d) and class accuracy of conditional samples from its ``logits``.
Numbers from it are comparable only with numbers from the same weight file (its SHA-256 is in the protocol).
"""
import os
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.registry import MODELS
from .inception import check_uint8_images, sha256_of

#: Environment variable naming the digits classifier weights (as written by ``tools/train_detector.py``).
DIGITS_CLASSIFIER_ENV = 'KDM_DIGITS_CLASSIFIER'


@MODELS.register_module()
class DigitsClassifier(nn.Module):
    """Three-conv CNN (16-32-64 channels, 2x2 pooled) for 1-channel ``resolution x resolution`` images (default
    16, the quickstart's digits).

    Input: uint8 (N, 1, H, W) (3-channel input is averaged to grey); other sizes are resized bilinearly to
    ``resolution`` (``antialias=True``). Output: ``pool`` (N, 64) penultimate ReLU features and ``logits`` (N, 10).

    Args:
        weights (str, optional): Weight file written by ``tools/train_detector.py``; None reads
            ``$KDM_DIGITS_CLASSIFIER``. Loaded with ``torch.load(weights_only=True)``.
        random_init (bool): Keep random weights (tests only).
        resolution (int): Input resolution of the network. Overridden by the weight file's metadata.
        num_classes (int): Number of classes. Overridden by the weight file's metadata.
        feature_dim (int): Width of the penultimate layer.
        seed (int): Seed of the random initialisation (``random_init=True``).
    """

    input_channels = (1, 3)

    def __init__(self, weights: Optional[str] = None, random_init: bool = False, resolution: int = 16,
                 num_classes: int = 10, feature_dim: int = 64, seed: int = 0):
        super().__init__()
        ckpt = None
        if not random_init:
            path = weights or os.environ.get(DIGITS_CLASSIFIER_ENV)
            if not path or not os.path.isfile(os.path.expanduser(path)):
                raise FileNotFoundError(
                    f'DigitsClassifier: weight file {path or "(none given)"} not found. Train it once with '
                    '`python tools/train_detector.py --out work_dirs/detectors/digits_classifier.pth` (about a minute '
                    f'on a CPU) and pass the path as detector=dict(type="DigitsClassifier", weights=PATH) or in '
                    f'${DIGITS_CLASSIFIER_ENV}.')
            path = os.path.expanduser(path)
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
            meta = ckpt.get('meta', {})
            resolution = int(meta.get('resolution', resolution))
            num_classes = int(meta.get('num_classes', num_classes))
            feature_dim = int(meta.get('feature_dim', feature_dim))
        self.resolution, self.num_classes = resolution, num_classes
        self.feature_dims = dict(pool=feature_dim, logits=num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(256, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)
        if ckpt is not None:
            self.load_state_dict(ckpt['state_dict'], strict=True)
            self.weights_path, self.weights_sha256 = path, sha256_of(path)
            self.meta = dict(ckpt.get('meta', {}))
        else:
            with torch.random.fork_rng(devices=[]):  # deterministic, leaves the global RNG untouched
                torch.manual_seed(seed)
                for m in self.modules():
                    if m is not self and hasattr(m, 'reset_parameters'):
                        m.reset_parameters()
            self.weights_path, self.weights_sha256, self.meta = 'random', 'random', {}
        self.eval().requires_grad_(False)

    @property
    def protocol(self) -> dict:
        return dict(detector=f'DigitsClassifier ({self.resolution}x{self.resolution} grey, kdm-trained)',
                    weights=self.weights_path, weights_sha256=self.weights_sha256,
                    resize=f'bilinear (antialias) to {self.resolution}x{self.resolution} when needed',
                    normalisation='x / 127.5 - 1', input='uint8 NCHW, RGB averaged to grey')

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 (N, 1|3, H, W) -> float32 (N, 1, R, R) in [-1, 1]."""
        check_uint8_images(images, 'DigitsClassifier input')
        x = images.to(torch.float32)
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode='bilinear', align_corners=False,
                              antialias=True)
        return x / 127.5 - 1

    def forward_train(self, x: Tensor) -> Tensor:
        """Logits of float [-1, 1] (N, 1, R, R) input, with gradients (used by ``tools/train_detector.py``)."""
        return self.head(self.features(x))

    @torch.no_grad()
    def forward(self, images: Tensor, features: Sequence[str] = ('pool', 'logits')) -> Dict[str, Tensor]:
        unknown = set(features) - set(self.feature_dims)
        if unknown:
            raise KeyError(f'unknown features {sorted(unknown)}; DigitsClassifier gives {sorted(self.feature_dims)}')
        x = self.preprocess(images.to(self.head.weight.device))
        pool = self.features(x)
        out = {}
        if 'pool' in features:
            out['pool'] = pool
        if 'logits' in features:
            out['logits'] = self.head(pool)
        return out
