# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Diffusion and flow mathematics: no nn.Module training logic lives here."""
from .denoiser import Denoiser, one_hot  # noqa: F401
