# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Use a trained kdm model from Python: ``load_model`` and ``generate``."""
from .inference import generate, load_model  # noqa: F401
