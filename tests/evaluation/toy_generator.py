# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""A tiny class-conditional generator for the tools tests (registered through ``custom_imports``)."""
import torch
from torch import nn

from kdm.models.base import BaseGenerativeModel
from kdm.registry import MODELS


@MODELS.register_module()
class EvalToyGenerator(BaseGenerativeModel):
    """``tanh(conv(noise) + class bias)``: 1 x 16 x 16 images, 10 classes; no training needed."""

    def __init__(self, sample_ema=None, data_preprocessor=None, init_cfg=None):
        super().__init__(sample_ema=sample_ema, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.net = nn.Conv2d(1, 1, 3, padding=1)
        self.class_bias = nn.Parameter(torch.linspace(-0.5, 0.5, 10))
        self.img_shape, self.label_dim = (1, 16, 16), 10

    def train_step(self, data, optim_wrapper):
        raise NotImplementedError

    def sample(self, noise, cond=None, ema=None, randn_like=None):
        bias = 0 if cond is None else self.class_bias[cond].view(-1, 1, 1, 1)
        return torch.tanh(self.net(noise) + bias)
