# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The Denoiser protocol (DESIGN.md section 2) that every teacher and every sampled student speaks.

A denoiser maps a noisy image ``x = x0 + sigma * eps`` (EDM's sigma-space, no scaling) to an estimate of ``x0``::

    denoiser(x, sigma, cond=None) -> x0_hat
      x:     float32 (N, C, H, W), data in [-1, 1]
      sigma: float32 (N,) or a scalar (python float or 0-d tensor)
      cond:  int64 (N,) class indices, or None; adapters convert to one-hot / embeddings

Attributes: ``sigma_min``, ``sigma_max``, ``sigma_data``, ``img_channels``, ``img_resolution``, ``label_dim``
and the method ``round_sigma(sigma)``, which snaps sigma to the levels a discrete teacher was trained on.
"""
import math
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from kdm.registry import MODELS


class Denoiser(nn.Module):
    """Base class of the Denoiser protocol.

    Subclasses implement :meth:`denoise`; :meth:`forward` normalises ``sigma`` to a float32 tensor of shape
    (N,) and ``cond`` to int64 class indices (a one-hot float matrix is accepted and converted back) before
    calling it, so every adapter sees the same input types.

    Args:
        img_channels (int): Number of image channels C.
        img_resolution (int): Image side length H = W.
        label_dim (int): Number of classes, 0 for unconditional models.
        sigma_min (float): Smallest noise level the model supports.
        sigma_max (float): Largest noise level the model supports.
        sigma_data (float): Standard deviation of the training data (EDM's sigma_data).
    """

    def __init__(self,
                 img_channels: int,
                 img_resolution: int,
                 label_dim: int = 0,
                 sigma_min: float = 0.0,
                 sigma_max: float = math.inf,
                 sigma_data: float = 0.5):
        super().__init__()
        self.img_channels = int(img_channels)
        self.img_resolution = int(img_resolution)
        self.label_dim = int(label_dim)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.sigma_data = float(sigma_data)

    def round_sigma(self, sigma: Union[float, Tensor]) -> Tensor:
        """Snap ``sigma`` to a level the model supports (identity for continuous models)."""
        return torch.as_tensor(sigma)

    def forward(self, x: Tensor, sigma: Union[float, Tensor], cond: Optional[Tensor] = None, **kwargs) -> Tensor:
        """Return the estimate of the clean image ``x0`` for ``x = x0 + sigma * eps``.

        Extra keyword arguments (e.g. EDM's ``augment_labels``) are passed on to :meth:`denoise`; adapters that take
        none are called with the three protocol arguments only.
        """
        sigma = torch.as_tensor(sigma, device=x.device)
        if sigma.ndim == 0 or sigma.numel() == 1:
            sigma = sigma.reshape(()).expand(x.shape[0])
        sigma = sigma.reshape(-1).to(torch.float32)
        if sigma.shape[0] != x.shape[0]:
            raise ValueError(f'sigma has {sigma.shape[0]} entries but x has batch size {x.shape[0]}')
        cond = self._normalise_cond(cond, x)
        if kwargs:
            return self.denoise(x.to(torch.float32), sigma, cond, **kwargs)
        return self.denoise(x.to(torch.float32), sigma, cond)

    def denoise(self, x: Tensor, sigma: Tensor, cond: Optional[Tensor]) -> Tensor:
        """Adapter body: ``x`` float32 (N, C, H, W), ``sigma`` float32 (N,), ``cond`` int64 (N,) or None.

        This is the abstract method of the protocol; every adapter overrides it.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement denoise(x, sigma, cond) (abstract)')

    def _normalise_cond(self, cond: Optional[Tensor], x: Tensor) -> Optional[Tensor]:
        if cond is None or self.label_dim == 0:
            if cond is not None and self.label_dim == 0:
                raise ValueError(f'{type(self).__name__} is unconditional (label_dim=0) but got class labels')
            return None
        cond = torch.as_tensor(cond, device=x.device)
        if cond.ndim == 2:  # one-hot / soft labels (N, label_dim) -> indices
            cond = cond.argmax(dim=1)
        cond = cond.reshape(-1).to(torch.int64)
        if cond.numel() and (cond.min() < 0 or cond.max() >= self.label_dim):
            raise ValueError(f'class labels must lie in [0, {self.label_dim}), got {cond.min()}..{cond.max()}')
        return cond


def one_hot(cond: Optional[Tensor], label_dim: int, dtype=torch.float32) -> Optional[Tensor]:
    """int64 class indices (N,) -> float one-hot (N, label_dim); None stays None."""
    if cond is None or label_dim == 0:
        return None
    return nn.functional.one_hot(cond, label_dim).to(dtype)


# ----------------------------------------------------------------------------------------------------------------------
# Adapters: native parameterisations -> the Denoiser protocol


def _bcast(sigma: Tensor, x: Tensor) -> Tensor:
    """sigma (N,) -> (N, 1, ..., 1) matching ``x.ndim`` (so (N, D) toy data works as well as images)."""
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


def _build(net):
    if isinstance(net, dict):
        from kdm.registry import MODELS
        return MODELS.build(dict(net))
    return net


def _infer(value, net, names, what):
    if value is not None:
        return int(value)
    for name in names:
        found = getattr(net, name, None)
        if isinstance(found, int):
            return found
    raise ValueError(f'pass {what}: the network has none of the attributes {names}')


@MODELS.register_module()
class DiscreteDenoiser(Denoiser):
    """A discrete-time eps / v / x0 network (ADM, guided-diffusion) as a sigma-space Denoiser.

    VP relation: ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps`` is the sigma-space ``x = x0 + sigma eps`` scaled by
    ``sqrt(abar)``, with ``sigma_t = sqrt(1 - abar_t) / sqrt(abar_t)``. So ``x_t = x / sqrt(1 + sigma^2)`` and

    * ``eps``: ``D = x - sigma eps_hat``
    * ``v``:   ``D = x / (1 + sigma^2) - sigma / sqrt(1 + sigma^2) v_hat``
    * ``x0``:  ``D = x0_hat``

    The timestep fed to ``net(x_t, timesteps, y=None)`` (``y`` only when class labels are given) is the index whose
    level sigma_t is nearest to sigma in log space (``timestep_mode='nearest'``, integer timesteps as the network was
    trained with) or the log-sigma interpolation between the two neighbouring levels (``'interp'``, fractional
    timesteps, k-diffusion's default). Indices go through ``diffusion.timestep_map`` so a respaced diffusion still
    calls the network with ORIGINAL indices. A 2C-channel output (learned sigma) is cut to its first C channels.

    Args:
        net (nn.Module | dict): The network ``net(x, timesteps, y=None)`` or its complete config.
        diffusion (GaussianDiffusion | dict): The discrete diffusion, or ``create_diffusion`` settings.
        parameterization (str): ``'eps'``, ``'v'`` or ``'x0'``.
        timestep_mode (str): ``'nearest'`` or ``'interp'``.
        img_channels (int, optional): Image channels (default: ``net.in_channels``).
        img_resolution (int, optional): Image size (default: ``net.image_size`` or ``net.img_resolution``).
        label_dim (int): Number of classes.
        sigma_data (float): Data standard deviation (for methods that need it).
    """

    PARAMETERIZATIONS = ('eps', 'v', 'x0')
    TIMESTEP_MODES = ('nearest', 'interp')

    def __init__(self,
                 net,
                 diffusion,
                 parameterization: str = 'eps',
                 timestep_mode: str = 'nearest',
                 img_channels: Optional[int] = None,
                 img_resolution: Optional[int] = None,
                 label_dim: int = 0,
                 sigma_data: float = 0.5):
        from .ddpm import GaussianDiffusion, create_diffusion
        if parameterization not in self.PARAMETERIZATIONS:
            raise ValueError(f'unknown parameterization {parameterization!r}; valid: {self.PARAMETERIZATIONS}')
        if timestep_mode not in self.TIMESTEP_MODES:
            raise ValueError(f'unknown timestep_mode {timestep_mode!r}; valid: {self.TIMESTEP_MODES}')
        net = _build(net)
        if isinstance(diffusion, dict):
            diffusion = create_diffusion(**diffusion)
        if not isinstance(diffusion, GaussianDiffusion):
            raise TypeError(f'diffusion must be a GaussianDiffusion or a dict, got {type(diffusion).__name__}')
        sigmas = torch.as_tensor(diffusion.sigmas, dtype=torch.float64)
        super().__init__(
            _infer(img_channels, net, ('in_channels', 'img_channels'), 'img_channels'),
            _infer(img_resolution, net, ('image_size', 'img_resolution'), 'img_resolution'),
            label_dim,
            sigma_min=float(sigmas[0]),
            sigma_max=float(sigmas[-1]),
            sigma_data=sigma_data)
        self.net = net
        self.diffusion = diffusion
        self.parameterization = parameterization
        self.timestep_mode = timestep_mode
        # non-persistent: the state dict holds only ``net.*``
        self.register_buffer('log_sigmas', sigmas.log().to(torch.float32), persistent=False)
        self.register_buffer('timestep_map', torch.as_tensor(diffusion.timestep_map, dtype=torch.int64),
                             persistent=False)

    @property
    def sigmas(self) -> Tensor:
        """The level of every step, ascending in t (float32)."""
        return self.log_sigmas.exp()

    def sigma_to_index(self, sigma: Tensor, quantize: bool = True) -> Tensor:
        """Index into ``diffusion`` of sigma: nearest level (int64), or a fractional index (log-sigma interpolation)."""
        log_sigma = torch.as_tensor(sigma, device=self.log_sigmas.device).to(torch.float32).log()
        if quantize:
            return (log_sigma.reshape(-1, 1) - self.log_sigmas.reshape(1, -1)).abs().argmin(dim=1).reshape(
                log_sigma.shape)
        ls = self.log_sigmas
        log_sigma = log_sigma.clamp(ls[0], ls[-1])
        high = torch.searchsorted(ls, log_sigma.reshape(-1).contiguous()).clamp(1, ls.shape[0] - 1)
        low = high - 1
        w = ((log_sigma.reshape(-1) - ls[low]) / (ls[high] - ls[low])).clamp(0, 1)
        return (low.to(torch.float32) + w).reshape(log_sigma.shape)

    def model_timesteps(self, index: Tensor) -> Tensor:
        """Network timesteps for (possibly fractional) indices of ``diffusion`` (original indices)."""
        if not index.is_floating_point():
            return self.diffusion.model_timesteps(index)
        low = index.floor().long().clamp(max=self.timestep_map.shape[0] - 1)
        high = (low + 1).clamp(max=self.timestep_map.shape[0] - 1)
        w = index - low.to(index.dtype)
        t = (1 - w) * self.timestep_map[low].to(index.dtype) + w * self.timestep_map[high].to(index.dtype)
        if self.diffusion.rescale_timesteps:
            t = t * (1000.0 / self.diffusion.original_num_steps)
        return t

    def round_sigma(self, sigma):
        """Snap sigma to the nearest trained level (in log space)."""
        sigma = torch.as_tensor(sigma)
        index = self.sigma_to_index(sigma, quantize=True)
        dtype = sigma.dtype if sigma.is_floating_point() else torch.float32
        return self.sigmas[index].to(sigma.device, dtype).reshape(sigma.shape)

    def call_net(self, x_t: Tensor, timesteps: Tensor, cond: Optional[Tensor]) -> Tensor:
        """The native network call, output cut to C channels."""
        out = self.net(x_t, timesteps) if cond is None else self.net(x_t, timesteps, y=cond)
        if out.shape[1] == 2 * x_t.shape[1]:
            out = out[:, :x_t.shape[1]]
        return out

    def denoise(self, x: Tensor, sigma: Tensor, cond: Optional[Tensor]) -> Tensor:
        index = self.sigma_to_index(sigma.to(self.log_sigmas.device), quantize=self.timestep_mode == 'nearest')
        timesteps = self.model_timesteps(index).to(x.device)
        s = _bcast(sigma.to(x.dtype), x)
        x_t = x / (1 + s**2).sqrt()
        out = self.call_net(x_t, timesteps, cond).to(x.dtype)
        if self.parameterization == 'eps':
            return x - s * out
        if self.parameterization == 'v':
            return x / (1 + s**2) - s / (1 + s**2).sqrt() * out
        return out


@MODELS.register_module()
class FlowDenoiser(Denoiser):
    """A rectified-flow velocity network as a sigma-space Denoiser (see ``kdm/diffusion/flow.py`` for conventions).

    ``s = 1 / (1 + sigma)``, ``x_t = s x``; ``t = s`` and ``D = x_t + (1 - t) v`` (rf, data at t = 1) or ``t = 1 - s``
    and ``D = x_t - t v`` (cud, data at t = 0). The network is called ``net(x_t, time_scale * t)`` plus
    ``class_labels=one_hot`` for a conditional model (EDM-family call). :meth:`velocity` is the native call that the
    flow solvers use.

    Args:
        net (nn.Module | dict): Velocity network or its complete config.
        convention (str): ``'rf'`` (RectifiedFlow / SlimFlow) or ``'cud'`` (Catch-Up Distillation).
        time_scale (float, optional): Factor on t fed to the network (999 rf, 1 cud by default).
        img_channels (int, optional): Image channels (default: ``net.in_channels`` or ``net.img_channels``).
        img_resolution (int, optional): Image size (default: ``net.img_resolution`` or ``net.image_size``).
        label_dim (int): Number of classes.
        eps (float, optional): Smallest flow distance to the noise end used by the reference samplers; sets
            ``sigma_max`` (rf: ``(1 - eps) / eps`` with 1e-3; cud samples from t = 1, so ``sigma_max = inf``).
        sigma_data (float): Data standard deviation.
    """

    def __init__(self,
                 net,
                 convention: str = 'rf',
                 time_scale: Optional[float] = None,
                 img_channels: Optional[int] = None,
                 img_resolution: Optional[int] = None,
                 label_dim: int = 0,
                 eps: Optional[float] = None,
                 sigma_data: float = 0.5):
        from .flow import DEFAULT_TIME_SCALE, check_convention
        check_convention(convention)
        net = _build(net)
        if eps is None:
            eps = 1e-3 if convention == 'rf' else 0.0
        sigma_max = (1 - eps) / eps if eps > 0 else math.inf
        super().__init__(
            _infer(img_channels, net, ('in_channels', 'img_channels'), 'img_channels'),
            _infer(img_resolution, net, ('img_resolution', 'image_size'), 'img_resolution'),
            label_dim,
            sigma_min=0.0,
            sigma_max=sigma_max,
            sigma_data=sigma_data)
        self.net = net
        self.convention = convention
        self.time_scale = DEFAULT_TIME_SCALE[convention] if time_scale is None else float(time_scale)

    def velocity(self, x_t: Tensor, t, cond: Optional[Tensor] = None) -> Tensor:
        """Native velocity ``v(x_t, t)``; ``t`` scalar or (N,) flow time; ``cond`` int64 (N,) or None."""
        t = torch.as_tensor(t, device=x_t.device, dtype=torch.float32)
        if t.numel() == 1:
            t = t.reshape(()).expand(x_t.shape[0])
        c = t.reshape(-1) * self.time_scale
        cond = self._normalise_cond(cond, x_t)
        if self.label_dim and cond is not None:
            return self.net(x_t, c, class_labels=one_hot(cond, self.label_dim, x_t.dtype))
        return self.net(x_t, c)

    def denoise(self, x: Tensor, sigma: Tensor, cond: Optional[Tensor]) -> Tensor:
        from .flow import velocity_to_x0
        s = 1 / (1 + _bcast(sigma.to(x.dtype), x))
        x_t = x * s
        t = (s if self.convention == 'rf' else 1 - s).reshape(-1)
        v = self.velocity(x_t, t, cond).to(x.dtype)
        return velocity_to_x0(x_t, t, v, self.convention)


# ----------------------------------------------------------------------------------------------------------------------
# Inverse views: a Denoiser as an eps-, v- or velocity-predictor (so discrete and flow solvers sample any model)


class _DiscreteView(nn.Module):

    def __init__(self, denoiser: Callable, diffusion, learned_var: Optional[float] = None):
        super().__init__()
        self.denoiser = denoiser
        self.learned_var = learned_var
        # the level of each ORIGINAL index (respaced diffusions know only their kept indices: interpolated between)
        self._map = torch.as_tensor(diffusion.timestep_map, dtype=torch.float64)
        self._log_sigmas = torch.as_tensor(diffusion.sigmas, dtype=torch.float64).log()
        self._rescale = 1000.0 / diffusion.original_num_steps if diffusion.rescale_timesteps else None

    def sigma_of(self, timesteps: Tensor) -> Tensor:
        t = torch.as_tensor(timesteps).to('cpu', torch.float64).reshape(-1)
        if self._rescale is not None:
            t = t / self._rescale
        idx = torch.searchsorted(self._map, t.contiguous()).clamp(1, max(self._map.shape[0] - 1, 1))
        lo = idx - 1
        if self._map.shape[0] == 1:
            return self._log_sigmas.exp().expand(t.shape[0])
        w = ((t - self._map[lo]) / (self._map[idx] - self._map[lo])).clamp(0, 1)
        return ((1 - w) * self._log_sigmas[lo] + w * self._log_sigmas[idx]).exp()

    def _parts(self, x_t, timesteps, y):
        sigma = self.sigma_of(timesteps).to(x_t.device, x_t.dtype)
        s = _bcast(sigma, x_t)
        x = x_t * (1 + s**2).sqrt()
        D = self.denoiser(x, sigma, y).to(x_t.dtype)
        return s, x, D

    def _finish(self, out):
        if self.learned_var is None:
            return out
        return torch.cat([out, torch.full_like(out, float(self.learned_var))], dim=1)


class EpsView(_DiscreteView):
    """A Denoiser as an ADM-style eps network ``net(x_t, timesteps, y=None) -> eps``.

    ``timesteps`` are ORIGINAL indices of ``diffusion`` (fractional ones are interpolated in log sigma).
    ``learned_var`` (e.g. 1.0 -> beta_t, -1.0 -> beta~_t) appends constant v channels so a learned-range diffusion can
    sample it.
    """

    def forward(self, x_t: Tensor, timesteps: Tensor, y: Optional[Tensor] = None) -> Tensor:
        s, x, D = self._parts(x_t, timesteps, y)
        return self._finish((x - D) / s)


class VView(_DiscreteView):
    """A Denoiser as a v-prediction network ``net(x_t, timesteps, y=None) -> v = sqrt(abar) eps - sqrt(1-abar) x0``."""

    def forward(self, x_t: Tensor, timesteps: Tensor, y: Optional[Tensor] = None) -> Tensor:
        s, x, D = self._parts(x_t, timesteps, y)
        eps = (x - D) / s
        return self._finish((eps - s * D) / (1 + s**2).sqrt())


class VelocityView(nn.Module):
    """A Denoiser as a flow velocity ``v(x_t, t, cond=None)``.

    rf: ``sigma = (1 - t) / t``, ``x = x_t / t``, ``v = (D - x_t) / (1 - t)``;
    cud: ``sigma = t / (1 - t)``, ``x = x_t / (1 - t)``, ``v = (x_t - D) / t``.
    At the data end (sigma = 0) this is a 0/0 limit, so times closer to it than ``sigma_floor`` are evaluated at
    ``sigma = sigma_floor`` (default: the denoiser's ``sigma_min`` if positive, else 1e-4); adaptive solvers such as
    RK45 do evaluate the end point. The noise end (sigma = inf) is not representable: start flows at t = eps.
    ``time_scale`` divides the incoming time, so the view can also stand in for a raw network inside
    :class:`FlowDenoiser`; ``class_labels`` (one-hot) is accepted as an alternative to ``cond``.
    """

    def __init__(self, denoiser: Callable, convention: str = 'rf', time_scale: float = 1.0,
                 sigma_floor: Optional[float] = None):
        super().__init__()
        from .flow import check_convention
        self.denoiser = denoiser
        self.convention = check_convention(convention)
        self.time_scale = float(time_scale)
        if sigma_floor is None:
            sigma_floor = float(getattr(denoiser, 'sigma_min', 0.0) or 0.0) or 1e-4
        self.sigma_floor = float(sigma_floor)

    def forward(self, x_t: Tensor, t, cond: Optional[Tensor] = None, class_labels: Optional[Tensor] = None) -> Tensor:
        from .flow import flow_time_to_sigma, x0_to_velocity
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype) / self.time_scale
        if t.numel() == 1:
            t = t.reshape(()).expand(x_t.shape[0])
        t = t.reshape(-1)
        if self.convention == 'rf':
            t = t.clamp(max=1 / (1 + self.sigma_floor))
        else:
            t = t.clamp(min=self.sigma_floor / (1 + self.sigma_floor))
        sigma = flow_time_to_sigma(t, self.convention)
        scale = _bcast(t if self.convention == 'rf' else 1 - t, x_t)
        D = self.denoiser(x_t / scale, sigma, cond if cond is not None else class_labels).to(x_t.dtype)
        return x0_to_velocity(x_t, t, D, self.convention)


def as_eps_model(denoiser: Callable, diffusion, learned_var: Optional[float] = None) -> EpsView:
    """:class:`EpsView` of a Denoiser (for ``ddpm``/``ddim`` or a :class:`DiscreteDenoiser` round trip)."""
    return EpsView(denoiser, diffusion, learned_var)


def as_v_model(denoiser: Callable, diffusion, learned_var: Optional[float] = None) -> VView:
    """:class:`VView` of a Denoiser."""
    return VView(denoiser, diffusion, learned_var)


def as_velocity(denoiser: Callable, convention: str = 'rf', time_scale: float = 1.0,
                sigma_floor: Optional[float] = None) -> VelocityView:
    """:class:`VelocityView` of a Denoiser (for the flow solvers or a :class:`FlowDenoiser` round trip)."""
    return VelocityView(denoiser, convention, time_scale, sigma_floor)
