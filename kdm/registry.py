# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The registries of kdm (DESIGN.md section 3).

Every registry is a child of the matching MMEngine root (so MMEngine's own components stay reachable from a
config with ``default_scope='kdm'``) or, for kdm-only concepts (teachers, solvers, schedules, losses), a root
registry of its own. ``locations`` lets a config build a component without importing anything by hand: the
first lookup imports the listed package, whose ``__init__`` imports every module that registers something.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

__all__ = [
    'MODELS', 'TEACHERS', 'SOLVERS', 'SCHEDULES', 'LOSSES', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'METRICS',
    'HOOKS', 'LOOPS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'MODEL_WRAPPERS', 'RUNNERS'
]

# Networks, denoisers (preconditioners), EMAs, distillers and teacher trainers.
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['kdm.models', 'kdm.diffusion'])
# Teacher loaders: each returns a Denoiser (kdm/diffusion/denoiser.py) built from a local file.
TEACHERS = Registry('teacher', scope='kdm', locations=['kdm.models.teachers'])
# Sampling solvers: pure functions ``solver(denoiser, x, sigmas, cond=None, callback=None, **knobs) -> x``.
SOLVERS = Registry('solver', scope='kdm', locations=['kdm.solvers'])
# Step schedules: functions returning a decreasing sigma (or flow-time) sequence.
SCHEDULES = Registry('schedule', scope='kdm', locations=['kdm.diffusion.schedules'])
# Training losses written as small callables (EDMLoss, VPLoss, ...).
LOSSES = Registry('loss', scope='kdm', locations=['kdm.diffusion'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['kdm.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['kdm.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['kdm.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['kdm.evaluation'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['kdm.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['kdm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, locations=['kdm.engine'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['kdm.engine'])
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['kdm.engine'])
