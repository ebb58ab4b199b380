# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""One optimizer per named sub-network (MMEngine has no multi-optimizer constructor)."""
import copy

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from torch import nn

from kdm.models.base import unwrap
from kdm.registry import OPTIM_WRAPPER_CONSTRUCTORS


def trainable_children(model: nn.Module) -> list:
    """Names of the direct children of ``model`` that have trainable parameters."""
    return [name for name, child in model.named_children()
            if any(p.requires_grad for p in unwrap(child).parameters())]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MultiNetOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with one ``OptimWrapper`` per named sub-network of the model.

    Config::

        optim_wrapper = dict(
            constructor='MultiNetOptimWrapperConstructor',
            generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-5, betas=(0, 0.999))),
            fake_score=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-5), clip_grad=None))

    Each key is the attribute name of a trainable sub-network; its value is a normal MMEngine optim-wrapper
    config (``type`` defaults to ``OptimWrapper``; ``paramwise_cfg`` inside it applies to that network), built
    by MMEngine's ``DefaultOptimWrapperConstructor`` over that network's parameters only. ``train_step``
    receives the ``OptimWrapperDict`` and steps each network explicitly.

    Args:
        optim_wrapper_cfg (dict): ``{net_name: optim_wrapper config}``.
        paramwise_cfg (dict, optional): Must be None; give ``paramwise_cfg`` per network instead.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        if paramwise_cfg is not None:
            raise ValueError('MultiNetOptimWrapperConstructor: put paramwise_cfg inside each network\'s entry, '
                             'e.g. optim_wrapper.student.paramwise_cfg')
        if not optim_wrapper_cfg:
            raise ValueError('MultiNetOptimWrapperConstructor needs at least one network entry, '
                             "e.g. student=dict(optimizer=dict(type='Adam', lr=1e-4))")
        for name, cfg in optim_wrapper_cfg.items():
            if not isinstance(cfg, dict) or 'optimizer' not in cfg:
                raise ValueError(f"optim_wrapper.{name} must be an optim-wrapper config with an 'optimizer' key, "
                                 f'got {cfg!r}')
        self.optim_wrapper_cfg = copy.deepcopy(dict(optim_wrapper_cfg))

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = unwrap(model)
        valid = trainable_children(model)
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            if name not in valid:
                raise KeyError(f"optim_wrapper.{name}: {type(model).__name__} has no trainable sub-network "
                               f"'{name}'; its trainable sub-networks are {valid}")
            cfg = copy.deepcopy(dict(cfg))
            cfg.setdefault('type', 'OptimWrapper')
            paramwise = cfg.pop('paramwise_cfg', None)
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(unwrap(getattr(model, name)))
        return OptimWrapperDict(**wrappers)
