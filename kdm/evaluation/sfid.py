# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""sFID (Nash et al. 2021) as computed by ADM's evaluator, which DKDM reports.

Features: ``Mixed_6d.branch1x1`` (TF ``mixed_6/conv:0``, 17 x 17 x 192 after ReLU), first 7 channels, flattened in
TF's NHWC order -> 2023-d (``FIDInceptionV3`` output ``spatial``). Same Fréchet formula as FID; the reference
statistics are ``mu_s``/``sigma_s`` of an ADM reference batch or of a kdm reference file (``tools/fid_ref.py``),
or are computed from the ``arr_0`` images / a dataset.
"""
from kdm.registry import METRICS
from .fid import FID


@METRICS.register_module()
class SFID(FID):
    """Spatial FID (ADM evaluator): :class:`~kdm.evaluation.fid.FID` on the 2023-d ``spatial`` features against
    ``mu_s``/``sigma_s``. Arguments as for FID; ``name`` defaults to ``'sFID'``."""

    features = ('spatial',)
    stat_keys = (('mu_s', 'sigma_s'),)

    def __init__(self, name: str = 'sFID', **kwargs):
        super().__init__(name=name, **kwargs)
