# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Teacher training is a method too: EDM, ADM/DDPM(-IP) and 1-rectified-flow trainers."""
from .ddpm import DDPMTrainer  # noqa: F401
from .edm import EDMTrainer  # noqa: F401
from .flow import RectifiedFlowTrainer  # noqa: F401
