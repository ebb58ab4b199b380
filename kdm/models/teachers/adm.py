# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""guided-diffusion / DDPM-IP ``.pt`` teachers (``shared/spec/dkdm_adm.md`` sections 1 and 2.6).

The released files are plain ``torch.save(state_dict)`` dicts of the ``UNetModel`` (fp32 master weights), read with
``torch.load(weights_only=True)``. Conversions before the strict load: a ``module.`` / ``_orig_mod.`` / ``model.``
prefix that every key carries is removed, and a wrapper dict (``{'ema': ...}``, ``{'model': ...}``,
``{'state_dict': ...}``) is unwrapped. The diffusion (cosine, T = 1000, learned sigma) comes from the config; the
result is a :class:`~kdm.diffusion.DiscreteDenoiser` whose ``net`` and ``diffusion`` give DKDM the native output.
"""
from collections import OrderedDict
from typing import Optional, Tuple

import torch
from torch import nn

from kdm.diffusion import DiscreteDenoiser, create_diffusion
from kdm.registry import TEACHERS
from .common import TeacherLoadError, build_and_load, count_parameters, freeze, require_file

__all__ = ['read_torch_file', 'select_state_dict', 'read_adm', 'load_adm', 'DEFAULT_DIFFUSION']

#: The DKDM / DDPM-IP teachers' diffusion (dkdm_adm.md 1.1): cosine schedule, T = 1000, learned-range variance.
DEFAULT_DIFFUSION = dict(schedule='cosine', steps=1000, learn_sigma=True)


def read_torch_file(path: str, kind: str):
    """``torch.load(path, weights_only=True)`` on the CPU, with clear errors for missing and broken files."""
    path = require_file(path, kind)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if 'Unsupported' in ln or 'error' in ln.lower()), lines[0] if lines else '')
        if 'Unsupported global' in str(e):
            raise TeacherLoadError(f'{path} holds Python objects other than tensors and containers, so kdm does not '
                                   f'load it (weights_only=True): {detail}') from e
        raise TeacherLoadError(f'{path} could not be read as a PyTorch checkpoint (truncated, or not a checkpoint?): '
                               f'{type(e).__name__}: {detail}') from e


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def select_state_dict(obj, path: str, key: Optional[str] = None,
                      keys=('ema', 'state_dict', 'model')) -> Tuple['OrderedDict[str, torch.Tensor]', str]:
    """The state dict inside a loaded checkpoint: ``obj`` itself, ``obj[key]``, or the first of ``keys`` present.

    Returns the state dict and a description of where it was found.
    """
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            found = list(obj) if isinstance(obj, dict) else type(obj).__name__
            raise TeacherLoadError(f'{path} has no entry {key!r} (found {found})')
        obj, where = obj[key], f'[{key!r}]'
    elif _is_state_dict(obj):
        where = 'the top level'
    else:
        for k in keys:
            if isinstance(obj, dict) and _is_state_dict(obj.get(k)):
                obj, where = obj[k], f'[{k!r}]'
                break
        else:
            found = list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
            raise TeacherLoadError(f'{path} does not hold a state dict (found {found}); pass key=... to pick one')
    if not _is_state_dict(obj):
        raise TeacherLoadError(f'{path}{where if key else ""} is not a state dict of tensors')
    return OrderedDict(obj), where


def read_adm(path: str, network: dict, key: Optional[str] = None) -> Tuple[nn.Module, dict]:
    """Build ``network`` (an ``ADMUNet`` config) and load the state dict in ``path`` strictly."""
    obj = read_torch_file(path, 'adm')
    sd, where = select_state_dict(obj, path, key)
    net = build_and_load(network, sd, f'{path} ({where})', unwrap=True)
    return net, dict(cfg=dict(network), where=where, num_params=count_parameters(net))


@TEACHERS.register_module(name='adm')
def load_adm(path: str,
             network: dict,
             diffusion: Optional[dict] = None,
             parameterization: str = 'eps',
             timestep_mode: str = 'nearest',
             key: Optional[str] = None) -> nn.Module:
    """Teacher loader for guided-diffusion / DDPM-IP ``.pt`` state dicts.

    Args:
        path (str): Local path (e.g. ``ADM_cifar10_baseline.pt``).
        network (dict): The ``ADMUNet`` config of the teacher (``configs/_base_/models/adm_*.py``).
        diffusion (dict, optional): ``create_diffusion`` settings; default cosine, T = 1000, learned sigma.
        parameterization (str): What the network predicts (``'eps'`` for every ADM / DDPM-IP teacher).
        timestep_mode (str): ``'nearest'`` (integer timesteps, as trained) or ``'interp'``.
        key (str, optional): Entry of a wrapper dict that holds the state dict.

    Returns:
        A frozen :class:`~kdm.diffusion.DiscreteDenoiser`.
    """
    diffusion = dict(DEFAULT_DIFFUSION if diffusion is None else diffusion)
    if diffusion.get('learn_sigma', True) and network.get('out_channels') != 2 * network.get('in_channels', 3):
        raise TeacherLoadError(f"learn_sigma=True needs out_channels = 2 * in_channels in the network config, got "
                               f"out_channels={network.get('out_channels')}")
    net, _ = read_adm(path, network, key)
    label_dim = int(network.get('num_classes') or 0)
    return freeze(DiscreteDenoiser(net, create_diffusion(**diffusion), parameterization=parameterization,
                                   timestep_mode=timestep_mode, label_dim=label_dim))
