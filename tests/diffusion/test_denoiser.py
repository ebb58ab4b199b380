"""Denoiser adapters and inverse views: sigma <-> timestep, round trips (DESIGN.md section 2)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from kdm.diffusion import (DiscreteDenoiser, EDMPrecond, FlowDenoiser, as_eps_model, as_v_model, as_velocity,
                           create_diffusion)
from kdm.diffusion.denoiser import Denoiser


class EDMNet(nn.Module):
    """A small nonlinear EDM-family network (x, noise_labels, class_labels)."""

    def __init__(self, C=3, label_dim=0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(C, C, 1)
        self.emb = nn.Linear(label_dim, C) if label_dim else None

    def forward(self, x, c_noise, class_labels=None):
        h = torch.tanh(self.conv(x)) * torch.sin(c_noise).reshape(-1, 1, 1, 1)
        if class_labels is not None and self.emb is not None:
            h = h + self.emb(class_labels)[:, :, None, None]
        return h


class ADMNet(nn.Module):
    """ADM call convention net(x, timesteps, y=None); 2C outputs (learn_sigma); records its timesteps."""

    def __init__(self, C=3):
        super().__init__()
        self.in_channels, self.image_size = C, 4
        self.conv = nn.Conv2d(C, 2 * C, 1)
        self.seen = []

    def forward(self, x, timesteps, y=None):
        self.seen.append(timesteps)
        return torch.tanh(self.conv(x)) * torch.cos(timesteps.float() / 400).reshape(-1, 1, 1, 1)


@pytest.fixture(scope='module')
def diffusion():
    return create_diffusion('cosine', 1000, learn_sigma=True)


@pytest.fixture(scope='module')
def teacher():
    return EDMPrecond(EDMNet(label_dim=4), img_resolution=4, img_channels=3, label_dim=4)


def test_discrete_denoiser_eps_formula_and_timesteps(diffusion):
    net = ADMNet()
    dd = DiscreteDenoiser(net, diffusion)
    assert (dd.img_channels, dd.img_resolution) == (3, 4)
    assert dd.sigma_min == pytest.approx(diffusion.sigmas[0]) and dd.sigma_max == pytest.approx(diffusion.sigmas[-1])
    assert sorted(dd.state_dict()) == ['net.conv.bias', 'net.conv.weight']  # level buffers are not persistent
    x = torch.randn(2, 3, 4, 4)
    t = torch.tensor([37, 612])
    sigma = torch.as_tensor(diffusion.sigmas[t.numpy()], dtype=torch.float32)
    out = dd(x, sigma)
    assert net.seen[-1].tolist() == [37, 612] and net.seen[-1].dtype == torch.int64
    abar = torch.as_tensor(diffusion.alphas_cumprod[t.numpy()], dtype=torch.float32).reshape(-1, 1, 1, 1)
    eps = net(x * abar.sqrt(), t)[:, :3]
    torch.testing.assert_close(out, x - sigma.reshape(-1, 1, 1, 1) * eps, rtol=1e-5, atol=1e-5)


def test_round_sigma_and_interpolated_timesteps(diffusion):
    net = ADMNet()
    dd = DiscreteDenoiser(net, diffusion, timestep_mode='interp')
    levels = torch.as_tensor(diffusion.sigmas, dtype=torch.float32)
    geo = (levels[100] * levels[101]).sqrt()  # half-way in log sigma
    assert dd.round_sigma(levels[250] * 1.0001).item() == pytest.approx(levels[250].item(), rel=1e-6)
    assert dd.round_sigma(torch.tensor([[geo * 1.01]])).shape == (1, 1)
    dd(torch.zeros(1, 3, 4, 4), geo)
    assert net.seen[-1].dtype == torch.float32 and net.seen[-1].item() == pytest.approx(100.5, abs=1e-3)
    # respaced: the nearest respaced level maps to the ORIGINAL timestep
    sub = diffusion.respace('50')
    dd50 = DiscreteDenoiser(net, sub)
    dd50(torch.zeros(1, 3, 4, 4), float(sub.sigmas[1]))
    assert net.seen[-1].tolist() == [20]


def test_eps_and_v_views_round_trip(diffusion, teacher):
    x = torch.randn(3, 3, 4, 4)
    cond = torch.tensor([0, 3, 1])
    sigma = torch.as_tensor(diffusion.sigmas[[5, 300, 900]], dtype=torch.float32)
    ref = teacher(x, sigma, cond)
    back = DiscreteDenoiser(as_eps_model(teacher, diffusion), diffusion, img_channels=3, img_resolution=4,
                            label_dim=4)
    torch.testing.assert_close(back(x, sigma, cond), ref, rtol=1e-4, atol=1e-4)
    back_v = DiscreteDenoiser(as_v_model(teacher, diffusion), diffusion, 'v', img_channels=3, img_resolution=4,
                              label_dim=4)
    torch.testing.assert_close(back_v(x, sigma, cond), ref, rtol=1e-4, atol=1e-4)
    # x0 -> eps -> x0 on the VP side: eps_view gives (x - D) / sigma at x_t = x / sqrt(1 + sigma^2)
    s = sigma.reshape(-1, 1, 1, 1)
    eps = as_eps_model(teacher, diffusion)(x / (1 + s**2).sqrt(), torch.tensor([5, 300, 900]), cond)
    torch.testing.assert_close(x - s * eps, ref, rtol=1e-4, atol=1e-4)
    # learned_var appends constant v channels for learned-range diffusions
    assert as_eps_model(teacher, diffusion, learned_var=1.0)(x, torch.tensor([5, 6, 7]), cond).shape[1] == 6


@pytest.mark.parametrize('convention', ['rf', 'cud'])
def test_velocity_round_trips(teacher, convention):
    x = torch.randn(3, 3, 4, 4)
    cond = torch.tensor([2, 2, 0])
    sigma = torch.tensor([0.05, 1.3, 40.0])
    ref = teacher(x, sigma, cond)
    view = as_velocity(teacher, convention, time_scale=999.0 if convention == 'rf' else 1.0)
    flow = FlowDenoiser(view, convention, img_channels=3, img_resolution=4, label_dim=4)
    torch.testing.assert_close(flow(x, sigma, cond), ref, rtol=1e-4, atol=1e-4)  # x0 -> v -> x0
    # v -> x0 -> v: a velocity net wrapped as a Denoiser and viewed back as a velocity
    vnet = EDMNet(label_dim=4)
    fd = FlowDenoiser(vnet, convention, img_channels=3, img_resolution=4, label_dim=4)
    t = torch.tensor([0.1, 0.5, 0.93])
    x_t = torch.randn(3, 3, 4, 4)
    v_native = fd.velocity(x_t, t, cond)
    torch.testing.assert_close(as_velocity(fd, convention)(x_t, t, cond), v_native, rtol=1e-4, atol=1e-4)
    scale = 999.0 if convention == 'rf' else 1.0
    onehot = nn.functional.one_hot(cond, 4).float()
    torch.testing.assert_close(v_native, vnet(x_t, t * scale, class_labels=onehot))


def test_flow_denoiser_formula_rf():
    vnet = EDMNet()
    fd = FlowDenoiser(vnet, 'rf', img_channels=3, img_resolution=4)
    assert fd.sigma_max == pytest.approx(999.0) and fd.time_scale == 999.0
    x, sigma = torch.randn(2, 3, 4, 4), torch.tensor([0.5, 3.0])
    t = 1 / (1 + sigma)
    x_t = x * t.reshape(-1, 1, 1, 1)
    expect = x_t + (1 - t).reshape(-1, 1, 1, 1) * vnet(x_t, 999 * t)
    torch.testing.assert_close(fd(x, sigma), expect)
    assert math.isinf(FlowDenoiser(vnet, 'cud', img_channels=3, img_resolution=4).sigma_max)


def test_base_protocol_normalises_inputs():

    class Echo(Denoiser):

        def denoise(self, x, sigma, cond):
            self.got = (sigma, cond)
            return x

    d = Echo(img_channels=2, img_resolution=1, label_dim=3)
    x = torch.zeros(4, 2)
    d(x, 0.5, nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3).float())
    assert d.got[0].shape == (4, ) and d.got[0].dtype == torch.float32 and d.got[1].tolist() == [0, 1, 2, 1]
    d(x, torch.tensor([0.7]))  # a single-element sigma broadcasts
    assert d.got[0].tolist() == pytest.approx([0.7] * 4)
    with pytest.raises(ValueError, match='batch size'):
        d(x, torch.ones(3))
    with pytest.raises(ValueError, match='class labels'):
        d(x, 1.0, torch.tensor([0, 1, 2, 3]))


def test_bad_adapter_arguments(diffusion):
    with pytest.raises(ValueError, match='parameterization'):
        DiscreteDenoiser(ADMNet(), diffusion, parameterization='score')
    with pytest.raises(ValueError, match='img_channels'):
        DiscreteDenoiser(nn.Identity(), diffusion)
    with pytest.raises(ValueError, match="'rf'"):
        FlowDenoiser(EDMNet(), 'ddpm', img_channels=3, img_resolution=4)
    built = DiscreteDenoiser(ADMNet(), dict(schedule='linear', steps=100, learn_sigma=True))
    np.testing.assert_allclose(built.diffusion.betas[[0, -1]], [1e-3, 0.2])
