# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Small pieces the teacher trainers share: batch unpacking and on-device flips."""
from typing import Optional, Tuple

import torch
from torch import Tensor


def images_and_labels(data: dict, label_dim: int) -> Tuple[Tensor, Optional[Tensor]]:
    """``dict(img, label)`` -> (images, int64 labels or None for unconditional training).

    Raises:
        ValueError: a conditional model gets unlabelled data (label -1).
    """
    x = data['img']
    if label_dim == 0:
        return x, None
    labels = data['label'].long()
    if (labels < 0).any():
        raise ValueError(f'the model is class-conditional (label_dim={label_dim}) but the dataset has unlabelled '
                         'images (label -1); use a labelled dataset or set label_dim=0')
    return x, labels


def random_hflip(x: Tensor, p: float = 0.5) -> Tensor:
    """Flip each image horizontally with probability ``p`` (global torch RNG: resume-exact, see the train loop)."""
    if p <= 0 or x.ndim < 4:
        return x
    flip = torch.rand(x.shape[0], device=x.device) < p
    return torch.where(flip.reshape(-1, 1, 1, 1), x.flip(-1), x)
