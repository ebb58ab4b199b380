# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""kdm: knowledge distillation of diffusion and flow models on MMEngine."""
__version__ = '0.1.0'
