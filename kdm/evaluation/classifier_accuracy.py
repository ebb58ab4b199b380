# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Class accuracy of conditional samples under a classifier detector (the quickstart's digits classifier)."""
from typing import Dict

import torch
from mmengine.dist import all_reduce, get_dist_info, is_main_process
from torch import Tensor

from kdm.registry import METRICS
from .base import DetectorMetric, _finish


@METRICS.register_module()
class ClassifierAccuracy(DetectorMetric):
    """Fraction of generated samples whose ``argmax(logits)`` equals the class they were generated for (key
    ``accuracy``). Needs conditional samples (``label >= 0``); counts are summed over ranks.

    Args:
        name (str): Key of the value. **kwargs: see :class:`~kdm.evaluation.base.DetectorMetric`
            (``detector=dict(type='DigitsClassifier', weights=...)``).
    """

    features = ('logits',)

    def __init__(self, name: str = 'accuracy', **kwargs):
        super().__init__(**kwargs)
        self.name = name
        self.correct = self.total = 0

    def accumulate(self, feats: Dict[str, Tensor], seeds: Tensor, labels: Tensor) -> None:
        if (labels < 0).any():
            raise ValueError(f'{type(self).__name__} needs conditional samples with their class (label >= 0); got '
                             'label -1 (an unconditional model, or SeedDataset(label=-1) on a model that does not '
                             'report the drawn class). Use SeedDataset(labels_cycle=NUM_CLASSES).')
        pred = feats['logits'].argmax(1).cpu()
        self.correct += int((pred == labels).sum())
        self.total += int(labels.numel())

    def evaluate(self, size: int) -> dict:
        counts = torch.tensor([float(self.correct), float(self.total)], dtype=torch.float64)
        if get_dist_info()[1] > 1:
            all_reduce(counts, op='sum')
        correct, total = int(counts[0]), int(counts[1])
        if total > size:
            raise RuntimeError(f'{type(self).__name__}: {total} samples for a dataset of {size} (padded sampler; use '
                               'round_up=False)')
        metrics = None
        if is_main_process():
            if total == 0:
                raise RuntimeError(f'{type(self).__name__}: no samples were processed')
            metrics = {self.name: correct / total}
            self.protocol = dict(self._base_protocol(total), feature='argmax(logits) vs sample label')
        self.correct = self.total = 0
        return _finish(metrics, self.prefix)
