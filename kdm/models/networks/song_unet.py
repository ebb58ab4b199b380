# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""EDM's ``SongUNet``: the DDPM++ and NCSN++ architectures (``shared/spec/sid_edm.md`` section 2.3).

Layout and state-dict keys follow EDM (``map_noise``, ``map_label``, ``map_augment``, ``map_layer0/1``,
``enc.{res}x{res}_{conv,down,block<i>,aux_*}``, ``dec.{res}x{res}_{in0,in1,up,block<i>,aux_*}``), so EDM, SiD and
Catch-Up Distillation weights load with ``strict=True``. Two optional extras, both off by default and both
parameter-free or kept out of the state dict when off:

* CUD's deterministic "ShakeDrop" (``prior_shakedrop``, ``phi``; ``shared/spec/cud_slimflow_rf.md`` 2.3): every
  decoder ``*_block*`` receives ``cat[h * 2 phi(t), skip * 2 (1 - phi(t))]`` with ``phi(t) = phi + t (1 - 2 phi)``
  and ``t = noise_labels``.
* SFD-v's step condition (``use_step_condition``; ``shared/spec/sfd_solvers.md`` 2.8): a second embedding of the
  number of steps (``map_step_layer0/1`` and an ``affine_step`` layer in every block), fed by
  ``forward(..., step_condition=n)``.

score_sde / RectifiedFlow / SlimFlow ``ncsnpp`` checkpoints (DDPM++ settings) hold the same architecture under other
names; ``kdm.models.teachers.flow`` converts them (see ``docs/teachers.md``).

Every module key is ``<res>x<res>_<kind>[<index>]``; the forward passes dispatch on ``kind`` (:func:`layer_kind`),
so the module dicts themselves are the plan of the network.
"""
import functools
import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.registry import MODELS
from .layers import Conv2d, FourierEmbedding, GroupNorm, Linear, PositionalEmbedding, UNetBlock, step_labels

__all__ = ['SongUNet']


def swap_halves(emb: Tensor) -> Tensor:
    """``[cos, sin] -> [sin, cos]``: the order DDPM++ feeds to its embedding MLP (spec 2.3)."""
    first, second = emb.chunk(2, dim=1)
    return torch.cat([second, first], dim=1)


def layer_kind(key: str) -> str:
    """``'16x16_block3' -> 'block'``, ``'8x8_aux_conv' -> 'aux_conv'``, ``'8x8_in0' -> 'in'``."""
    return key.split('_', 1)[1].rstrip('0123456789')


def resolution_tags(img_resolution: int, num_levels: int) -> List[str]:
    """``'<r>x<r>'`` of every level, halving the side length per level."""
    return [f'{img_resolution >> level}x{img_resolution >> level}' for level in range(num_levels)]


def _check_choice(name: str, value: str, choices: Sequence[str]):
    if value not in choices:
        raise ValueError(f'SongUNet: {name}={value!r} is not one of {tuple(choices)}')


@MODELS.register_module()
class SongUNet(nn.Module):
    """DDPM++ / NCSN++ UNet (Song et al. 2021) as re-implemented by EDM.

    DDPM++: ``embedding_type='positional'``, ``channel_mult_noise=1``, ``encoder_type='standard'``,
    ``resample_filter=[1, 1]``. NCSN++: ``'fourier'``, 2, ``'residual'``, ``[1, 3, 3, 1]``.

    Args:
        img_resolution (int): Image side length.
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        label_dim (int): Number of classes (float one-hot input, scaled by sqrt(label_dim)), 0 for none.
        augment_dim (int): Augmentation label dimension (EDM's AugmentPipe: 9), 0 for none.
        model_channels (int): Base channel count.
        channel_mult (Sequence[int]): Channel multiplier per resolution.
        channel_mult_emb (int): Embedding width as a multiple of ``model_channels``.
        num_blocks (int): Residual blocks per resolution.
        attn_resolutions (Sequence[int]): Resolutions with self-attention.
        dropout (float): Dropout probability in the blocks.
        label_dropout (float): Probability of dropping the class label while training.
        embedding_type (str): ``'positional'`` (DDPM++) or ``'fourier'`` (NCSN++).
        channel_mult_noise (int): Noise embedding width as a multiple of ``model_channels``.
        encoder_type (str): ``'standard'``, ``'skip'`` or ``'residual'``.
        decoder_type (str): ``'standard'`` or ``'skip'``.
        resample_filter (Sequence[int]): 1-D FIR filter of the resamplers.
        prior_shakedrop (bool): CUD's deterministic, time-dependent skip re-weighting.
        phi (float): ShakeDrop's phi_0 (CUD's CIFAR-10 runs use 0.75; the reference default is 0.25).
        use_step_condition (bool): Add SFD-v's step-count embedding.
    """

    ENCODER_TYPES = ('standard', 'skip', 'residual')
    DECODER_TYPES = ('standard', 'skip')
    EMBEDDING_TYPES = ('fourier', 'positional')

    def __init__(self,
                 img_resolution: int,
                 in_channels: int,
                 out_channels: int,
                 label_dim: int = 0,
                 augment_dim: int = 0,
                 model_channels: int = 128,
                 channel_mult: Sequence[int] = (1, 2, 2, 2),
                 channel_mult_emb: int = 4,
                 num_blocks: int = 4,
                 attn_resolutions: Sequence[int] = (16, ),
                 dropout: float = 0.10,
                 label_dropout: float = 0.0,
                 embedding_type: str = 'positional',
                 channel_mult_noise: int = 1,
                 encoder_type: str = 'standard',
                 decoder_type: str = 'standard',
                 resample_filter: Sequence[int] = (1, 1),
                 prior_shakedrop: bool = False,
                 phi: float = 0.25,
                 use_step_condition: bool = False):
        _check_choice('encoder_type', encoder_type, self.ENCODER_TYPES)
        _check_choice('decoder_type', decoder_type, self.DECODER_TYPES)
        _check_choice('embedding_type', embedding_type, self.EMBEDDING_TYPES)
        super().__init__()
        self.img_resolution, self.in_channels, self.out_channels = img_resolution, in_channels, out_channels
        self.label_dim, self.label_dropout = label_dim, label_dropout
        self.embedding_type, self.encoder_type, self.decoder_type = embedding_type, encoder_type, decoder_type
        self.prior_shakedrop, self.phi, self.use_step_condition = prior_shakedrop, phi, use_step_condition

        # Spec 2.3: xavier-uniform everywhere, x1e-5 on the last conv of each residual branch, x sqrt(0.2) on qkv.
        xavier = dict(init_mode='xavier_uniform')
        near_zero = dict(xavier, init_weight=1e-5)
        noise_width, emb_width = model_channels * channel_mult_noise, model_channels * channel_mult_emb
        make_block = functools.partial(
            UNetBlock, emb_channels=emb_width, num_heads=1, dropout=dropout, skip_scale=math.sqrt(0.5), eps=1e-6,
            resample_filter=resample_filter, resample_proj=True, adaptive_scale=False, init=xavier,
            init_zero=near_zero, init_attn=dict(xavier, init_weight=math.sqrt(0.2)),
            step_emb_channels=emb_width if use_step_condition else 0)

        # Embedding MLP: sinusoid of c_noise (+ labels) -> emb_width -> emb_width.
        if embedding_type == 'positional':
            self.map_noise = PositionalEmbedding(noise_width, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(noise_width)
        self.map_label = Linear(label_dim, noise_width, **xavier) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_width, bias=False, **xavier) if augment_dim else None
        self.map_layer0 = Linear(noise_width, emb_width, **xavier)
        self.map_layer1 = Linear(emb_width, emb_width, **xavier)
        if use_step_condition:
            self.map_step = PositionalEmbedding(noise_width, endpoint=True)
            self.map_step_layer0 = Linear(noise_width, emb_width, **xavier)
            self.map_step_layer1 = Linear(emb_width, emb_width, **xavier)

        # One entry per resolution level: (key prefix, block width, self-attention at this resolution).
        levels = [(tag, model_channels * mult, img_resolution >> level in attn_resolutions)
                  for level, (tag, mult) in enumerate(zip(resolution_tags(img_resolution, len(channel_mult)),
                                                          channel_mult))]
        self.enc = nn.ModuleDict()
        stack = self._build_encoder(make_block, levels, in_channels, model_channels, num_blocks, resample_filter,
                                    xavier)
        self.dec = nn.ModuleDict()
        self._build_decoder(make_block, levels, stack, num_blocks, out_channels, resample_filter, near_zero)

    # ------------------------------------------------------------------------------------------------ construction
    def _build_encoder(self, make_block, levels, in_channels, stem_width, num_blocks, fir, conv_init) -> List[int]:
        """Fill ``self.enc`` top resolution first; return the widths of the skip stack in push order.

        The stem conv, every downsampling block and every residual block push their output. The auxiliary
        progressive-input path (NCSN++ ``skip`` / ``residual`` encoders) starts from the image and is merged into
        the output of each downsampling block.
        """
        self.enc[f'{levels[0][0]}_conv'] = Conv2d(in_channels, stem_width, kernel=3, **conv_init)
        stack, width, image_width = [stem_width], stem_width, in_channels
        for level, (tag, level_width, attention) in enumerate(levels):
            if level > 0:
                self.enc[f'{tag}_down'] = make_block(width, width, down=True)
                stack.append(width)
                if self.encoder_type == 'skip':  # image -> resample -> 1x1 conv, added to the block output
                    self.enc[f'{tag}_aux_down'] = Conv2d(image_width, image_width, kernel=0, down=True,
                                                         resample_filter=fir)
                    self.enc[f'{tag}_aux_skip'] = Conv2d(image_width, width, kernel=1, **conv_init)
                elif self.encoder_type == 'residual':  # a strided 3x3 conv of the running auxiliary features
                    self.enc[f'{tag}_aux_residual'] = Conv2d(image_width, width, kernel=3, down=True,
                                                             resample_filter=fir,
                                                             fused_resample=True, **conv_init)
                    image_width = width
            for index in range(num_blocks):
                self.enc[f'{tag}_block{index}'] = make_block(width, level_width, attention=attention)
                width = level_width
                stack.append(width)
        return stack

    def _build_decoder(self, make_block, levels, stack, num_blocks, out_channels, fir, head_init):
        """Fill ``self.dec`` lowest resolution first, consuming ``stack`` (one skip per ``_block<i>``)."""
        width, lowest = stack[-1], len(levels) - 1
        for level in range(lowest, -1, -1):
            tag, level_width, attention = levels[level]
            if level == lowest:  # bottleneck: an attention block and a plain one
                self.dec[f'{tag}_in0'] = make_block(width, width, attention=True)
                self.dec[f'{tag}_in1'] = make_block(width, width)
            else:
                self.dec[f'{tag}_up'] = make_block(width, width, up=True)
            for index in range(num_blocks + 1):  # attention only on the last block of a level
                self.dec[f'{tag}_block{index}'] = make_block(width + stack.pop(), level_width,
                                                             attention=attention and index == num_blocks)
                width = level_width
            if self.decoder_type == 'standard' and level > 0:
                continue
            # Output head (every level for the progressive-output 'skip' decoder, else only the top one).
            if self.decoder_type == 'skip' and level < lowest:
                self.dec[f'{tag}_aux_up'] = Conv2d(out_channels, out_channels, kernel=0, up=True,
                                                   resample_filter=fir)
            self.dec[f'{tag}_aux_norm'] = GroupNorm(width, eps=1e-6)
            self.dec[f'{tag}_aux_conv'] = Conv2d(width, out_channels, kernel=3, **head_init)

    # ----------------------------------------------------------------------------------------------------- forward
    def embed(self, noise_labels: Tensor, class_labels: Optional[Tensor] = None,
              augment_labels: Optional[Tensor] = None, batch: Optional[int] = None) -> Tensor:
        """The block embedding ``silu(map_layer1(silu(map_layer0(swap(map_noise(c_noise)) + labels))))``."""
        emb = swap_halves(self.map_noise(noise_labels.reshape(-1)))
        if self.label_dim:
            labels = emb.new_zeros(emb.shape[0], self.label_dim) if class_labels is None else class_labels
            if self.label_dropout and self.training:
                keep = torch.rand([labels.shape[0], 1], device=labels.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels * math.sqrt(self.label_dim))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = F.silu(self.map_layer1(F.silu(self.map_layer0(emb))))
        if batch is not None and emb.shape[0] != batch:  # one noise level for the whole batch
            emb = emb.expand(batch, -1)
        return emb

    def _embed_steps(self, step_condition, batch: int, device) -> Optional[Tensor]:
        """SFD-v: ``silu(map_step_layer1(silu(map_step_layer0(swap(map_step(n))))))`` or None."""
        if step_condition is None:
            return None
        if not self.use_step_condition:
            raise ValueError('step_condition was given, but this SongUNet was built with use_step_condition=False')
        steps = swap_halves(self.map_step(step_labels(step_condition, batch, device)))
        return F.silu(self.map_step_layer1(F.silu(self.map_step_layer0(steps))))

    def _join_skip(self, h: Tensor, skip: Tensor, t: Tensor) -> Tensor:
        """Concatenate the decoder input with its skip; ShakeDrop weights them by 2 phi(t) and 2 (1 - phi(t))."""
        if self.prior_shakedrop:
            phi_t = (self.phi + t * (1 - 2 * self.phi)).reshape(-1, 1, 1, 1).to(h.dtype)
            h, skip = h * (2 * phi_t), skip * (2 * (1 - phi_t))
        return torch.cat([h, skip], dim=1)

    def forward(self, x: Tensor, noise_labels: Tensor, class_labels: Optional[Tensor] = None,
                augment_labels: Optional[Tensor] = None, step_condition: Optional[Union[int, float, Tensor]] = None,
                return_features: bool = False):
        """Return the network output (N, out_channels, H, W); with ``return_features`` also the last decoder
        feature (the input of the output head, CUD's ``MetaGenerator`` heads read it)."""
        emb = self.embed(noise_labels, class_labels, augment_labels, batch=x.shape[0])
        step_emb = self._embed_steps(step_condition, x.shape[0], x.device)

        stack, image = [], x  # image: the progressive-input path of the skip / residual encoders
        for key, layer in self.enc.items():
            kind = layer_kind(key)
            if kind == 'aux_down':
                image = layer(image)
            elif kind == 'aux_skip':
                x = stack[-1] = x + layer(image)
            elif kind == 'aux_residual':
                x = stack[-1] = image = (x + layer(image)) / math.sqrt(2)
            else:
                x = layer(x) if kind == 'conv' else layer(x, emb, step_emb)
                stack.append(x)

        out = head = None  # out: the (progressively upsampled) output image; head: the output head's features
        for key, layer in self.dec.items():
            kind = layer_kind(key)
            if kind == 'aux_up':
                out = layer(out)
            elif kind == 'aux_norm':
                head = layer(x)
            elif kind == 'aux_conv':
                head = layer(F.silu(head))
                out = head if out is None else head + out
            else:
                if kind == 'block':
                    x = self._join_skip(x, stack.pop(), noise_labels)
                x = layer(x, emb, step_emb)
        return (out, x) if return_features else out
