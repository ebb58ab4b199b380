# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Metrics of generated images (DESIGN.md section 7); importing this registers all of them.

Every metric is an ``mmengine.evaluator.BaseMetric`` in ``METRICS``: :class:`FID`, :class:`SFID`,
:class:`InceptionScore`, :class:`KID`, :class:`PRDC`, :class:`PrecisionRecall`, :class:`ClassifierAccuracy`.
Detectors (``MODELS``): :class:`FIDInceptionV3` (TF Inception port, local weights only), :class:`DigitsClassifier`.
Functions: :func:`frechet_distance`, :func:`inception_score`, :func:`compute_kid`, :func:`compute_prdc`,
:func:`compute_precision_recall`, :func:`load_reference`, :func:`save_reference`.
"""
from .base import DetectorMetric, FeatureStats, GatherMetric, StatsMetric
from .classifier_accuracy import ClassifierAccuracy
from .detectors import DigitsClassifier, FIDInceptionV3, get_detector
from .fid import FID, fid_from_features, frechet_distance
from .inception_score import InceptionScore, inception_score
from .kid import KID, compute_kid
from .prdc import PRDC, PrecisionRecall, compute_precision_recall, compute_prdc
from .ref_stats import load_reference, save_reference
from .sfid import SFID

__all__ = [
    'DetectorMetric', 'FeatureStats', 'GatherMetric', 'StatsMetric', 'ClassifierAccuracy', 'DigitsClassifier',
    'FIDInceptionV3', 'get_detector', 'FID', 'SFID', 'fid_from_features', 'frechet_distance', 'InceptionScore',
    'inception_score', 'KID', 'compute_kid', 'PRDC', 'PrecisionRecall', 'compute_precision_recall', 'compute_prdc',
    'load_reference', 'save_reference'
]
