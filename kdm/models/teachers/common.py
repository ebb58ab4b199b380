# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Helpers shared by the teacher loaders: clear errors for bad files, strict state-dict checks, cheap building."""
import os.path as osp
from collections import OrderedDict
from typing import Dict, Iterable, Mapping, Optional

import torch
from torch import Tensor, nn

from kdm.registry import MODELS

__all__ = ['TeacherLoadError', 'PUBLISHED_FILES', 'require_file', 'check_state_dict', 'build_and_load', 'freeze',
           'strip_prefixes', 'count_parameters']


class TeacherLoadError(RuntimeError):
    """A teacher file that exists but cannot be used (truncated, not a checkpoint, wrong architecture, refused)."""


# Where the published teacher files come from (docs/teachers.md has the full table).
_EDM = 'https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/'
_EDM2 = 'https://nvlabs-fi-cdn.nvidia.com/edm2/posthoc-reconstructions/'
_DDPM_IP = 'the links in the README of https://github.com/forever208/DDPM-IP (Google Drive)'
PUBLISHED_FILES: Dict[str, str] = {
    **{n: _EDM + n for n in ('edm-cifar10-32x32-uncond-vp.pkl', 'edm-cifar10-32x32-cond-vp.pkl',
                             'edm-ffhq-64x64-uncond-vp.pkl', 'edm-afhqv2-64x64-uncond-vp.pkl',
                             'edm-imagenet-64x64-cond-adm.pkl')},
    **{n: _EDM2 + n for n in ('edm2-img512-xs-2147483-0.135.pkl', 'edm2-img512-s-2147483-0.130.pkl',
                              'edm2-img512-m-2147483-0.100.pkl', 'edm2-img512-l-1879048-0.085.pkl',
                              'edm2-img512-xl-1342177-0.085.pkl', 'edm2-img512-xxl-0939524-0.070.pkl')},
    'img512.pkl': 'https://nvlabs-fi-cdn.nvidia.com/edm2/dataset-refs/img512.pkl',
    'ADM_cifar10_baseline.pt': _DDPM_IP + ' (DKDM expects it as model/32x32_diffusion_cifar10.pt)',
    '32x32_diffusion_cifar10.pt': _DDPM_IP + ' (published as ADM_cifar10_baseline.pt)',
    'DDPM_IP_celeba64.pt': _DDPM_IP,
    'DDPM_IP_imageNet32.pt': _DDPM_IP,
}
GENERIC_SOURCES = {
    'edm_pickle': 'EDM teachers: ' + _EDM + '<name>.pkl; EDM2: ' + _EDM2 + '<name>.pkl; SiD / SiDA generators: '
                  'the links in the README of https://github.com/mingyuanzhou/SiD',
    'adm': 'DDPM-IP / ADM checkpoints: ' + _DDPM_IP,
    'flow': 'RectifiedFlow: the links in the README of https://github.com/gnobitab/RectifiedFlow; SlimFlow: the '
            'README of https://github.com/yuanzhi-zhu/SlimFlow; CUD: your own run of '
            'https://github.com/shaoshitong/Catch-Up-Distillation',
    'kdm': 'a checkpoint written by tools/train.py (work_dirs/<config>/iter_*.pth) or by tools/convert.py',
}


def require_file(path: str, kind: str) -> str:
    """Return ``path`` if it is a file, else raise FileNotFoundError naming it and where the file comes from."""
    path = osp.expanduser(str(path))
    if osp.isfile(path):
        return path
    name = osp.basename(path)
    where = PUBLISHED_FILES.get(name, GENERIC_SOURCES.get(kind, 'the project that published it'))
    raise FileNotFoundError(f'{kind} teacher file not found: {path}\n  download it from {where} and put it at '
                            'that path (kdm never downloads anything), or fix the path in the config')


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module`` (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())


def strip_prefixes(state_dict: Mapping[str, Tensor], expected: Iterable[str],
                   prefixes=('module.', '_orig_mod.', 'model.')) -> 'OrderedDict[str, Tensor]':
    """Remove wrapper prefixes (DataParallel ``module.``, ``torch.compile``'s ``_orig_mod.``, ``model.``) that
    every key carries but the network's own keys do not."""
    sd = OrderedDict(state_dict)
    expected = list(expected)
    changed = True
    while changed and sd:
        changed = False
        for p in prefixes:
            if all(k.startswith(p) for k in sd) and not all(k.startswith(p) for k in expected):
                sd = OrderedDict((k[len(p):], v) for k, v in sd.items())
                changed = True
    return sd


def check_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], source: str) -> None:
    """Raise TeacherLoadError if ``state_dict`` does not fit ``module`` exactly (strict keys and shapes).

    The message names the first mismatching key and both shapes, and counts missing / unexpected keys.
    """
    own = module.state_dict()
    first = None
    for key, value in state_dict.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            first = (key, tuple(value.shape), tuple(own[key].shape))
            break
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if first is None and not missing and not unexpected:
        return
    lines = [f'{source} does not match the network {type(module).__name__} (wrong architecture or config?)']
    if first is not None:
        lines.append(f'  first mismatching key {first[0]!r}: checkpoint shape {first[1]}, network shape {first[2]}')
    if missing:
        lines.append(f'  {len(missing)} key(s) missing from the checkpoint, first {missing[0]!r}')
    if unexpected:
        shape = tuple(state_dict[unexpected[0]].shape) if hasattr(state_dict[unexpected[0]], 'shape') else '?'
        lines.append(f'  {len(unexpected)} unexpected key(s) in the checkpoint, first {unexpected[0]!r} {shape}')
    raise TeacherLoadError('\n'.join(lines))


def _has_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in list(module.parameters()) + list(module.buffers()))


#: checkpoints with more elements than this are built on the meta device first (the meta path costs a few seconds
#: of one-time set-up in a process, random initialisation of a large net costs more)
META_BUILD_MIN_NUMEL = 20_000_000


def build_and_load(cfg: dict, state_dict: Mapping[str, Tensor], source: str, build=MODELS.build,
                   unwrap: bool = False) -> nn.Module:
    """Build ``cfg`` and load ``state_dict`` strictly (after :func:`check_state_dict`).

    Large modules are first built on the ``meta`` device (no time spent on random initialisation) and the
    checkpoint tensors are assigned, cast to the dtype of the network's own tensors (EDM2 pickles store float16);
    small ones, and modules whose construction needs real tensors or that keep non-persistent buffers, are built on
    the CPU and loaded by copy (which casts as well). ``unwrap`` first removes wrapper prefixes
    (:func:`strip_prefixes`).
    """
    module: Optional[nn.Module] = None
    if sum(v.numel() for v in state_dict.values()) >= META_BUILD_MIN_NUMEL:
        try:
            with torch.device('meta'):
                module = build(dict(cfg))
        except Exception:  # noqa: BLE001 - constructors that compute with tensors: build on the CPU below
            module = None
    if module is not None:
        if unwrap:
            state_dict = strip_prefixes(state_dict, module.state_dict().keys())
        check_state_dict(module, state_dict, source)
        own = module.state_dict()
        sd = OrderedDict((k, v.detach().to(own[k].dtype)) for k, v in state_dict.items())
        module.load_state_dict(sd, strict=True, assign=True)
        if not _has_meta(module):
            return module
    module = build(dict(cfg))
    if unwrap:
        state_dict = strip_prefixes(state_dict, module.state_dict().keys())
    check_state_dict(module, state_dict, source)
    module.load_state_dict(state_dict, strict=True)
    return module


def freeze(module: nn.Module) -> nn.Module:
    """A teacher: eval mode, no gradients."""
    module.eval().requires_grad_(False)
    return module
