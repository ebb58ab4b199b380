# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Runner, loops, hooks, launcher, checkpoint I/O and optimizer construction (the engine knows no method)."""
from . import checkpoint  # noqa: F401
from .checkpoint import CheckpointError, atomic_torch_save, atomic_write, load_kdm_checkpoint  # noqa: F401
from .hooks import NanGuardHook, NonFiniteLossError, SampleGridHook  # noqa: F401
from .launcher import KDMDistributedDataParallel, KDMSeparateDistributedDataParallel, init_dist, shutdown_dist  # noqa: F401
from .loops import KDMIterBasedTrainLoop, reseed  # noqa: F401
from .optimizers import MultiNetOptimWrapperConstructor  # noqa: F401
from .runner import KDMRunner  # noqa: F401

checkpoint.install()
