# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Networks, teachers, EMAs, distillers and teacher trainers; importing this registers all of them."""
from . import base, ema, networks, teachers, trainers, distillers  # noqa: F401,E401
