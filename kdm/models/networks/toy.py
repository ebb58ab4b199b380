# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Tiny networks with the EDM-family call convention, for tests, toy configs and the quickstart.

Both take ``forward(x, noise_labels, class_labels=None, augment_labels=None)`` with float one-hot
``class_labels`` (N, label_dim), like ``SongUNet``, so any preconditioner or adapter that wraps an EDM network wraps
these too. They are not reference architectures: the layout is kdm's own.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.registry import MODELS
from .layers import GroupNorm, PositionalEmbedding

__all__ = ['ToyUNet', 'ToyMLP']


class _Embedding(nn.Module):
    """noise label -> sinusoid -> MLP, plus optional class and augmentation embeddings."""

    def __init__(self, noise_channels: int, emb_channels: int, label_dim: int, augment_dim: int,
                 label_dropout: float):
        super().__init__()
        self.label_dropout = label_dropout
        self.map_noise = PositionalEmbedding(noise_channels, endpoint=True)
        self.map_label = nn.Linear(label_dim, noise_channels) if label_dim else None
        self.map_augment = nn.Linear(augment_dim, noise_channels, bias=False) if augment_dim else None
        self.map_layer0 = nn.Linear(noise_channels, emb_channels)
        self.map_layer1 = nn.Linear(emb_channels, emb_channels)

    def forward(self, noise_labels: Tensor, class_labels: Optional[Tensor], augment_labels: Optional[Tensor],
                batch: int) -> Tensor:
        emb = self.map_noise(noise_labels.reshape(-1).float())
        if emb.shape[0] == 1 and batch != 1:
            emb = emb.expand(batch, -1)
        if self.map_label is not None:
            if class_labels is None:
                class_labels = torch.zeros(batch, self.map_label.in_features, device=emb.device)
            labels = class_labels.to(emb.dtype)
            if self.training and self.label_dropout:
                keep = torch.rand(labels.shape[0], 1, device=labels.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels.to(emb.dtype))
        return F.silu(self.map_layer1(F.silu(self.map_layer0(emb))))


class _ToyBlock(nn.Module):
    """GN-SiLU-conv, scale/shift by the embedding, GN-SiLU-dropout-conv, residual (1x1 skip on channel change)."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, dropout: float):
        super().__init__()
        self.dropout = dropout
        self.norm0 = GroupNorm(in_channels)
        self.conv0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.affine = nn.Linear(emb_channels, 2 * out_channels)
        self.norm1 = GroupNorm(out_channels)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        h = self.conv1(F.dropout(h, p=self.dropout, training=self.training))
        return h + (self.skip(x) if self.skip is not None else x)


@MODELS.register_module()
class ToyUNet(nn.Module):
    """A small UNet for 8x8 to 32x32 images with EDM's call convention.

    Levels halve the resolution (average pooling) and multiply the channels by ``channel_mult``; the decoder
    concatenates one encoder skip per block and upsamples by nearest neighbour. The defaults
    (``model_channels=4``, two levels, one block) have about 6k parameters; ``model_channels=8`` about 23k.

    Args:
        img_resolution (int): Input side length; must be divisible by ``2 ** (len(channel_mult) - 1)``.
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        label_dim (int): Number of classes (float one-hot input), 0 for unconditional.
        augment_dim (int): Dimension of augmentation labels, 0 for none.
        model_channels (int): Channels of the first level.
        channel_mult (Sequence[int]): Channel multiplier per level.
        num_blocks (int): Residual blocks per level (encoder and decoder).
        channel_mult_emb (int): Embedding width as a multiple of ``model_channels``.
        dropout (float): Dropout inside the blocks.
        label_dropout (float): Probability of dropping the class label while training.
    """

    def __init__(self,
                 img_resolution: int,
                 in_channels: int,
                 out_channels: int,
                 label_dim: int = 0,
                 augment_dim: int = 0,
                 model_channels: int = 4,
                 channel_mult: Sequence[int] = (1, 2),
                 num_blocks: int = 1,
                 channel_mult_emb: int = 2,
                 dropout: float = 0.0,
                 label_dropout: float = 0.0):
        super().__init__()
        if img_resolution % (2**(len(channel_mult) - 1)):
            raise ValueError(f'img_resolution {img_resolution} is not divisible by 2^{len(channel_mult) - 1} '
                             f'(channel_mult={list(channel_mult)})')
        self.img_resolution = img_resolution
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.label_dim = label_dim
        emb_ch = model_channels * channel_mult_emb
        chans = [model_channels * m for m in channel_mult]
        self.map = _Embedding(model_channels, emb_ch, label_dim, augment_dim, label_dropout)
        self.conv_in = nn.Conv2d(in_channels, chans[0], 3, padding=1)
        self.enc = nn.ModuleList()
        c = chans[0]
        for ch in chans:
            blocks = nn.ModuleList()
            for _ in range(num_blocks):
                blocks.append(_ToyBlock(c, ch, emb_ch, dropout))
                c = ch
            self.enc.append(blocks)
        self.mid = _ToyBlock(c, c, emb_ch, dropout)
        self.dec = nn.ModuleList()
        for ch in reversed(chans):
            blocks = nn.ModuleList()
            for _ in range(num_blocks):
                blocks.append(_ToyBlock(c + ch, ch, emb_ch, dropout))
                c = ch
            self.dec.append(blocks)
        self.out_norm = GroupNorm(c)
        self.out_conv = nn.Conv2d(c, out_channels, 3, padding=1)

    def forward(self,
                x: Tensor,
                noise_labels: Tensor,
                class_labels: Optional[Tensor] = None,
                augment_labels: Optional[Tensor] = None) -> Tensor:
        emb = self.map(noise_labels, class_labels, augment_labels, x.shape[0]).to(x.dtype)
        h = self.conv_in(x)
        skips = []
        for level, blocks in enumerate(self.enc):
            if level:
                h = F.avg_pool2d(h, 2)
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
        h = self.mid(h, emb)
        for level, blocks in enumerate(self.dec):
            if level:
                h = F.interpolate(h, scale_factor=2, mode='nearest')
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out_conv(F.silu(self.out_norm(h)))


@MODELS.register_module()
class ToyMLP(nn.Module):
    """A residual MLP for low-dimensional toy data, input and output of shape (N, D).

    Same call convention as the EDM networks (``noise_labels`` (N,), float one-hot ``class_labels``).
    ``img_resolution`` is accepted, and ignored, so that preconditioners that pass the image interface
    (``img_resolution``, ``in_channels``, ``out_channels``, ``label_dim``) can build it.

    Args:
        in_channels (int): Data dimension D.
        out_channels (int, optional): Output dimension; defaults to ``in_channels``.
        label_dim (int): Number of classes, 0 for unconditional.
        augment_dim (int): Dimension of augmentation labels, 0 for none.
        hidden_channels (int): Width of the hidden layers.
        num_layers (int): Number of residual blocks.
        emb_channels (int): Width of the noise / label embedding.
        dropout (float): Dropout inside the blocks.
        label_dropout (float): Probability of dropping the class label while training.
        img_resolution (int, optional): Ignored.
    """

    def __init__(self,
                 in_channels: int = 2,
                 out_channels: Optional[int] = None,
                 label_dim: int = 0,
                 augment_dim: int = 0,
                 hidden_channels: int = 128,
                 num_layers: int = 3,
                 emb_channels: int = 64,
                 dropout: float = 0.0,
                 label_dropout: float = 0.0,
                 img_resolution: Optional[int] = None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.label_dim = label_dim
        self.dropout = dropout
        self.map = _Embedding(emb_channels, emb_channels, label_dim, augment_dim, label_dropout)
        self.in_layer = nn.Linear(in_channels, hidden_channels)
        self.blocks = nn.ModuleList()
        for _ in range(num_layers):
            self.blocks.append(nn.ModuleDict(dict(fc0=nn.Linear(hidden_channels, hidden_channels),
                                                  emb=nn.Linear(emb_channels, hidden_channels),
                                                  fc1=nn.Linear(hidden_channels, hidden_channels))))
        self.out_layer = nn.Linear(hidden_channels, self.out_channels)

    def forward(self,
                x: Tensor,
                noise_labels: Tensor,
                class_labels: Optional[Tensor] = None,
                augment_labels: Optional[Tensor] = None) -> Tensor:
        shape = x.shape
        x = x.reshape(shape[0], -1)
        emb = self.map(noise_labels, class_labels, augment_labels, x.shape[0]).to(x.dtype)
        h = self.in_layer(x)
        for blk in self.blocks:
            r = F.silu(blk['fc0'](F.silu(h)) + blk['emb'](emb))
            h = h + blk['fc1'](F.dropout(r, p=self.dropout, training=self.training))
        out = self.out_layer(F.silu(h))
        return out.reshape(shape[0], *shape[1:]) if out.shape[1] == x.shape[1] else out
