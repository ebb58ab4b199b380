# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The Denoiser protocol (DESIGN.md section 2) that every teacher and every sampled student speaks.

A denoiser maps a noisy image ``x = x0 + sigma * eps`` (EDM's sigma-space, no scaling) to an estimate of ``x0``::

    denoiser(x, sigma, cond=None) -> x0_hat
      x:     float32 (N, C, H, W), data in [-1, 1]
      sigma: float32 (N,) or a scalar (python float or 0-d tensor)
      cond:  int64 (N,) class indices, or None; adapters convert to one-hot / embeddings

Attributes: ``sigma_min``, ``sigma_max``, ``sigma_data``, ``img_channels``, ``img_resolution``, ``label_dim``
and the method ``round_sigma(sigma)``, which snaps sigma to the levels a discrete teacher was trained on.
"""
import math
from typing import Optional, Union

import torch
from torch import Tensor, nn


class Denoiser(nn.Module):
    """Base class of the Denoiser protocol.

    Subclasses implement :meth:`denoise`; :meth:`forward` normalises ``sigma`` to a float32 tensor of shape
    (N,) and ``cond`` to int64 class indices (a one-hot float matrix is accepted and converted back) before
    calling it, so every adapter sees the same input types.

    Args:
        img_channels (int): Number of image channels C.
        img_resolution (int): Image side length H = W.
        label_dim (int): Number of classes, 0 for unconditional models.
        sigma_min (float): Smallest noise level the model supports.
        sigma_max (float): Largest noise level the model supports.
        sigma_data (float): Standard deviation of the training data (EDM's sigma_data).
    """

    def __init__(self,
                 img_channels: int,
                 img_resolution: int,
                 label_dim: int = 0,
                 sigma_min: float = 0.0,
                 sigma_max: float = math.inf,
                 sigma_data: float = 0.5):
        super().__init__()
        self.img_channels = int(img_channels)
        self.img_resolution = int(img_resolution)
        self.label_dim = int(label_dim)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.sigma_data = float(sigma_data)

    def round_sigma(self, sigma: Union[float, Tensor]) -> Tensor:
        """Snap ``sigma`` to a level the model supports (identity for continuous models)."""
        return torch.as_tensor(sigma)

    def forward(self, x: Tensor, sigma: Union[float, Tensor], cond: Optional[Tensor] = None) -> Tensor:
        """Return the estimate of the clean image ``x0`` for ``x = x0 + sigma * eps``."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        sigma = sigma.reshape(-1).to(torch.float32)
        if sigma.shape[0] != x.shape[0]:
            raise ValueError(f'sigma has {sigma.shape[0]} entries but x has batch size {x.shape[0]}')
        return self.denoise(x.to(torch.float32), sigma, self._normalise_cond(cond, x))

    def denoise(self, x: Tensor, sigma: Tensor, cond: Optional[Tensor]) -> Tensor:
        """Adapter body: ``x`` float32 (N, C, H, W), ``sigma`` float32 (N,), ``cond`` int64 (N,) or None.

        This is the abstract method of the protocol; every adapter overrides it.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement denoise(x, sigma, cond)')

    def _normalise_cond(self, cond: Optional[Tensor], x: Tensor) -> Optional[Tensor]:
        if cond is None or self.label_dim == 0:
            if cond is not None and self.label_dim == 0:
                raise ValueError(f'{type(self).__name__} is unconditional (label_dim=0) but got class labels')
            return None
        cond = torch.as_tensor(cond, device=x.device)
        if cond.ndim == 2:  # one-hot / soft labels (N, label_dim) -> indices
            cond = cond.argmax(dim=1)
        cond = cond.reshape(-1).to(torch.int64)
        if cond.numel() and (cond.min() < 0 or cond.max() >= self.label_dim):
            raise ValueError(f'class labels must lie in [0, {self.label_dim}), got {cond.min()}..{cond.max()}')
        return cond


def one_hot(cond: Optional[Tensor], label_dim: int, dtype=torch.float32) -> Optional[Tensor]:
    """int64 class indices (N,) -> float one-hot (N, label_dim); None stays None."""
    if cond is None or label_dim == 0:
        return None
    return nn.functional.one_hot(cond, label_dim).to(dtype)
