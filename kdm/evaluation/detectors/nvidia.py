# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Convert NVIDIA's Inception detector files into :class:`FIDInceptionV3` weights without running their code.

- ``inception-2015-12-05.pt`` (StyleGAN2-ADA / SiD / clean-fid) is a TorchScript archive: a zip whose
  ``data.pkl`` pickles the module tree (``__torch__.*`` objects holding their attributes) and whose tensors live in
  ``data/<key>``. We unpickle ``data.pkl`` with a restricted unpickler that only knows inert placeholders, the
  tensor rebuild functions and ``OrderedDict``; the TorchScript code in the archive is never compiled or run.
- ``inception-2015-12-05.pkl`` (EDM / EDM2 / SFD / CUD, from NGC) is a plain pickle made with NVIDIA's
  ``persistence`` module (embedded source code). The same restricted unpickler turns every object into an inert
  placeholder and ``torch.storage._load_from_bytes`` into ``torch.load(weights_only=True)``; the embedded source
  is never executed.

The layer names follow the TF graph (``conv``, ``conv_1`` .. ``conv_4``, ``mixed`` .. ``mixed_10``, ``output``;
inside a block ``conv``, ``tower/conv_1``, ``tower_1/mixed/conv`` ...), which is also what torch-fidelity's TF
converter maps onto the pytorch-fid keys; :func:`tf_to_torch_names` rebuilds that map. Inside each TF conv the
converter accepts either a conv + batch-norm parameter set (names containing ``mean``/``var``/``beta``/``gamma`` or
torch's ``running_mean`` ...) or a conv whose batch norm was folded into a bias.

Status: exercised on synthetic archives of that layout (tests); not yet checked against the real NVIDIA files,
whose inner parameter names were not available when this was written. A file whose layout does not match gives an
error listing what it contains; the pytorch-fid ``.pth`` is the supported format.
"""
import io
import pickle
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Tuple

import torch
from torch import Tensor

_DTYPES = {
    'FloatStorage': torch.float32, 'DoubleStorage': torch.float64, 'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
}


class _Placeholder:
    """An inert stand-in for any pickled object: keeps its constructor arguments and state, runs nothing."""

    def __init__(self, *args, **kwargs):
        self._args, self._state = args, None

    def __setstate__(self, state):
        self._state = state

    def __call__(self, *args, **kwargs):  # a placeholder used as a function returns a placeholder of its call
        p = _Placeholder(*args)
        p._state = args[0] if len(args) == 1 and isinstance(args[0], dict) else None
        return p


def _placeholder_class(name: str):
    return type(name.replace('.', '_'), (_Placeholder,), {})


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, storage_offset, size, stride, *args):
    # TorchScript archives give a tensor viewed as the dtype (persistent_load); plain pickles give the TypedStorage
    # that torch.load returns for ``_load_from_bytes`` (its ``_untyped_storage`` avoids the deprecation warning)
    untyped = storage._untyped_storage if isinstance(storage, torch.storage.TypedStorage) else \
        storage.untyped_storage()
    t = torch.empty(0, dtype=storage.dtype)
    t.set_(untyped, storage_offset, tuple(size), tuple(stride))
    return t


def _rebuild_parameter(data, *args):
    return data


def _load_from_bytes(b):
    return torch.load(io.BytesIO(b), map_location='cpu', weights_only=True)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only tensors, storages and ``OrderedDict``; every other global becomes an inert
    placeholder class, so no code from the file runs."""

    def __init__(self, file, zip_file: zipfile.ZipFile = None, prefix: str = ''):
        super().__init__(file)
        self._zip, self._prefix = zip_file, prefix

    def find_class(self, module: str, name: str):
        if module == 'collections' and name == 'OrderedDict':
            return OrderedDict
        if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
            return _rebuild_tensor
        if module == 'torch._utils' and name == '_rebuild_parameter':
            return _rebuild_parameter
        if module == 'torch.storage' and name == '_load_from_bytes':
            return _load_from_bytes
        if module == 'torch' and name in _DTYPES:
            return _StorageType(_DTYPES[name])
        if module == 'torch' and name == 'device':
            return str
        return _placeholder_class(f'{module}.{name}')

    def persistent_load(self, pid):
        if self._zip is None or not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
            raise pickle.UnpicklingError(f'unsupported persistent id {pid!r}')
        _, stype, key, _location, numel = pid[:5]
        dtype = stype.dtype if isinstance(stype, _StorageType) else torch.float32
        raw = bytearray(self._zip.read(f'{self._prefix}data/{key}'))
        storage = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        return storage.view(dtype) if raw else torch.empty(0, dtype=dtype)


def flatten_tensors(obj: Any, prefix: str = '', out: Dict[str, Tensor] = None, _seen=None) -> Dict[str, Tensor]:
    """All tensors reachable from an unpickled object, keyed by dotted attribute path (``_parameters``,
    ``_buffers``, ``_modules`` and persistence ``state`` levels are transparent)."""
    out = OrderedDict() if out is None else out
    _seen = set() if _seen is None else _seen
    if id(obj) in _seen:
        return out
    _seen.add(id(obj))
    if isinstance(obj, Tensor):
        out[prefix.rstrip('.')] = obj
    elif isinstance(obj, _Placeholder):
        state = obj._state
        if state is None and obj._args and isinstance(obj._args[0], dict):
            state = obj._args[0]
        if isinstance(state, dict):
            flatten_tensors(state, prefix, out, _seen)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            transparent = k in ('_parameters', '_buffers', '_modules', 'state', '__dict__')
            flatten_tensors(v, prefix if transparent else f'{prefix}{k}.', out, _seen)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten_tensors(v, f'{prefix}{i}.', out, _seen)
    return out


def read_torchscript_tensors(path: str) -> Dict[str, Tensor]:
    """Tensors of a TorchScript archive by attribute path, read from ``data.pkl`` without running any code."""
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith('data.pkl') and n.count('/') == 1]
        if not pkl:
            raise ValueError(f'{path} is a zip file but not a TorchScript archive (no <name>/data.pkl)')
        prefix = pkl[0][:-len('data.pkl')]
        obj = RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), zf, prefix).load()
    return flatten_tensors(obj)


def read_pickle_tensors(path: str) -> Dict[str, Tensor]:
    """Tensors of a (persistence) pickle by attribute path, without running the embedded code."""
    with open(path, 'rb') as f:
        obj = RestrictedUnpickler(f).load()
    return flatten_tensors(obj)


# TF graph block -> torch block, and the branch names inside each kind of block (TF sub-path -> torch name).
_BLOCKS = [('mixed', 'Mixed_5b', 'A'), ('mixed_1', 'Mixed_5c', 'A'), ('mixed_2', 'Mixed_5d', 'A'),
           ('mixed_3', 'Mixed_6a', 'B'), ('mixed_4', 'Mixed_6b', 'C'), ('mixed_5', 'Mixed_6c', 'C'),
           ('mixed_6', 'Mixed_6d', 'C'), ('mixed_7', 'Mixed_6e', 'C'), ('mixed_8', 'Mixed_7a', 'D'),
           ('mixed_9', 'Mixed_7b', 'E'), ('mixed_10', 'Mixed_7c', 'E')]
_BRANCHES = {
    'A': [('conv', 'branch1x1'), ('tower.conv', 'branch5x5_1'), ('tower.conv_1', 'branch5x5_2'),
          ('tower_1.conv', 'branch3x3dbl_1'), ('tower_1.conv_1', 'branch3x3dbl_2'),
          ('tower_1.conv_2', 'branch3x3dbl_3'), ('tower_2.conv', 'branch_pool')],
    'B': [('conv', 'branch3x3'), ('tower.conv', 'branch3x3dbl_1'), ('tower.conv_1', 'branch3x3dbl_2'),
          ('tower.conv_2', 'branch3x3dbl_3')],
    'C': [('conv', 'branch1x1'), ('tower.conv', 'branch7x7_1'), ('tower.conv_1', 'branch7x7_2'),
          ('tower.conv_2', 'branch7x7_3')] + [
          (f'tower_1.conv{"" if i == 0 else f"_{i}"}', f'branch7x7dbl_{i + 1}') for i in range(5)] + [
          ('tower_2.conv', 'branch_pool')],
    'D': [('tower.conv', 'branch3x3_1'), ('tower.conv_1', 'branch3x3_2')] + [
          (f'tower_1.conv{"" if i == 0 else f"_{i}"}', f'branch7x7x3_{i + 1}') for i in range(4)],
    'E': [('conv', 'branch1x1'), ('tower.conv', 'branch3x3_1'), ('tower.mixed.conv', 'branch3x3_2a'),
          ('tower.mixed.conv_1', 'branch3x3_2b'), ('tower_1.conv', 'branch3x3dbl_1'),
          ('tower_1.conv_1', 'branch3x3dbl_2'), ('tower_1.mixed.conv', 'branch3x3dbl_3a'),
          ('tower_1.mixed.conv_1', 'branch3x3dbl_3b'), ('tower_2.conv', 'branch_pool')],
}


def tf_to_torch_names() -> List[Tuple[str, str]]:
    """(TF conv path with dots, pytorch-fid module name) for the 94 convolutions of the FID Inception."""
    names = [('conv', 'Conv2d_1a_3x3'), ('conv_1', 'Conv2d_2a_3x3'), ('conv_2', 'Conv2d_2b_3x3'),
             ('conv_3', 'Conv2d_3b_1x1'), ('conv_4', 'Conv2d_4a_3x3')]
    for tf_block, pt_block, kind in _BLOCKS:
        names += [(f'{tf_block}.{sub}', f'{pt_block}.{br}') for sub, br in _BRANCHES[kind]]
    return names


def _find_root(tensors: Dict[str, Tensor]) -> str:
    for key in tensors:
        i = key.find('mixed_10.')
        if i >= 0 and (i == 0 or key[i - 1] == '.'):
            return key[:i]
    raise KeyError('no "mixed_10" block')


def _conv_params(group: Dict[str, Tensor], eps: float = 0.001) -> Dict[str, Tensor]:
    """Map the tensors of one TF conv (leaf names) to ``conv.weight`` + ``bn.*``."""
    weights = [v for v in group.values() if v.ndim == 4]
    if len(weights) != 1:
        raise KeyError(f'expected one 4-D conv weight, got {sorted(group)}')
    w = weights[0]
    cout = w.shape[0]
    vecs = {k.lower(): v for k, v in group.items() if v.ndim == 1 and v.numel() == cout}

    def pick(*subs):
        for k, v in vecs.items():
            last = k.split('.')[-1]
            if any(s == last or s in last for s in subs):
                return v
        return None

    mean, var = pick('running_mean', 'moving_mean', 'mean'), pick('running_var', 'moving_variance', 'var')
    beta = pick('beta', 'bn.bias') if mean is not None else None
    if beta is None and mean is not None:
        beta = next((v for k, v in vecs.items() if k.endswith('bias')), None)
    gamma = pick('gamma')
    if gamma is None and mean is not None:
        gamma = next((v for k, v in vecs.items() if k.endswith('weight')), None)
    out = {'conv.weight': w.float().contiguous()}
    if mean is not None and var is not None:
        out.update({'bn.running_mean': mean, 'bn.running_var': var,
                    'bn.bias': beta if beta is not None else torch.zeros(cout),
                    'bn.weight': gamma if gamma is not None else torch.ones(cout)})  # TF: no scale
    else:  # batch norm folded into a conv bias: identity batch norm
        bias = next((v for k, v in vecs.items() if k.endswith('bias') or 'beta' in k), torch.zeros(cout))
        out.update({'bn.running_mean': torch.zeros(cout), 'bn.running_var': torch.full((cout,), 1.0 - eps),
                    'bn.bias': bias, 'bn.weight': torch.ones(cout)})
    return {k: v.float().contiguous() for k, v in out.items()}


def convert_tf_named_tensors(tensors: Dict[str, Tensor], source: str = 'file') -> Dict[str, Tensor]:
    """Map TF-graph-named tensors (NVIDIA detector layout) to the pytorch-fid state-dict layout."""
    try:
        root = _find_root(tensors)
        sd = OrderedDict()
        for tf_path, pt_name in tf_to_torch_names():
            p = f'{root}{tf_path}.'
            group = {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}
            # leave out deeper TF sub-blocks (e.g. "tower.conv." must not take "tower.conv_1.")
            if not group:
                raise KeyError(f'no tensors under "{p}"')
            for k, v in _conv_params(group).items():
                sd[f'{pt_name}.{k}'] = v
        fc = {k: v for k, v in tensors.items() if k.startswith(f'{root}output') or k.startswith('output')}
        w = next((v for v in fc.values() if v.ndim == 2), None)
        b = next((v for v in fc.values() if v.ndim == 1 and v.numel() == 1008), None)
        if w is None:
            raise KeyError('no 2-D "output" weight')
        sd['fc.weight'] = (w if w.shape == (1008, 2048) else w.t()).float().contiguous()
        sd['fc.bias'] = b.float() if b is not None else torch.zeros(1008)
        return sd
    except KeyError as e:
        names = list(tensors)
        shown = ', '.join(names[:12]) + (f', ... ({len(names)} tensors)' if len(names) > 12 else '')
        raise ValueError(f'{source}: unrecognised Inception layout ({e.args[0]}). '
                         f'It contains: {shown or "no tensors"}. '
                         'Use the pytorch-fid state dict pt_inception-2015-12-05-6726825d.pth instead.') from None


def load_torchscript_detector(path: str) -> Dict[str, Tensor]:
    """NVIDIA ``inception-2015-12-05.pt`` (TorchScript) -> pytorch-fid state dict, without running its code."""
    return convert_tf_named_tensors(read_torchscript_tensors(path), path)


def load_nvidia_pickle_detector(path: str) -> Dict[str, Tensor]:
    """NVIDIA ``inception-2015-12-05.pkl`` (NGC persistence pickle) -> pytorch-fid state dict, without running
    its embedded code."""
    return convert_tf_named_tensors(read_pickle_tensors(path), path)
