# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""EDM's ``DhariwalUNet``: the ADM architecture re-implemented with EDM's layers (``shared/spec/sid_edm.md`` 2.4).

This is the network of EDM's ImageNet-64 teacher and of SlimFlow's ImageNet students; the guided-diffusion original
(other key names, other numerics) is :class:`kdm.models.networks.ADMUNet`. Keys follow EDM: ``map_noise``,
``map_augment``, ``map_layer0/1``, ``map_label``, ``enc.*``, ``dec.*``, ``out_norm``, ``out_conv``.
``use_step_condition`` adds SFD-v's step embedding (``map_step_layer0/1``, ``affine_step`` per block).
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.registry import MODELS
from .layers import Conv2d, GroupNorm, Linear, PositionalEmbedding, UNetBlock
from .song_unet import step_labels

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
        self.img_resolution = img_resolution
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.label_dim = label_dim
        self.label_dropout = label_dropout
        self.use_step_condition = use_step_condition
        emb_ch = model_channels * channel_mult_emb
        init = dict(init_mode='kaiming_uniform', init_weight=math.sqrt(1 / 3), init_bias=math.sqrt(1 / 3))
        init_zero = dict(init_mode='kaiming_uniform', init_weight=0, init_bias=0)
        block_kwargs = dict(emb_channels=emb_ch, channels_per_head=64, dropout=dropout, init=init, init_zero=init_zero,
                            step_emb_channels=emb_ch if use_step_condition else 0)

        self.map_noise = PositionalEmbedding(model_channels)
        self.map_augment = Linear(augment_dim, model_channels, bias=False, **init_zero) if augment_dim else None
        self.map_layer0 = Linear(model_channels, emb_ch, **init)
        self.map_layer1 = Linear(emb_ch, emb_ch, **init)
        self.map_label = Linear(label_dim, emb_ch, bias=False, init_mode='kaiming_normal',
                                init_weight=math.sqrt(label_dim)) if label_dim else None
        if use_step_condition:
            self.map_step = PositionalEmbedding(model_channels)
            self.map_step_layer0 = Linear(model_channels, emb_ch, **init)
            self.map_step_layer1 = Linear(emb_ch, emb_ch, **init)

        self.enc = nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                self.enc[f'{res}x{res}_conv'] = Conv2d(cout, model_channels * mult, kernel=3, **init)
                cout = model_channels * mult
            else:
                self.enc[f'{res}x{res}_down'] = UNetBlock(cout, cout, down=True, **block_kwargs)
            for idx in range(num_blocks):
                self.enc[f'{res}x{res}_block{idx}'] = UNetBlock(cout, model_channels * mult,
                                                                attention=res in attn_resolutions, **block_kwargs)
                cout = model_channels * mult
        skips = [block.out_channels for block in self.enc.values()]

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f'{res}x{res}_in0'] = UNetBlock(cout, cout, attention=True, **block_kwargs)
                self.dec[f'{res}x{res}_in1'] = UNetBlock(cout, cout, **block_kwargs)
            else:
                self.dec[f'{res}x{res}_up'] = UNetBlock(cout, cout, up=True, **block_kwargs)
            for idx in range(num_blocks + 1):
                self.dec[f'{res}x{res}_block{idx}'] = UNetBlock(cout + skips.pop(), model_channels * mult,
                                                                attention=res in attn_resolutions, **block_kwargs)
                cout = model_channels * mult
        self.out_norm = GroupNorm(cout)
        self.out_conv = Conv2d(cout, out_channels, kernel=3, **init_zero)

    def embed(self,
              noise_labels: Tensor,
              class_labels: Optional[Tensor] = None,
              augment_labels: Optional[Tensor] = None,
              batch: Optional[int] = None) -> Tensor:
        """``silu(map_layer1(silu(map_layer0(map_noise(c_noise) + aug))) + map_label(c))``."""
        emb = self.map_noise(noise_labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels.to(emb.dtype))
        emb = self.map_layer1(F.silu(self.map_layer0(emb)))
        if self.map_label is not None:
            if class_labels is None:
                class_labels = torch.zeros(1, self.label_dim, device=emb.device)
            labels = class_labels.to(emb.dtype)
            if self.training and self.label_dropout:
                keep = torch.rand(labels.shape[0], 1, device=labels.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels)
        emb = F.silu(emb)
        if batch is not None and emb.shape[0] == 1 and batch != 1:
            emb = emb.expand(batch, -1)
        return emb

    def forward(self,
                x: Tensor,
                noise_labels: Tensor,
                class_labels: Optional[Tensor] = None,
                augment_labels: Optional[Tensor] = None,
                step_condition: Optional[Union[int, float, Tensor]] = None) -> Tensor:
        noise_labels = torch.as_tensor(noise_labels, device=x.device).reshape(-1)
        emb = self.embed(noise_labels, class_labels, augment_labels, x.shape[0])
        step_emb = None
        if self.use_step_condition and step_condition is not None:
            s = self.map_step(step_labels(step_condition, x.shape[0], x.device))
            step_emb = F.silu(self.map_step_layer1(F.silu(self.map_step_layer0(s))))
        skips = []
        for block in self.enc.values():
            x = block(x, emb, step_emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for name, block in self.dec.items():
            if '_block' in name:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb, step_emb)
        return self.out_conv(F.silu(self.out_norm(x)))
