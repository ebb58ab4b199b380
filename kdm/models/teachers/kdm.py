# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""kdm's own checkpoints as teachers (so a trained student can teach the next one).

A kdm checkpoint is a dict with ``state_dict`` and ``meta['cfg']`` (the MMEngine pretty-text config that built
the model): what ``tools/train.py`` writes, and what ``tools/convert.py`` writes for a foreign teacher. The loader
rebuilds ``cfg.model`` through ``MODELS``, loads the state dict strictly and returns the model itself when it is a
Denoiser (converted teachers), else ``model.as_denoiser(ema)`` (trained models, see ``kdm/models/base.py``).

Note: a distiller's config builds its own teacher, so rebuilding a distilled student also loads that teacher's file
(override its path with ``cfg_options={'model.teacher.path': ...}`` if it moved).
"""
from typing import Optional

from mmengine.config import Config
from torch import nn

from kdm.diffusion import Denoiser
from kdm.registry import MODELS, TEACHERS
from .common import TeacherLoadError, check_state_dict, freeze, require_file

__all__ = ['read_kdm_checkpoint', 'build_from_checkpoint', 'load_kdm']

def read_kdm_checkpoint(path: str) -> dict:
    """Load a kdm / MMEngine checkpoint safely (``weights_only=True`` with MMEngine's own globals only)."""
    path = require_file(path, 'kdm')
    from kdm.engine.checkpoint import load_kdm_checkpoint  # the one reader of kdm checkpoints (lazy: engine is higher)
    try:
        ckpt = load_kdm_checkpoint(path, map_location='cpu')
    except RuntimeError as e:
        raise TeacherLoadError(str(e)) from e
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
        raise TeacherLoadError(f'{path} is not a kdm checkpoint (no state_dict); foreign teachers are read by the '
                               'edm_pickle / adm / flow loaders or converted with tools/convert.py')
    return ckpt


def build_from_checkpoint(ckpt: dict, path: str = '<checkpoint>', cfg_options: Optional[dict] = None) -> nn.Module:
    """Rebuild ``meta['cfg'].model`` and load ``ckpt['state_dict']`` strictly."""
    cfg_text = (ckpt.get('meta') or {}).get('cfg')
    if not cfg_text:
        raise TeacherLoadError(f'{path} has no config in meta["cfg"], so kdm cannot rebuild its model')
    cfg = Config.fromstring(cfg_text, file_format='.py') if isinstance(cfg_text, str) else Config(cfg_text)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise TeacherLoadError(f'{path}: the stored config has no "model"')
    model = MODELS.build(cfg.model)
    state_dict = ckpt['state_dict']
    check_state_dict(model, state_dict, path)
    model.load_state_dict(state_dict, strict=True)
    return model


@TEACHERS.register_module(name='kdm')
def load_kdm(path: str, ema: Optional[str] = 'ema', cfg_options: Optional[dict] = None) -> nn.Module:
    """Teacher loader for kdm checkpoints.

    Args:
        path (str): A checkpoint from ``tools/train.py`` or ``tools/convert.py``.
        ema (str, optional): Which EMA of a trained model teaches (None: the raw network).
        cfg_options (dict, optional): Overrides merged into the stored config before building.

    Returns:
        The frozen Denoiser.
    """
    ckpt = read_kdm_checkpoint(path)
    model = build_from_checkpoint(ckpt, path, cfg_options)
    if isinstance(model, Denoiser):
        return freeze(model)
    if not hasattr(model, 'as_denoiser'):
        raise TeacherLoadError(f'{path}: {type(model).__name__} is neither a Denoiser nor a kdm generative model')
    return freeze(model.as_denoiser(ema=ema))
