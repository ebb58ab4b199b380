"""Every config under configs/ loads, names registered types, passes only constructor arguments, and (where it
needs no teacher file) builds its model on the meta device."""
import inspect
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from kdm.registry import DATASETS, LOSSES, MODELS, TEACHERS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)


def _lookup(type_name):
    for registry in (MODELS, TEACHERS, LOSSES, DATASETS):
        obj = registry.get(type_name)
        # Registry.get falls back to importing the name ('kdm' -> the package): only registered callables count.
        if obj is not None and not inspect.ismodule(obj):
            return registry, obj
    return None, None


def _check(cfg, where, found_teacher):
    """Recursively check every dict with a 'type': registered, and its keys are constructor arguments."""
    if isinstance(cfg, dict):
        if isinstance(cfg.get('type'), str):
            registry, obj = _lookup(cfg['type'])
            assert obj is not None, f"{where}: type '{cfg['type']}' is not registered"
            if registry is TEACHERS:
                found_teacher.append(where)
            fn = obj.__init__ if inspect.isclass(obj) else obj
            params = inspect.signature(fn).parameters
            if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
                unknown = set(cfg) - set(params) - {'type', '_scope_'}
                assert not unknown, f'{where} ({cfg["type"]}): keys {unknown} are not constructor arguments'
        for k, v in cfg.items():
            _check(v, f'{where}.{k}', found_teacher)
    elif isinstance(cfg, (list, tuple)):
        for i, v in enumerate(cfg):
            _check(v, f'{where}[{i}]', found_teacher)


def test_there_are_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize('path', CONFIGS, ids=[str(p.relative_to(ROOT / 'configs')) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.get('default_scope', 'kdm'))
    assert cfg.get('runner_type') == 'KDMRunner' and cfg.get('default_scope') == 'kdm'
    teachers = []
    _check(cfg.model, 'model', teachers)
    if 'train_dataloader' in cfg:
        _check(cfg.train_dataloader.dataset, 'train_dataloader.dataset', [])
    if teachers:  # distillers need their teacher file: covered by each method's own tests
        return
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
