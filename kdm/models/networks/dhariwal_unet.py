# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""EDM's ``DhariwalUNet``: the ADM architecture re-implemented with EDM's layers (``shared/spec/sid_edm.md`` 2.4).

This is the network of EDM's ImageNet-64 teacher and of SlimFlow's ImageNet students; the guided-diffusion original
(other key names, other numerics) is :class:`kdm.models.networks.ADMUNet`. Keys follow EDM: ``map_noise``,
``map_augment``, ``map_layer0/1``, ``map_label``, ``enc.*``, ``dec.*``, ``out_norm``, ``out_conv``.
``use_step_condition`` adds SFD-v's step embedding (``map_step_layer0/1``, ``affine_step`` per block).

Compared with :class:`~kdm.models.networks.SongUNet`: scale/shift conditioning, 64 channels per attention head,
kaiming-uniform initialisation, no sin/cos swap, the class embedding added after the MLP, no auxiliary paths.
"""
import functools
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.registry import MODELS
from .layers import Conv2d, GroupNorm, Linear, PositionalEmbedding, UNetBlock, step_labels
from .song_unet import layer_kind, resolution_tags

__all__ = ['DhariwalUNet']


@MODELS.register_module()
class DhariwalUNet(nn.Module):
    """ADM UNet (Dhariwal & Nichol 2021) in EDM's formulation.

    Args:
        img_resolution (int): Image side length.
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        label_dim (int): Number of classes (float one-hot input, not scaled), 0 for none.
        augment_dim (int): Augmentation label dimension, 0 for none.
        model_channels (int): Base channel count.
        channel_mult (Sequence[int]): Channel multiplier per resolution.
        channel_mult_emb (int): Embedding width as a multiple of ``model_channels``.
        num_blocks (int): Residual blocks per resolution.
        attn_resolutions (Sequence[int]): Resolutions with self-attention (64 channels per head).
        dropout (float): Dropout probability in the blocks.
        label_dropout (float): Probability of dropping the class label while training.
        use_step_condition (bool): Add SFD-v's step-count embedding.
    """

    def __init__(self,
                 img_resolution: int,
                 in_channels: int,
                 out_channels: int,
                 label_dim: int = 0,
                 augment_dim: int = 0,
                 model_channels: int = 192,
                 channel_mult: Sequence[int] = (1, 2, 3, 4),
                 channel_mult_emb: int = 4,
                 num_blocks: int = 3,
                 attn_resolutions: Sequence[int] = (32, 16, 8),
                 dropout: float = 0.10,
                 label_dropout: float = 0.0,
                 use_step_condition: bool = False):
        super().__init__()
        self.img_resolution, self.in_channels, self.out_channels = img_resolution, in_channels, out_channels
        self.label_dim, self.label_dropout, self.use_step_condition = label_dim, label_dropout, use_step_condition

        # Spec 2.4: kaiming-uniform x sqrt(1/3) on weights and biases; zero init ends each residual branch.
        gain = math.sqrt(1 / 3)
        kaiming = dict(init_mode='kaiming_uniform', init_weight=gain, init_bias=gain)
        zeros = dict(init_mode='kaiming_uniform', init_weight=0, init_bias=0)
        emb_width = model_channels * channel_mult_emb
        make_block = functools.partial(UNetBlock, emb_channels=emb_width, channels_per_head=64, dropout=dropout,
                                       init=kaiming, init_zero=zeros,
                                       step_emb_channels=emb_width if use_step_condition else 0)

        # Embedding: sinusoid(c_noise) (+ augment) -> MLP, + class embedding, then SiLU.
        self.map_noise = PositionalEmbedding(model_channels)
        self.map_augment = Linear(augment_dim, model_channels, bias=False, **zeros) if augment_dim else None
        self.map_layer0 = Linear(model_channels, emb_width, **kaiming)
        self.map_layer1 = Linear(emb_width, emb_width, **kaiming)
        self.map_label = Linear(label_dim, emb_width, bias=False, init_mode='kaiming_normal',
                                init_weight=math.sqrt(label_dim)) if label_dim else None
        if use_step_condition:
            self.map_step = PositionalEmbedding(model_channels)
            self.map_step_layer0 = Linear(model_channels, emb_width, **kaiming)
            self.map_step_layer1 = Linear(emb_width, emb_width, **kaiming)

        tags = resolution_tags(img_resolution, len(channel_mult))
        widths = [model_channels * mult for mult in channel_mult]
        attends = [img_resolution >> level in attn_resolutions for level in range(len(channel_mult))]

        # Encoder: a 3x3 stem, then per level (a downsampling block and) num_blocks blocks; all outputs are skips.
        self.enc = nn.ModuleDict()
        self.enc[f'{tags[0]}_conv'] = Conv2d(in_channels, widths[0], kernel=3, **kaiming)
        stack = [widths[0]]
        for level, tag in enumerate(tags):
            if level > 0:
                self.enc[f'{tag}_down'] = make_block(stack[-1], stack[-1], down=True)
                stack.append(stack[-1])
            for index in range(num_blocks):
                self.enc[f'{tag}_block{index}'] = make_block(stack[-1], widths[level], attention=attends[level])
                stack.append(widths[level])

        # Decoder: bottleneck (in0 with attention, in1) or an upsampling block, then num_blocks + 1 blocks that
        # each take one skip.
        self.dec = nn.ModuleDict()
        width = stack[-1]
        for level in reversed(range(len(tags))):
            tag = tags[level]
            if level == len(tags) - 1:
                self.dec[f'{tag}_in0'] = make_block(width, width, attention=True)
                self.dec[f'{tag}_in1'] = make_block(width, width)
            else:
                self.dec[f'{tag}_up'] = make_block(width, width, up=True)
            for index in range(num_blocks + 1):
                self.dec[f'{tag}_block{index}'] = make_block(width + stack.pop(), widths[level],
                                                             attention=attends[level])
                width = widths[level]
        self.out_norm = GroupNorm(width)
        self.out_conv = Conv2d(width, out_channels, kernel=3, **zeros)

    def embed(self, noise_labels: Tensor, class_labels: Optional[Tensor] = None,
              augment_labels: Optional[Tensor] = None, batch: Optional[int] = None) -> Tensor:
        """``silu(map_layer1(silu(map_layer0(map_noise(c_noise) + aug))) + map_label(c))``."""
        emb = self.map_noise(noise_labels.reshape(-1))
        if augment_labels is not None and self.map_augment is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = self.map_layer1(F.silu(self.map_layer0(emb)))
        if self.map_label is not None and class_labels is not None:
            labels = class_labels
            if self.label_dropout and self.training:
                keep = torch.rand([labels.shape[0], 1], device=labels.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels)
        emb = F.silu(emb)
        if batch is not None and emb.shape[0] != batch:  # one noise level for the whole batch
            emb = emb.expand(batch, -1)
        return emb

    def _embed_steps(self, step_condition, batch: int, device) -> Optional[Tensor]:
        """SFD-v: ``silu(map_step_layer1(silu(map_step_layer0(map_step(n)))))`` or None."""
        if step_condition is None:
            return None
        if not self.use_step_condition:
            raise ValueError('step_condition was given, but this DhariwalUNet was built with use_step_condition=False')
        steps = self.map_step(step_labels(step_condition, batch, device))
        return F.silu(self.map_step_layer1(F.silu(self.map_step_layer0(steps))))

    def forward(self, x: Tensor, noise_labels: Tensor, class_labels: Optional[Tensor] = None,
                augment_labels: Optional[Tensor] = None,
                step_condition: Optional[Union[int, float, Tensor]] = None) -> Tensor:
        emb = self.embed(noise_labels, class_labels, augment_labels, batch=x.shape[0])
        step_emb = self._embed_steps(step_condition, x.shape[0], x.device)
        stack = []
        for key, layer in self.enc.items():
            x = layer(x) if layer_kind(key) == 'conv' else layer(x, emb, step_emb)
            stack.append(x)
        for key, layer in self.dec.items():
            if layer_kind(key) == 'block':
                x = torch.cat([x, stack.pop()], dim=1)
            x = layer(x, emb, step_emb)
        return self.out_conv(F.silu(self.out_norm(x)))
