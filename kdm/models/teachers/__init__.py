# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Teacher loaders, registered in ``TEACHERS``: each takes a local path and returns a frozen Denoiser
(``edm_pickle``, ``adm``, ``flow``, ``kdm``; see docs/teachers.md)."""
from .adm import load_adm, read_adm
from .common import TeacherLoadError
from .edm_pickle import PickleSecurityError, load_edm_pickle, load_edm_reference_stats, read_edm_pickle
from .flow import load_flow, ncsnpp_to_songunet, read_flow
from .kdm import build_from_checkpoint, load_kdm, read_kdm_checkpoint

__all__ = [
    'TeacherLoadError', 'PickleSecurityError', 'load_edm_pickle', 'load_edm_reference_stats', 'read_edm_pickle',
    'load_adm', 'read_adm', 'load_flow', 'read_flow', 'ncsnpp_to_songunet', 'load_kdm', 'read_kdm_checkpoint',
    'build_from_checkpoint'
]
