# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Base classes of every trainable kdm model (DESIGN.md section 5).

``BaseGenerativeModel`` owns what teacher trainers and distillers share: student-only EMAs, ``sample()`` and the
val/test steps that turn per-image seeds into uint8 images. ``BaseDistiller`` adds the frozen teacher, which is
kept *outside* the module tree: it is not in ``state_dict()`` (checkpoints hold only what trains; the teacher is
rebuilt from its file on resume), not in ``parameters()`` (no optimizer sees it), not wrapped by DDP and never
switched to train mode (EDM teachers have dropout), yet it moves with ``.to()`` / ``.cuda()``.
"""
from abc import abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.runner.checkpoint import get_state_dict
from torch import Tensor, nn

from kdm.datasets.base import float_to_uint8
from kdm.registry import MODELS, TEACHERS


def unwrap(module: nn.Module) -> nn.Module:
    """Return the network inside a (MM)DistributedDataParallel wrapper, or the module itself."""
    return module.module if is_model_wrapper(module) else module


# Float images in [-1, 1] -> uint8 in [0, 255] as EDM's ``generate.py`` converts them (one definition, shared with the
# synthetic datasets so that stored teacher samples and generated samples quantise identically).
to_uint8 = float_to_uint8


class StackedRandomGenerator:
    """One ``torch.Generator`` per image (EDM's ``StackedRandomGenerator``): image ``i`` draws all its random
    numbers from a generator seeded with ``seeds[i]``, so a sample does not depend on the batch it is in nor on
    the number of processes. Stochastic samplers take :meth:`randn_like` as their noise source.
    """

    def __init__(self, seeds: Sequence[int], device: Union[str, torch.device] = 'cpu'):
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(int(s)) for s in seeds]

    def randn(self, shape: Sequence[int], dtype=torch.float32) -> Tensor:
        """(N, *shape) standard normal numbers, row i from generator i."""
        return torch.stack([torch.randn(tuple(shape), generator=g, device=self.device, dtype=dtype)
                            for g in self.generators])

    def randn_like(self, x: Tensor) -> Tensor:
        """Like ``torch.randn_like`` for a batch of N = len(seeds) rows."""
        if x.shape[0] != len(self.generators):
            raise ValueError(f'batch of {x.shape[0]} but {len(self.generators)} per-image generators')
        return self.randn(x.shape[1:], dtype=x.dtype).to(x.device)

    def randint(self, high: int) -> Tensor:
        """(N,) integers in [0, high), row i from generator i."""
        return torch.stack([torch.randint(high, (), generator=g, device=self.device) for g in self.generators])


def seeded_noise(seeds: Sequence[int], shape: Sequence[int], label_dim: int = 0,
                 labels: Optional[Tensor] = None, device: Union[str, torch.device] = 'cpu',
                 rng: Optional[StackedRandomGenerator] = None) -> Tuple[Tensor, Tensor]:
    """Per-image seeded initial noise and class labels (EDM's protocol).

    Image ``i`` draws ``randn(shape)`` from its own generator seeded with ``seeds[i]``, then, if the model is
    conditional and ``labels[i] < 0`` (or no labels are given), ``randint(label_dim)`` from the same generator.
    Pass ``rng`` to keep drawing (e.g. ancestral-sampling noise) from the same per-image generators afterwards.

    Returns:
        (noise (N, *shape) float32, labels (N,) int64; -1 for unconditional models)
    """
    rng = rng or StackedRandomGenerator(seeds, device)
    noise = rng.randn(shape)
    drawn = torch.full((len(seeds), ), -1, dtype=torch.int64, device=rng.device)
    if label_dim > 0:
        random_labels = rng.randint(label_dim)
        given = None if labels is None else torch.as_tensor(labels, device=rng.device).reshape(-1).long()
        drawn = random_labels if given is None else torch.where(given < 0, random_labels, given)
    return noise, drawn


def build_emas(ema: Optional[dict], net: nn.Module) -> nn.ModuleDict:
    """Build the EMAs of ``net`` from a config.

    ``ema=dict(type='HalfLifeEMA', ...)`` gives one EMA named ``'ema'``; a dict of named configs
    (``dict(ema_9999=dict(type='ConstantEMA', momentum=1e-4), ema_999=dict(...))``) gives several.
    """
    if ema is None:
        return nn.ModuleDict()
    named = {'ema': ema} if 'type' in ema else dict(ema)
    out = nn.ModuleDict()
    for name, cfg in named.items():
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise TypeError(f"EMA '{name}' must be a config dict with a 'type' key "
                            "(ConstantEMA, HalfLifeEMA or PowerEMA), got {cfg!r}")
        out[name] = MODELS.build(cfg, default_args=dict(model=net))
    return out


class BaseGenerativeModel(BaseModel):
    """A model that trains a network and generates images with it (or with one of its EMAs).

    Subclasses set, in ``__init__``: the trainable networks as attributes, ``self.emas`` (see :func:`build_emas`),
    ``self.student_name`` (the attribute of the network that is sampled and averaged), ``self.img_shape``
    ((C, H, W) of the generated images) and ``self.label_dim``; they implement ``train_step`` and :meth:`sample`.

    Args:
        sample_ema (str, optional): EMA used by ``val_step``/``test_step``; None samples the raw network.
        data_preprocessor (dict, optional): MMEngine data preprocessor; the default only moves data to the device.
        init_cfg (dict, optional): MMEngine weight-initialisation config.
    """

    student_name = 'net'

    def __init__(self, sample_ema: Optional[str] = 'ema', data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.sample_ema = sample_ema
        self.emas = nn.ModuleDict()
        self.img_shape: Tuple[int, ...] = ()
        self.label_dim = 0

    # ---------------------------------------------------------------- networks and EMAs
    def get_net(self, ema: Optional[str] = None) -> nn.Module:
        """The sampled network: its EMA ``ema``, or the raw (unwrapped) network when ``ema`` is None."""
        if ema is None:
            return unwrap(getattr(self, self.student_name))
        if ema not in self.emas:
            raise KeyError(f"unknown EMA '{ema}'; this model has {sorted(self.emas.keys()) or 'no EMA'} "
                           "(use None for the raw network)")
        return self.emas[ema].module

    def update_emas(self) -> None:
        """Update every EMA from the current (unwrapped) student network; call after each optimiser step."""
        net = unwrap(getattr(self, self.student_name))
        for ema in self.emas.values():
            ema.update_parameters(net)

    # ---------------------------------------------------------------- generation
    @abstractmethod
    def sample(self, noise: Tensor, cond: Optional[Tensor] = None, ema: Optional[str] = 'ema',
               randn_like=None) -> Tensor:
        """Generate float images in [-1, 1] from unit Gaussian ``noise`` (N, C, H, W).

        Abstract: every method defines how its network samples (solver, number of steps, noise scaling).
        Stochastic samplers draw their extra noise with ``randn_like`` (a per-image seeded source given by
        :meth:`generate`; ``torch.randn_like`` when None). Called in eval mode (``generate`` and the
        sample-grid hook switch the model to eval).
        """

    def as_denoiser(self, ema: Optional[str] = 'ema') -> nn.Module:
        """A Denoiser view of the (EMA) network, for models whose network is one (so it can teach another
        student through the ``kdm`` teacher loader). Models whose student is not a denoiser do not have one."""
        raise TypeError(f'{type(self).__name__} trains a network that is not a denoiser; '
                        'it cannot be loaded as a teacher')

    @torch.no_grad()
    def sample_seeds(self, seeds: Sequence[int], labels: Optional[Tensor] = None, ema: Optional[str] = 'ema',
                     device: Union[str, torch.device] = 'cpu') -> Tuple[Tensor, Tensor]:
        """Per-image seeded sampling in eval mode (see :func:`seeded_noise`): uint8 images (N, C, H, W) on the CPU
        and the (N,) labels used (-1 for unconditional models). Shared by :meth:`generate` and the sample grid."""
        rng = StackedRandomGenerator(seeds, device)
        noise, labels = seeded_noise(seeds, self.img_shape, self.label_dim, labels, rng=rng)
        cond = labels if self.label_dim > 0 else None
        was_training = self.training
        self.eval()
        try:
            images = to_uint8(self.sample(noise, cond, ema=ema, randn_like=rng.randn_like)).cpu()
        finally:
            self.train(was_training)
        return images, labels

    @torch.no_grad()
    def generate(self, data: dict) -> List[dict]:
        """Seeds -> samples: ``data = dict(seed=(N,), label=(N,))`` -> N dicts ``dict(fake, seed, label)``."""
        data = self.data_preprocessor(data, False)
        seeds = data['seed'].tolist()
        images, labels = self.sample_seeds(seeds, data.get('label'), self.sample_ema, data['seed'].device)
        return [dict(fake=images[i], seed=int(seeds[i]), label=int(labels[i])) for i in range(len(seeds))]

    def val_step(self, data: dict) -> List[dict]:
        """Generate uint8 images for the validation metrics (see :meth:`generate`)."""
        return self.generate(data)

    def test_step(self, data: dict) -> List[dict]:
        """Generate uint8 images for the test metrics (see :meth:`generate`)."""
        return self.generate(data)

    def forward(self, inputs=None, data_samples=None, mode: str = 'tensor'):
        raise RuntimeError(f'{type(self).__name__} is driven through train_step / val_step / test_step / sample; '
                           'call one of those instead of forward()')

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self, destination=None, prefix: str = '', keep_vars: bool = False) -> Dict[str, Tensor]:
        """State dict with DDP wrappers of sub-networks removed, so checkpoints load with any world size."""
        return get_state_dict(self, destination, prefix, keep_vars)


class BaseDistiller(BaseGenerativeModel):
    """A generative model trained against a frozen teacher (DESIGN.md section 5).

    Args:
        teacher (dict | nn.Module): A ``TEACHERS`` config (e.g. ``dict(type='edm_pickle', path=...)``) or a
            built Denoiser. It is frozen (eval mode, no gradients) and kept out of the module tree.
        sample_ema, data_preprocessor, init_cfg: see :class:`BaseGenerativeModel`.
    """

    student_name = 'student'

    def __init__(self, teacher: Union[dict, nn.Module], sample_ema: Optional[str] = 'ema',
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(sample_ema=sample_ema, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        teacher = TEACHERS.build(teacher) if isinstance(teacher, dict) else teacher
        if not isinstance(teacher, nn.Module):
            raise TypeError(f'teacher must build into an nn.Module, got {type(teacher).__name__}')
        teacher.eval().requires_grad_(False)
        object.__setattr__(self, '_teacher', teacher)  # not a registered child: see the module docstring

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (a Denoiser)."""
        return self._teacher

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self._teacher._apply(fn)  # .to() / .cuda() / .float() move the teacher with the model
        return self
