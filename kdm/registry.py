# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The registries of kdm (DESIGN.md section 3).

Every registry is a child of the matching MMEngine root (so MMEngine's own components stay reachable from a
config with ``default_scope='kdm'``) or, for kdm-only concepts (teachers, solvers, schedules, losses), a root
registry of its own. ``locations`` lets a config build a component without importing anything by hand: the
first lookup imports the listed package, whose ``__init__`` imports every module that registers something.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
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
    'HOOKS', 'LOOPS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'MODEL_WRAPPERS', 'RUNNERS', 'EVALUATOR', 'LOG_PROCESSORS',
    'OPTIM_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS', 'VISBACKENDS', 'VISUALIZERS', 'WEIGHT_INITIALIZERS'
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

# Children without kdm components of their own: they exist so that building MMEngine's components under
# ``default_scope='kdm'`` finds a kdm scope in every registry tree (no fallback warnings).
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['kdm.evaluation'])
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS)
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS)
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS)
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS)
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS)
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS)
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS)
