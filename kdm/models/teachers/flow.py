# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""RectifiedFlow, SlimFlow and Catch-Up Distillation checkpoints (``shared/spec/cud_slimflow_rf.md``).

Layouts found in the wild, all read with ``torch.load(weights_only=True)``:

* RectifiedFlow / SlimFlow (score_sde code): ``{'model', 'ema', 'optimizer', 'step'}``; ``model`` is the
  ``DataParallel`` state dict (``module.`` prefix) of score_sde's ``NCSNpp`` (``all_modules.<i>.*`` keys plus a
  ``sigmas`` buffer) or of EDM's ``DhariwalUNet`` (SlimFlow ImageNet); ``ema`` is
  ``{'decay', 'num_updates', 'shadow_params'}`` with the averaged parameters as a list in parameter order.
* CUD: ``flow_model_<iter>_ema.pth`` = the EMA ``SongUNet`` state dict (EDM keys; ``module.`` prefix on the
  distilled ones); ``training_state_<iter>.pth`` = ``{'model_state_dict': [flow_net, ...], ...}``.

Conversions before the strict load: ``ema=True`` takes the EMA (shadow parameters written over ``model`` in
parameter order; buffers from ``model``), prefixes are unwrapped, and score_sde ``NCSNpp`` keys (DDPM++ settings:
positional embedding, BigGAN residual blocks, no FIR, no progressive paths) are renamed onto :class:`SongUNet`
(:func:`ncsnpp_to_songunet`: the same architecture; attention's separate q/k/v/out ``NIN`` layers become EDM's
interleaved ``qkv`` 1x1 conv and ``proj``). The result is a :class:`~kdm.diffusion.FlowDenoiser`.
"""
from collections import OrderedDict
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from kdm.diffusion import FlowDenoiser
from kdm.registry import MODELS, TEACHERS
from ..networks.layers import Conv2d, GroupNorm, UNetBlock
from ..networks.song_unet import SongUNet
from .adm import read_torch_file, select_state_dict
from .common import TeacherLoadError, build_and_load, check_state_dict, count_parameters, freeze, strip_prefixes

__all__ = ['ncsnpp_to_songunet', 'apply_shadow_params', 'read_flow', 'load_flow']

#: buffers of the source networks (not in an EMA's list of shadow parameters)
_BUFFER_NAMES = ('sigmas', 'resample_filter', 'freqs', 'phases')


def _is_buffer(key: str) -> bool:
    return key.rsplit('.', 1)[-1] in _BUFFER_NAMES


def apply_shadow_params(model_sd: 'OrderedDict[str, Tensor]', shadow, path: str) -> 'OrderedDict[str, Tensor]':
    """Write score_sde-style EMA shadow parameters (a list in parameter order) over a model state dict."""
    keys = [k for k in model_sd if not _is_buffer(k)]
    if len(keys) != len(shadow):
        raise TeacherLoadError(f'{path}: the EMA has {len(shadow)} shadow parameters but the model has {len(keys)} '
                               'parameters; pass ema=False to load the raw weights')
    out = OrderedDict(model_sd)
    for k, s in zip(keys, shadow):
        if tuple(s.shape) != tuple(model_sd[k].shape):
            raise TeacherLoadError(f'{path}: EMA shadow parameter for {k!r} has shape {tuple(s.shape)}, the model '
                                   f'entry {tuple(model_sd[k].shape)}')
        out[k] = s
    return out


def ncsnpp_to_songunet(sd: 'OrderedDict[str, Tensor]', net: SongUNet) -> 'OrderedDict[str, Tensor]':
    """Rename a score_sde ``NCSNpp`` (DDPM++ settings) state dict onto ``net``'s keys.

    The score_sde modules come in the order of EDM's ``SongUNet`` blocks: the two embedding ``Linear`` layers, the
    input conv, then one residual block per EDM ``UNetBlock`` (followed by an attention block where the EDM block
    has attention), the output GroupNorm and conv. Buffers absent from score_sde (``resample_filter``) are taken
    from ``net``.
    """
    if (net.embedding_type, net.encoder_type, net.decoder_type) != ('positional', 'standard', 'standard'):
        raise TeacherLoadError('score_sde NCSNpp checkpoints convert only onto a SongUNet with DDPM++ settings '
                               "(embedding_type='positional', encoder_type='standard', decoder_type='standard')")
    modules = OrderedDict()
    for k, v in sd.items():
        if not k.startswith('all_modules.'):
            continue
        idx, name = k[len('all_modules.'):].split('.', 1)
        modules.setdefault(int(idx), OrderedDict())[name] = v
    queue = [(i, modules[i]) for i in sorted(modules)]
    out = OrderedDict()
    marker = {'linear': 'weight', 'residual block': 'Conv_0.weight', 'attention block': 'NIN_0.W'}

    def take(what, kind='linear'):
        if not queue:
            raise TeacherLoadError(f'the NCSNpp checkpoint has fewer modules than the SongUNet needs (at {what})')
        i, m = queue.pop(0)
        if marker[kind] not in m:
            raise TeacherLoadError(f'NCSNpp module all_modules.{i} holds {sorted(m)[:4]}, but the SongUNet expects a '
                                   f'{kind} for {what}: the architectures differ (num_blocks, channel_mult, '
                                   'attn_resolutions, or a Fourier / progressive NCSN++)')
        return m

    def linear(prefix, m):
        out[prefix + 'weight'], out[prefix + 'bias'] = m['weight'], m['bias']

    def nin(m, i):
        return m[f'NIN_{i}.W'].t()[:, :, None, None], m[f'NIN_{i}.b']

    linear('map_layer0.', take('map_layer0'))
    linear('map_layer1.', take('map_layer1'))
    for part in ('enc', 'dec'):
        for name, block in getattr(net, part).items():
            prefix = f'{part}.{name}.'
            if isinstance(block, UNetBlock):
                r = take(prefix[:-1], 'residual block')
                for src, dst in (('GroupNorm_0', 'norm0'), ('Conv_0', 'conv0'), ('Dense_0', 'affine'),
                                 ('GroupNorm_1', 'norm1'), ('Conv_1', 'conv1'), ('Conv_2', 'skip')):
                    if src + '.weight' in r:
                        out[f'{prefix}{dst}.weight'], out[f'{prefix}{dst}.bias'] = r[src + '.weight'], r[src + '.bias']
                if block.num_heads:
                    a = take(prefix[:-1], 'attention block')
                    out[prefix + 'norm2.weight'] = a['GroupNorm_0.weight']
                    out[prefix + 'norm2.bias'] = a['GroupNorm_0.bias']
                    (wq, bq), (wk, bk), (wv, bv) = nin(a, 0), nin(a, 1), nin(a, 2)
                    c = wq.shape[0]
                    out[prefix + 'qkv.weight'] = torch.stack([wq, wk, wv], dim=1).reshape(3 * c, *wq.shape[1:])
                    out[prefix + 'qkv.bias'] = torch.stack([bq, bk, bv], dim=1).reshape(3 * c)
                    out[prefix + 'proj.weight'], out[prefix + 'proj.bias'] = nin(a, 3)
            elif isinstance(block, (Conv2d, GroupNorm)):
                linear(prefix, take(prefix[:-1]))
    if queue:
        raise TeacherLoadError(f'the NCSNpp checkpoint has {len(queue)} more module(s) than the SongUNet '
                               '(different num_blocks / channel_mult / attn_resolutions?)')
    own = net.state_dict()
    return OrderedDict((k, out[k] if k in out else own[k]) for k in own if k in out or _is_buffer(k))


def _weights(obj, path: str, ema: bool, key: Optional[str]) -> Tuple['OrderedDict[str, Tensor]', str]:
    if key is not None or not isinstance(obj, dict) or all(isinstance(v, Tensor) for v in obj.values()):
        return select_state_dict(obj, path, key)
    if 'model_state_dict' in obj:  # CUD training state: a list of state dicts, the flow network first
        states = obj['model_state_dict']
        sd = states[0] if isinstance(states, (list, tuple)) else states
        return select_state_dict(sd, path)[0], "['model_state_dict'][0]"
    if ema and isinstance(obj.get('ema'), dict) and 'shadow_params' in obj['ema']:
        if 'model' not in obj:
            raise TeacherLoadError(f'{path}: an EMA of shadow parameters needs the model entry for names and buffers')
        model_sd, _ = select_state_dict(obj['model'], path)
        return apply_shadow_params(model_sd, obj['ema']['shadow_params'], path), "['ema'] shadow parameters"
    return select_state_dict(obj, path, None, keys=('ema', 'model', 'state_dict') if ema else
                             ('model', 'state_dict'))


def read_flow(path: str, network: dict, ema: bool = True, key: Optional[str] = None) -> Tuple[nn.Module, dict]:
    """Build ``network`` and load the (EMA) velocity network stored in ``path`` (see the module docstring)."""
    obj = read_torch_file(path, 'flow')
    sd, where = _weights(obj, path, ema, key)
    if any('all_modules.' in k for k in sd):
        where += ', score_sde NCSNpp converted to SongUNet'
        net = MODELS.build(dict(network))
        if not isinstance(net, SongUNet):
            raise TeacherLoadError(f'{path} holds a score_sde NCSNpp; configure network=dict(type="SongUNet", ...) '
                                   'with its DDPM++ settings')
        sd = ncsnpp_to_songunet(strip_prefixes(sd, ['all_modules.']), net)
        check_state_dict(net, sd, f'{path} ({where})')
        net.load_state_dict(sd, strict=True)
    else:
        net = build_and_load(network, sd, f'{path} ({where})', unwrap=True)
    return net, dict(cfg=dict(network), where=where, num_params=count_parameters(net))


@TEACHERS.register_module(name='flow')
def load_flow(path: str,
              network: dict,
              convention: str = 'rf',
              ema: bool = True,
              key: Optional[str] = None,
              time_scale: Optional[float] = None,
              eps: Optional[float] = None) -> nn.Module:
    """Teacher loader for RectifiedFlow, SlimFlow and Catch-Up Distillation checkpoints.

    Args:
        path (str): Local checkpoint path (``checkpoint_*.pth``, ``flow_model_*_ema.pth``, ...).
        network (dict): The velocity network's config (``SongUNet`` / ``DhariwalUNet``).
        convention (str): ``'rf'`` (RectifiedFlow, SlimFlow: noise at t = 0, net fed 999 t) or ``'cud'`` (data at
            t = 0, net fed t).
        ema (bool): Use the EMA weights when the file has them.
        key (str, optional): Entry holding the state dict, overriding the layout detection.
        time_scale (float, optional): Factor on t fed to the network (default by convention).
        eps (float, optional): Smallest flow time of the reference samplers (default by convention).

    Returns:
        A frozen :class:`~kdm.diffusion.FlowDenoiser`.
    """
    net, _ = read_flow(path, network, ema=ema, key=key)
    return freeze(FlowDenoiser(net, convention=convention, time_scale=time_scale, eps=eps,
                               label_dim=int(network.get('label_dim', 0) or 0)))
