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
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.registry import MODELS
from .layers import Conv2d, FourierEmbedding, GroupNorm, Linear, PositionalEmbedding, UNetBlock

__all__ = ['SongUNet']


def swap_halves(emb: Tensor) -> Tensor:
    """``[cos, sin] -> [sin, cos]``: DDPM++'s embedding order."""
    return emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)


def step_labels(step_condition: Union[int, float, Tensor], batch: int, device) -> Tensor:
    """SFD-v's step count as a float tensor of shape (N,) or (1,) (a scalar broadcasts over the batch)."""
    s = torch.as_tensor(step_condition, dtype=torch.float32, device=device).reshape(-1)
    if s.numel() not in (1, batch):
        raise ValueError(f'step_condition has {s.numel()} entries for a batch of {batch}')
    return s


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
        for name, value, allowed in [('embedding_type', embedding_type, ('fourier', 'positional')),
                                     ('encoder_type', encoder_type, ('standard', 'skip', 'residual')),
                                     ('decoder_type', decoder_type, ('standard', 'skip'))]:
            if value not in allowed:
                raise ValueError(f'SongUNet: {name}={value!r} is not one of {allowed}')
        super().__init__()
        self.img_resolution = img_resolution
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.label_dim = label_dim
        self.label_dropout = label_dropout
        self.embedding_type = embedding_type
        self.encoder_type = encoder_type
        self.decoder_type = decoder_type
        self.prior_shakedrop = prior_shakedrop
        self.phi = phi
        self.use_step_condition = use_step_condition
        emb_ch = model_channels * channel_mult_emb
        noise_ch = model_channels * channel_mult_noise
        init = dict(init_mode='xavier_uniform')
        init_zero = dict(init_mode='xavier_uniform', init_weight=1e-5)
        init_attn = dict(init_mode='xavier_uniform', init_weight=math.sqrt(0.2))
        block_kwargs = dict(emb_channels=emb_ch, num_heads=1, dropout=dropout, skip_scale=math.sqrt(0.5), eps=1e-6,
                            resample_filter=resample_filter, resample_proj=True, adaptive_scale=False, init=init,
                            init_zero=init_zero, init_attn=init_attn,
                            step_emb_channels=emb_ch if use_step_condition else 0)

        # Mapping: noise (+ label + augment) -> embedding; the sinusoid halves are swapped to [sin, cos].
        self.map_noise = PositionalEmbedding(noise_ch, endpoint=True) if embedding_type == 'positional' \
            else FourierEmbedding(noise_ch)
        self.map_label = Linear(label_dim, noise_ch, **init) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_ch, bias=False, **init) if augment_dim else None
        self.map_layer0 = Linear(noise_ch, emb_ch, **init)
        self.map_layer1 = Linear(emb_ch, emb_ch, **init)
        if use_step_condition:
            self.map_step = PositionalEmbedding(noise_ch, endpoint=True)
            self.map_step_layer0 = Linear(noise_ch, emb_ch, **init)
            self.map_step_layer1 = Linear(emb_ch, emb_ch, **init)

        # Encoder: every non-auxiliary output becomes a skip.
        self.enc = nn.ModuleDict()
        cout = caux = in_channels
        skips = []
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                self.enc[f'{res}x{res}_conv'] = Conv2d(cout, model_channels, kernel=3, **init)
                cout = model_channels
            else:
                self.enc[f'{res}x{res}_down'] = UNetBlock(cout, cout, down=True, **block_kwargs)
                if encoder_type == 'skip':
                    self.enc[f'{res}x{res}_aux_down'] = Conv2d(caux, caux, kernel=0, down=True,
                                                               resample_filter=resample_filter)
                    self.enc[f'{res}x{res}_aux_skip'] = Conv2d(caux, cout, kernel=1, **init)
                elif encoder_type == 'residual':
                    self.enc[f'{res}x{res}_aux_residual'] = Conv2d(caux, cout, kernel=3, down=True,
                                                                   resample_filter=resample_filter,
                                                                   fused_resample=True, **init)
                    caux = cout
            skips.append(cout)
            for idx in range(num_blocks):
                self.enc[f'{res}x{res}_block{idx}'] = UNetBlock(cout, model_channels * mult,
                                                                attention=res in attn_resolutions, **block_kwargs)
                cout = model_channels * mult
                skips.append(cout)

        # Decoder: blocks named *_block* take cat([x, skip]); attention on the last block of a level.
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f'{res}x{res}_in0'] = UNetBlock(cout, cout, attention=True, **block_kwargs)
                self.dec[f'{res}x{res}_in1'] = UNetBlock(cout, cout, **block_kwargs)
            else:
                self.dec[f'{res}x{res}_up'] = UNetBlock(cout, cout, up=True, **block_kwargs)
            for idx in range(num_blocks + 1):
                self.dec[f'{res}x{res}_block{idx}'] = UNetBlock(
                    cout + skips.pop(), model_channels * mult,
                    attention=idx == num_blocks and res in attn_resolutions, **block_kwargs)
                cout = model_channels * mult
            if decoder_type == 'skip' or level == 0:
                if decoder_type == 'skip' and level < len(channel_mult) - 1:
                    self.dec[f'{res}x{res}_aux_up'] = Conv2d(out_channels, out_channels, kernel=0, up=True,
                                                             resample_filter=resample_filter)
                self.dec[f'{res}x{res}_aux_norm'] = GroupNorm(cout, eps=1e-6)
                self.dec[f'{res}x{res}_aux_conv'] = Conv2d(cout, out_channels, kernel=3, **init_zero)

    def embed(self,
              noise_labels: Tensor,
              class_labels: Optional[Tensor] = None,
              augment_labels: Optional[Tensor] = None,
              batch: Optional[int] = None) -> Tensor:
        """The block embedding ``silu(map_layer1(silu(map_layer0(swap(map_noise(c_noise)) + labels))))``."""
        emb = swap_halves(self.map_noise(noise_labels))
        if self.map_label is not None:
            if class_labels is None:
                class_labels = torch.zeros(1, self.label_dim, device=emb.device)
            labels = class_labels.to(emb.dtype)
            if self.training and self.label_dropout:
                keep = torch.rand(labels.shape[0], 1, device=labels.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels * math.sqrt(self.label_dim))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels.to(emb.dtype))
        emb = F.silu(self.map_layer1(F.silu(self.map_layer0(emb))))
        if batch is not None and emb.shape[0] == 1 and batch != 1:
            emb = emb.expand(batch, -1)
        return emb

    def forward(self,
                x: Tensor,
                noise_labels: Tensor,
                class_labels: Optional[Tensor] = None,
                augment_labels: Optional[Tensor] = None,
                step_condition: Optional[Union[int, float, Tensor]] = None,
                return_features: bool = False):
        """Return the network output (N, out_channels, H, W); with ``return_features`` also the last decoder
        feature (the input of the output head, CUD's ``MetaGenerator`` heads read it)."""
        noise_labels = torch.as_tensor(noise_labels, device=x.device).reshape(-1)
        emb = self.embed(noise_labels, class_labels, augment_labels, x.shape[0])
        step_emb = None
        if self.use_step_condition and step_condition is not None:
            s = swap_halves(self.map_step(step_labels(step_condition, x.shape[0], x.device)))
            step_emb = F.silu(self.map_step_layer1(F.silu(self.map_step_layer0(s))))

        skips, aux = [], x
        for name, block in self.enc.items():
            if 'aux_down' in name:
                aux = block(aux)
            elif 'aux_skip' in name:
                x = skips[-1] = x + block(aux)
            elif 'aux_residual' in name:
                x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
            elif isinstance(block, UNetBlock):
                x = block(x, emb, step_emb)
                skips.append(x)
            else:
                x = block(x)
                skips.append(x)

        if self.prior_shakedrop:
            phi_t = (self.phi + noise_labels * (1 - 2 * self.phi)).to(x.dtype).reshape(-1, 1, 1, 1)
            pos, neg = 2 * phi_t, 2 * (1 - phi_t)
        out, tmp = None, None
        for name, block in self.dec.items():
            if 'aux_up' in name:
                out = block(out)
            elif 'aux_norm' in name:
                tmp = block(x)
            elif 'aux_conv' in name:
                tmp = block(F.silu(tmp))
                out = tmp if out is None else tmp + out
            else:
                if '_block' in name:
                    skip = skips.pop()
                    x = torch.cat([x * pos, skip * neg] if self.prior_shakedrop else [x, skip], dim=1)
                x = block(x, emb, step_emb)
        return (out, x) if return_features else out
