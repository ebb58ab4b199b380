# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Plain networks (no diffusion logic), registered in ``MODELS`` with the references' constructor arguments and
state-dict keys. Call conventions are in ``docs/architecture.md``."""
from .adm_unet import ADMUNet
from .dhariwal_unet import DhariwalUNet
from .edm2_unet import EDM2_PRESETS, EDM2Precond, EDM2UNet
from .song_unet import SongUNet
from .toy import ToyMLP, ToyUNet

__all__ = ['ADMUNet', 'DhariwalUNet', 'EDM2_PRESETS', 'EDM2Precond', 'EDM2UNet', 'SongUNet', 'ToyMLP', 'ToyUNet']
