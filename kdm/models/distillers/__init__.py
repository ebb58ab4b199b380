# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
from .dkdm import DKDM  # noqa: F401
