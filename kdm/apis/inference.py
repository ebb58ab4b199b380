# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Load a trained model from its config and checkpoint, and generate seeded images with it.

    >>> from kdm.apis import load_model, generate
    >>> model = load_model('configs/methods/edm/toy_digits.py', 'work_dirs/toy_digits/iter_3000.pth')
    >>> images = generate(model, seeds=range(64))            # uint8 (64, 1, 16, 16)
"""
from typing import Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_state_dict

from kdm.engine.checkpoint import load_kdm_checkpoint
from kdm.models.base import BaseGenerativeModel
from kdm.registry import MODELS


def load_model(config: Union[str, Config], checkpoint: Optional[str] = None, device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> BaseGenerativeModel:
    """Build the model of ``config`` and load ``checkpoint`` (strictly, through the safe loader).

    Args:
        config: Config file or ``Config``; None-able ``checkpoint`` gives the freshly initialised model.
        checkpoint: A kdm checkpoint (``iter_N.pth``); its ``state_dict`` must match the model exactly.
        device: Where to put the model.
        cfg_options: Overrides merged into the config first (like ``--cfg-options``).

    Returns:
        The model in eval mode.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'kdm'))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        state = load_kdm_checkpoint(checkpoint)
        load_state_dict(model, state.get('state_dict', state), strict=True)
    return model.to(device).eval()


@torch.no_grad()
def generate(model: BaseGenerativeModel, seeds: Sequence[int], labels: Optional[Sequence[int]] = None,
             batch_size: int = 64, ema: Optional[str] = 'default') -> torch.Tensor:
    """uint8 images (N, C, H, W) for per-image ``seeds`` (EDM's protocol), optionally of given classes.

    Args:
        model: A kdm generative model.
        seeds: One seed per image.
        labels: Class per image (conditional models); -1 or None draws it from the seed.
        batch_size: Images per forward batch (the result does not depend on it).
        ema: EMA to sample with; ``'default'`` keeps the model's ``sample_ema``, None uses the raw network.
    """
    seeds = [int(s) for s in seeds]
    labels = [-1] * len(seeds) if labels is None else [int(c) for c in labels]
    if len(labels) != len(seeds):
        raise ValueError(f'{len(labels)} labels for {len(seeds)} seeds')
    previous = model.sample_ema
    if ema != 'default':
        model.sample_ema = ema
    out = []
    try:
        for i in range(0, len(seeds), batch_size):
            batch = dict(seed=torch.tensor(seeds[i:i + batch_size]), label=torch.tensor(labels[i:i + batch_size]))
            out.extend(s['fake'] for s in model.generate(batch))
    finally:
        model.sample_ema = previous
    return torch.stack(out)
