# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Write pickles in the format of NVIDIA's ``torch_utils.persistence`` (shared/spec/sid_edm.md 3.1-3.3), for tests.

Every module becomes a record ``_reconstruct_persistent_obj({'type': 'class', 'version': 6, 'module_src': <source>,
'class_name': <name>, 'state': <module __dict__>})``; ``torch.nn.ModuleDict`` is pickled by reference (NEWOBJ +
BUILD), tensors through torch's own reducers (``_rebuild_parameter``, ``_rebuild_tensor_v2``,
``torch.storage._load_from_bytes`` with a legacy storage blob), ``skip_scale`` as a NumPy float64 like EDM.

:func:`reference_loader` installs a stand-in ``torch_utils.persistence`` that does what the reference does on load
(``exec`` the embedded source), to show that a file is dangerous with the stock loader.
"""
import contextlib
import copyreg
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
from torch import nn

GENUINE_SRC = '''"""Model architectures and preconditioning schemes (test stand-in for training/networks.py)."""
import numpy as np
import torch
from torch_utils import persistence

@persistence.persistent_class
class EDMPrecond(torch.nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, sigma_min=0,
                 sigma_max=float('inf'), sigma_data=0.5, model_type='DhariwalUNet', **model_kwargs):
        super().__init__()
        self.sigma_data = sigma_data
'''

MALICIOUS_SRC = GENUINE_SRC + '''
open({path!r}, 'w').write('this file was written by code embedded in a pickle')
'''


def _reconstruct_persistent_obj(meta):
    """What ``torch_utils.persistence`` does on load: execute the embedded source, then restore the object."""
    module = types.ModuleType('_imported_module_for_test')
    exec(compile(meta['module_src'], '<embedded>', 'exec'), module.__dict__)  # noqa: S102 - the point of the demo
    obj = types.SimpleNamespace()
    obj.__dict__.update(meta['state'])
    return obj


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``."""


@contextlib.contextmanager
def reference_modules():
    """Temporarily provide ``torch_utils.persistence`` and ``dnnlib.util`` so pickle can name them."""
    mods = {'torch_utils': types.ModuleType('torch_utils'), 'torch_utils.persistence': types.ModuleType('p'),
            'dnnlib': types.ModuleType('dnnlib'), 'dnnlib.util': types.ModuleType('u')}
    mods['torch_utils.persistence']._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mods['torch_utils.persistence'].persistent_class = lambda cls: cls
    mods['torch_utils'].persistence = mods['torch_utils.persistence']
    mods['dnnlib.util'].EasyDict = EasyDict
    _reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'
    EasyDict.__module__ = 'dnnlib.util'
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def reference_loader(data: bytes):
    """Unpickle with the stand-in reference loader (EXECUTES embedded sources)."""
    with reference_modules():
        return pickle.loads(data)


class Persistent:

    def __init__(self, class_name, state, src):
        self.meta = dict(type='class', version=6, module_src=src, class_name=class_name, state=state)

    def __reduce__(self):
        return _reconstruct_persistent_obj, (self.meta, )


class _Container:
    """Pickles as the torch container class ``cls`` (NEWOBJ + BUILD) with children that are records."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    @property
    def __class__(self):  # pickle checks that NEWOBJ's class is the object's class
        return self.cls

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (self.cls, ), self.state


# kdm class -> the reference's class name
REFERENCE_NAMES = {'EDM2Precond': 'Precond', 'EDM2UNet': 'UNet'}


def to_reference(module: nn.Module, src: str, init_kwargs=None, class_name=None, half=False):
    """A module tree as persistent records (the top one gets ``init_kwargs``)."""
    state = dict(module.__dict__)
    state['_modules'] = OrderedDict((k, to_reference(v, src, half=half)) for k, v in module._modules.items())
    if half:
        state['_parameters'] = OrderedDict((k, None if v is None else nn.Parameter(v.detach().half(),
                                                                                    requires_grad=False))
                                           for k, v in module._parameters.items())
        state['_buffers'] = OrderedDict((k, None if v is None else v.half()) for k, v in module._buffers.items())
    if type(module) in (nn.ModuleDict, nn.ModuleList, nn.Sequential):
        return _Container(type(module), state)
    if 'skip_scale' in state:
        state['skip_scale'] = np.float64(state['skip_scale'])
    state['_init_args'] = ()
    state['_init_kwargs'] = dict(init_kwargs or {})
    name = class_name or REFERENCE_NAMES.get(type(module).__name__, type(module).__name__)
    return Persistent(name, state, src)


def edm_snapshot_bytes(ema_record, easydict=False, **extra) -> bytes:
    """An EDM ``network-snapshot-*.pkl`` (dict) or EDM2 snapshot (EasyDict) holding ``ema_record``."""
    loss = Persistent('EDMLoss', dict(P_mean=-1.2, P_std=1.2, sigma_data=0.5, _init_args=(), _init_kwargs={}),
                      '"""loss"""\nfrom torch_utils import persistence\n')
    data = dict(ema=ema_record, loss_fn=loss, augment_pipe=None,
                dataset_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path='x.zip', use_labels=False,
                                    xflip=False, cache=True, resolution=8, max_size=100), **extra)
    with reference_modules():
        return pickle.dumps(EasyDict(data) if easydict else data, protocol=4)
