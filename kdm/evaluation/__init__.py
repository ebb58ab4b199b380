# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
