"""DDPM ancestral and DDIM samplers on respaced discrete diffusions (spec dkdm_adm.md 1.6)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from kdm.diffusion import DiscreteDenoiser, EDMPrecond, as_eps_model, as_v_model, create_diffusion
from kdm.diffusion.ddpm import space_timesteps
from kdm.solvers import ddim, ddpm, respaced_timesteps


class ConstV(nn.Module):
    """eps = 0.1 x, v = const: learned-range output [eps, v]; records the timesteps it is called with."""

    def __init__(self, v=1.0, C=3):
        super().__init__()
        self.v, self.in_channels, self.image_size, self.seen = v, C, 4, []

    def forward(self, x, timesteps, y=None):
        self.seen.append(timesteps.clone())
        return torch.cat([0.1 * x, torch.full_like(x, self.v)], 1)


class Wavy(nn.Module):
    """A nonlinear EDM-family raw network."""

    def forward(self, x, c_noise, class_labels=None):
        return torch.tanh(x) * torch.sin(c_noise).reshape(-1, 1, 1, 1)


@pytest.fixture(scope='module')
def diffusion():
    return create_diffusion('cosine', 1000, learn_sigma=True)


def test_ddpm_50_step_protocol_calls_original_timesteps(diffusion):
    net = ConstV()
    model = DiscreteDenoiser(net, diffusion)
    x_T = torch.randn(2, 3, 4, 4)
    out, nfe = ddpm(model, x_T, 50, return_nfe=True)
    assert nfe == 50 and out.shape == x_T.shape and out.abs().max() <= 1 + 1e-6
    expected = respaced_timesteps(1000, 50)
    assert [int(t[0]) for t in net.seen] == expected == sorted(space_timesteps(1000, '50'), reverse=True)
    assert expected[:3] == [999, 979, 958] and expected[-1] == 0


def test_ddpm_step_uses_learned_range_variance(diffusion):
    """v = +1 gives the respaced beta'_k as step variance; the last step adds no noise."""
    net = ConstV(v=1.0)
    x_T = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    seen = []
    noise = lambda x: torch.ones_like(x)  # noqa: E731
    ddpm(net, x_T, [999, 500, 0], diffusion=diffusion, randn_like=noise, clip_denoised=False, callback=seen.append)
    sub = diffusion.respace([0, 500, 999])
    states = [d['x'] for d in seen]
    for i, k in enumerate([2, 1]):  # respaced indices of 999 and 500
        t = torch.tensor([k])
        out = sub.p_mean_variance(net(states[i], sub.model_timesteps(t)), states[i], t, clip_denoised=False)
        step = states[i + 1] - out['mean']
        np.testing.assert_allclose(step.numpy(), math.sqrt(sub.betas[k]), rtol=1e-10)
    assert [d['t'] for d in seen] == [999, 500, 0]
    assert seen[1]['sigma'] == pytest.approx(diffusion.sigmas[500])


def test_ddpm_learned_variance_lower_end(diffusion):
    net = ConstV(v=-1.0)
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    states = []
    ddpm(net, x, [999, 500, 0], diffusion=diffusion, randn_like=lambda y: torch.ones_like(y),
         clip_denoised=False, callback=states.append)
    sub = diffusion.respace([0, 500, 999])
    t = torch.tensor([2])
    mean = sub.p_mean_variance(net(x, sub.model_timesteps(t)), x, t, clip_denoised=False)['mean']
    np.testing.assert_allclose((states[1]['x'] - mean).numpy(), math.sqrt(sub.posterior_variance[2]), rtol=1e-10)


def test_ddpm_is_reproducible_with_a_generator(diffusion):
    model = DiscreteDenoiser(ConstV(v=0.0), diffusion)
    x_T = torch.randn(2, 3, 4, 4)

    def run():
        gen = torch.Generator().manual_seed(3)
        return ddpm(model, x_T, 'ddim10', randn_like=lambda x: torch.randn(x.shape, generator=gen))

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_ddim_eta_and_parameterizations(diffusion):
    teacher = EDMPrecond(Wavy(), 4, 3)
    fixed = create_diffusion('cosine', 1000, learn_sigma=False)
    x_T = torch.randn(2, 3, 4, 4)
    a = ddim(as_eps_model(teacher, fixed), x_T, 20, diffusion=fixed)
    b = ddim(DiscreteDenoiser(as_v_model(teacher, fixed), fixed, 'v', img_channels=3, img_resolution=4), x_T, 20)
    c = ddim(teacher, x_T, 20, diffusion=fixed)  # a sigma-space Denoiser through the eps view
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)  # float32 through sigma_999 ~ 2e4
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    calls = []
    d = ddim(teacher, x_T, 20, diffusion=fixed, eta=1.0, randn_like=lambda x: calls.append(1) or torch.zeros_like(x))
    assert len(calls) == 19 and (d - a).abs().max() > 1e-4  # eta changes the mean; noise on every step but the last
    _, nfe = ddim(teacher, x_T, [900, 100], diffusion=fixed, return_nfe=True)
    assert nfe == 2


def test_discrete_solver_errors(diffusion):
    teacher = EDMPrecond(Wavy(), 4, 3)
    with pytest.raises(ValueError, match='diffusion='):
        ddim(teacher, torch.zeros(1, 3, 4, 4), 10)
    with pytest.raises(ValueError, match='2\\*C'):  # a C-channel eps view cannot feed learned-range variance
        ddpm(teacher, torch.zeros(1, 3, 4, 4), 10, diffusion=diffusion)
    with pytest.raises(ValueError, match='repeat'):
        ddpm(ConstV(), torch.zeros(1, 3, 4, 4), [10, 10], diffusion=diffusion)
    with pytest.raises(ValueError, match='GaussianDiffusion'):
        ddpm(ConstV(), torch.zeros(1, 3, 4, 4), 10)
