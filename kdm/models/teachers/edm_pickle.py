# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""EDM, EDM2 and SiD ``.pkl`` teachers through a restricted unpickler (``shared/spec/sid_edm.md`` section 3).

NVIDIA's ``torch_utils.persistence`` pickles store every network class as a record
``_reconstruct_persistent_obj({'type': 'class', 'version': 6, 'module_src': <source>, 'class_name': ...,
'state': <module __dict__>})`` whose stock loader *executes* ``module_src``. kdm never does:

1. :class:`RestrictedUnpickler` resolves only an allow-list of globals (tensor and storage rebuilders, a few
   containers, numeric NumPy scalars/arrays/dtypes, EDM's persistent-object record); every other global, and every
   persistent id, is refused with :class:`PickleSecurityError` naming it. Persistent records become inert
   :class:`PersistentStub` objects; their source text is kept only as a string.
2. The source of each record is parsed (``ast``, never compiled or executed) by
   :func:`~kdm.models.teachers.source_audit.audit_module_source`: genuine
   NVIDIA / SiD sources only define things, so code that would run on import (a call such as ``open(...)``
   outside a function body, a dangerous name) means the file was tampered with and it is refused
   (``check_source=False`` skips the check; the source is still never executed).
3. :func:`stub_to_config` maps the record's class name and pickled ``_init_kwargs`` to a kdm config
   (``EDMPrecond``/``VPPrecond``/``VEPrecond``/``iDDPMPrecond`` around ``SongUNet``/``DhariwalUNet``, or
   ``EDM2Precond``), :func:`flatten_state_dict` turns the stub tree into a state dict exactly like
   ``nn.Module.state_dict()``, and the kdm module is built and loaded with ``strict=True``.

:func:`load_edm_reference_stats` reads reference statistics (EDM2 ``img512.pkl``; EDM ``.npz``) the same way.
"""
import io
import os.path as osp
import pickle
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from kdm.registry import TEACHERS
from .common import TeacherLoadError, build_and_load, count_parameters, freeze, require_file
from .source_audit import audit_module_source

__all__ = [
    'PickleSecurityError', 'PersistentStub', 'ContainerStub', 'RestrictedUnpickler', 'safe_load_pickle',
    'audit_module_source', 'flatten_state_dict', 'stub_to_config', 'read_edm_pickle', 'load_edm_pickle',
    'load_edm_reference_stats'
]


class PickleSecurityError(pickle.UnpicklingError):
    """The pickle asks for something kdm's restricted unpickler does not allow."""


class PersistentStub:
    """An inert record of a ``torch_utils.persistence`` object: class name, pickled state and the source text
    (kept as a string only; it is never compiled or executed)."""

    def __init__(self, meta: dict):
        if not isinstance(meta, dict) or meta.get('type') != 'class' or not isinstance(meta.get('class_name'), str):
            raise PickleSecurityError('malformed persistent-object record (expected type="class" and a class_name)')
        self.class_name: str = meta['class_name']
        self.version = meta.get('version')
        self.module_src: str = meta.get('module_src') or ''
        self.state: dict = meta.get('state') if isinstance(meta.get('state'), dict) else {}

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get('_init_kwargs') or {})

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get('_init_args') or ())

    def __repr__(self) -> str:
        return f'PersistentStub({self.class_name})'


class ContainerStub:
    """Stand-in for ``torch.nn`` containers (``ModuleDict``, ``ModuleList``, ``Sequential``): keeps the state."""
    container = 'Module'

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f'ContainerStub({self.container})'


def _container(name):
    return type(f'{name}Stub', (ContainerStub, ), {'container': name})


class EasyDictStub(dict):
    """``dnnlib.util.EasyDict`` as a plain dict (attribute access included)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent_obj(meta):
    return PersistentStub(meta)


def _load_storage(data: bytes):
    if not isinstance(data, (bytes, bytearray)):
        raise PickleSecurityError('torch.storage._load_from_bytes expects bytes')
    return torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)


def _numeric_dtype(dtype) -> np.dtype:
    d = np.dtype(dtype)
    if d.hasobject or d.kind not in 'biufc':
        raise PickleSecurityError(f'refusing NumPy dtype {d!r}: only numeric dtypes are allowed')
    return d


def _np_dtype(obj, align=False, copy=False):
    return _numeric_dtype(np.dtype(obj, align, copy))


def _np_scalar(dtype, data=None):
    dtype = _numeric_dtype(dtype)
    return np.frombuffer(data, dtype=dtype, count=1)[0] if data is not None else dtype.type(0)


def _np_reconstruct(cls, shape, typecode):
    if cls is not np.ndarray:
        raise PickleSecurityError(f'refusing to reconstruct a NumPy array of class {cls!r}')
    return np.ndarray.__new__(np.ndarray, shape, np.dtype(typecode))


def _np_frombuffer(buf, dtype, shape, order):
    arr = np.frombuffer(buf, dtype=_numeric_dtype(dtype))
    return arr.reshape(shape, order='F' if order == 'F' else 'C')


def _rebuild_from_type_v2(func, new_type, args, state):
    if new_type not in (torch.Tensor, nn.Parameter):
        raise PickleSecurityError(f'refusing tensor subclass {new_type!r}')
    return torch._utils._rebuild_from_type_v2(func, new_type, args, state)


def _getattr_dropped(obj, name):
    """SiDA-EDM2 pickles store bound methods as forward pre-hooks: dropped (hooks are not used)."""
    return None


_ALLOWED: Dict[Tuple[str, str], Any] = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent_obj,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): torch._utils._rebuild_parameter_with_state,
    ('torch._utils', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
    ('torch', 'Tensor'): torch.Tensor,
    ('torch.nn.parameter', 'Parameter'): nn.Parameter,
    ('torch.storage', '_load_from_bytes'): _load_storage,
    ('torch.nn.modules.container', 'ModuleDict'): _container('ModuleDict'),
    ('torch.nn.modules.container', 'ModuleList'): _container('ModuleList'),
    ('torch.nn.modules.container', 'Sequential'): _container('Sequential'),
    ('collections', 'OrderedDict'): OrderedDict,
    ('dnnlib.util', 'EasyDict'): EasyDictStub,
    ('builtins', 'getattr'): _getattr_dropped,
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): _np_dtype,
}
for _core in ('numpy.core', 'numpy._core'):
    _ALLOWED[(_core + '.multiarray', 'scalar')] = _np_scalar
    _ALLOWED[(_core + '.multiarray', '_reconstruct')] = _np_reconstruct
    _ALLOWED[(_core + '.numeric', '_frombuffer')] = _np_frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals EDM, EDM2 and SiD pickles need (spec 3.3)."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise PickleSecurityError(
                f'refusing to load global {module}.{name}: it is not one of the objects an EDM/EDM2/SiD pickle '
                'contains, and loading it could run code') from None

    def persistent_load(self, pid):
        raise PickleSecurityError(f'refusing persistent id {pid!r}: not an EDM-format pickle '
                                  '(zip-format torch files are read with torch.load(weights_only=True))')


def safe_load_pickle(path: str) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; bad files raise TeacherLoadError / PickleSecurityError."""
    with open(path, 'rb') as f:
        head = f.read(2)
        f.seek(0)
        if head[:1] != b'\x80':
            raise TeacherLoadError(f'{path} is not a pickle file (it does not start with a pickle protocol header); '
                                   'EDM/EDM2/SiD teachers are .pkl files written by their training code')
        try:
            return RestrictedUnpickler(f).load()
        except PickleSecurityError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, RuntimeError, TypeError, AttributeError,
                IndexError, KeyError, MemoryError) as e:
            raise TeacherLoadError(f'{path} could not be read as an EDM pickle (truncated or corrupt file?): '
                                   f'{type(e).__name__}: {e}') from e


def _stubs(obj, seen=None):
    """Every PersistentStub reachable through stub states and plain containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, PersistentStub):
        yield obj
        yield from _stubs(obj.state, seen)
    elif isinstance(obj, ContainerStub):
        yield from _stubs(obj.state, seen)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _stubs(v, seen)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _stubs(v, seen)


def _check_sources(root, path: str) -> None:
    audited = {}
    for stub in _stubs(root):
        if stub.module_src not in audited:
            audited[stub.module_src] = audit_module_source(stub.module_src)
        issues = audited[stub.module_src]
        if issues:
            raise TeacherLoadError(
                f'{path}: refused. The source code embedded for class {stub.class_name!r} would execute on import:\n'
                + '\n'.join('  ' + i for i in issues[:10]) +
                '\nGenuine EDM/EDM2/SiD pickles only define classes and functions, so this file may have been '
                'tampered with. kdm never executes embedded code; pass check_source=False to load the weights '
                'anyway.')


# ----------------------------------------------------------------------------------------------------------------------
# Stub tree -> state dict and kdm config


def flatten_state_dict(stub, prefix: str = '', out: Optional[OrderedDict] = None) -> 'OrderedDict[str, torch.Tensor]':
    """The ``nn.Module.state_dict()`` of a stub tree: parameters, persistent buffers, then children."""
    out = OrderedDict() if out is None else out
    state = stub.state
    for name, p in (state.get('_parameters') or {}).items():
        if p is not None:
            out[prefix + name] = p.detach()
    skip = set(state.get('_non_persistent_buffers_set') or ())
    for name, b in (state.get('_buffers') or {}).items():
        if b is not None and name not in skip:
            out[prefix + name] = b.detach() if isinstance(b, torch.Tensor) else torch.as_tensor(b)
    for name, child in (state.get('_modules') or {}).items():
        if child is None:
            continue
        if not isinstance(child, (PersistentStub, ContainerStub)):
            raise TeacherLoadError(f'unexpected child module {prefix + name!r} of type {type(child).__name__}')
        flatten_state_dict(child, prefix + name + '.', out)
    return out


_EDM_PRECONDS = {'EDMPrecond': 'EDMPrecond', 'VPPrecond': 'VPPrecond', 'VEPrecond': 'VEPrecond',
                 'iDDPMPrecond': 'iDDPMPrecond', 'EDMPrecond_EncoderDecoder': 'EDMPrecond'}
_EDM2_PRECONDS = ('Precond', 'EDM_2_Precond_Generator', 'EDM_2_Precond_EncoderDecoder')
_NETWORKS = {'SongUNet': 'SongUNet', 'DhariwalUNet': 'DhariwalUNet', 'SongUNet_EncoderDecoder': 'SongUNet',
             'DhariwalUNet_EncoderDecoder': 'DhariwalUNet'}
# precond keyword -> kdm precond keyword (everything else goes to the network)
_PRECOND_KEYS = {
    'EDMPrecond': ('sigma_min', 'sigma_max', 'sigma_data', 'use_fp16'),
    'VPPrecond': ('beta_d', 'beta_min', 'M', 'epsilon_t', 'use_fp16'),
    'VEPrecond': ('sigma_min', 'sigma_max', 'use_fp16'),
    'iDDPMPrecond': ('C_1', 'C_2', 'M', 'use_fp16'),
}
_POSITIONAL = ('img_resolution', 'img_channels', 'label_dim', 'use_fp16')
# training-only switches of SiD/SiDA classes that do not change the weights
_IGNORED_KWARGS = ('use_gan', 'force_normalization', 'return_logvar', 'return_flag', 'class_name')


def _to_builtin(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_to_builtin(x) for x in v]
    if isinstance(v, dict):
        return {k: _to_builtin(x) for k, x in v.items()}
    return v


def stub_to_config(stub: PersistentStub, state_dict: Optional[dict] = None) -> dict:
    """The kdm ``MODELS`` config that rebuilds a pickled EDM / EDM2 / SiD preconditioner."""
    kwargs = dict(zip(_POSITIONAL, stub.init_args))
    kwargs.update(stub.init_kwargs)
    kwargs = {k: _to_builtin(v) for k, v in kwargs.items() if k not in _IGNORED_KWARGS}
    for key in ('img_resolution', 'img_channels'):
        if key not in kwargs:
            raise TeacherLoadError(f'the pickled {stub.class_name} has no {key!r} in its init kwargs')
    name = stub.class_name
    if name in _EDM_PRECONDS:
        precond = _EDM_PRECONDS[name]
        model_type = kwargs.pop('model_type', 'DhariwalUNet')
        if model_type not in _NETWORKS:
            raise TeacherLoadError(f'unsupported network model_type={model_type!r}; kdm knows {sorted(_NETWORKS)}')
        res, ch, label_dim = kwargs.pop('img_resolution'), kwargs.pop('img_channels'), kwargs.pop('label_dim', 0)
        pre = {k: kwargs.pop(k) for k in _PRECOND_KEYS[precond] if k in kwargs}
        net = dict(type=_NETWORKS[model_type], img_resolution=res, in_channels=ch,
                   out_channels=ch * 2 if precond == 'iDDPMPrecond' else ch, label_dim=label_dim, **kwargs)
        return dict(type=precond, model=net, img_resolution=res, img_channels=ch, label_dim=label_dim, **pre)
    if name in _EDM2_PRECONDS:
        cfg = dict(type='EDM2Precond', **kwargs)
        if state_dict is not None and 'logvar_linear.weight' not in state_dict:
            cfg['logvar_channels'] = 0  # SiD generators have no uncertainty head
        elif state_dict is not None:
            cfg.setdefault('logvar_channels', int(state_dict['logvar_linear.weight'].shape[1]))
        return cfg
    raise TeacherLoadError(f'unsupported pickled class {name!r}; kdm rebuilds {sorted(_EDM_PRECONDS)} and '
                           f'{list(_EDM2_PRECONDS)} (EDM, EDM2, SiD, SiDA)')


def read_edm_pickle(path: str, key: str = 'ema', check_source: bool = True,
                    use_fp16: Optional[bool] = None) -> Tuple[nn.Module, dict]:
    """Rebuild the network stored under ``key`` of an EDM/EDM2/SiD pickle as a kdm module (not frozen).

    ``use_fp16`` (if not None) overrides the pickled flag in the module and in ``info['cfg']``, so a converted
    teacher rebuilt from that config runs in the same precision.

    Returns:
        (module, info): ``info`` has ``cfg`` (the kdm config that rebuilds it), ``class_name``, ``init_kwargs``,
        ``keys`` (top-level keys of the file), ``num_params`` and ``dataset_kwargs`` when present.
    """
    path = require_file(path, 'edm_pickle')
    data = safe_load_pickle(path)
    if check_source:
        _check_sources(data, path)
    if isinstance(data, PersistentStub):
        stub, keys = data, []
    elif isinstance(data, dict):
        keys = list(data)
        if key not in data:
            raise TeacherLoadError(f'{path} has no entry {key!r}; its top-level keys are {keys}')
        stub = data[key]
    else:
        raise TeacherLoadError(f'{path} holds a {type(data).__name__}, not an EDM network snapshot')
    if not isinstance(stub, PersistentStub):
        raise TeacherLoadError(f'{path}: entry {key!r} is a {type(stub).__name__}, not a pickled network')
    state_dict = flatten_state_dict(stub)
    cfg = stub_to_config(stub, state_dict)
    module = build_and_load(cfg, state_dict, f'{path} [{key}] ({stub.class_name})')
    if use_fp16 is not None:
        module.use_fp16 = bool(use_fp16)
        cfg = dict(cfg, use_fp16=bool(use_fp16))
    info = dict(cfg=cfg, class_name=stub.class_name, init_kwargs=_to_builtin(stub.init_kwargs), keys=keys,
                num_params=count_parameters(module))
    if isinstance(data, dict) and isinstance(data.get('dataset_kwargs'), dict):
        info['dataset_kwargs'] = _to_builtin(dict(data['dataset_kwargs']))
    return module, info


@TEACHERS.register_module(name='edm_pickle')
def load_edm_pickle(path: str, key: str = 'ema', use_fp16: Optional[bool] = None,
                    check_source: bool = True) -> nn.Module:
    """Teacher loader for EDM, EDM2 and SiD ``.pkl`` files (never executes embedded code).

    Args:
        path (str): Local path of the pickle (e.g. ``edm-cifar10-32x32-uncond-vp.pkl``).
        key (str): Entry holding the network (``'ema'`` in every published file).
        use_fp16 (bool, optional): Override the pickled ``use_fp16`` (float16 UNet on CUDA).
        check_source (bool): Refuse files whose embedded source would execute code on import.

    Returns:
        The frozen Denoiser (``EDMPrecond``-family or ``EDM2Precond``).
    """
    module, _ = read_edm_pickle(path, key=key, check_source=check_source, use_fp16=use_fp16)
    return freeze(module)


def load_edm_reference_stats(path: str) -> Dict[str, Any]:
    """Read FID reference statistics: an EDM2 ``.pkl`` (``{'fid': {'mu', 'sigma'}, 'fd_dinov2': {...}}``, read
    with the restricted unpickler) or an EDM / kdm ``.npz`` (``{'mu', 'sigma'}``, read without pickle).

    Returns the stored dict with NumPy arrays (nested as in the file).
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        where = ('https://nvlabs-fi-cdn.nvidia.com/edm2/dataset-refs/<name>.pkl (EDM2) or '
                 'https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/<name>.npz (EDM), or tools/fid_ref.py')
        raise FileNotFoundError(f'reference statistics not found: {path}\n  get them from {where}')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic.startswith(b'PK'):
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError) as e:
            raise TeacherLoadError(f'{path} could not be read as an .npz of statistics: {e}') from e
    data = safe_load_pickle(path)
    if not isinstance(data, dict):
        raise TeacherLoadError(f'{path} holds a {type(data).__name__}, not a dict of reference statistics')
    return dict(data)

