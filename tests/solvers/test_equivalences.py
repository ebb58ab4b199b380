"""Identities between solvers and spaces, NFE counting, callbacks, AFS (DESIGN.md sections 2 and 4)."""
import math

import pytest
import torch
from torch import nn

from kdm.diffusion import DiscreteDenoiser, as_eps_model, as_velocity, create_diffusion
from kdm.diffusion.schedules import polynomial
from kdm.solvers import (ddim, dpm, dpmpp, edm_stochastic, euler, flow_euler, flow_heun, get_solver, heun, ipndm,
                         rk45)
from .gaussian import Gaussian

ODE_SOLVERS = [euler, heun, dpm, ipndm, dpmpp, edm_stochastic]


class ADMNet(nn.Module):
    """A nonlinear ADM-convention net(x, timesteps, y=None) with learned-sigma output channels."""

    def __init__(self, C=3):
        super().__init__()
        torch.manual_seed(0)
        self.in_channels, self.image_size = C, 4
        self.conv = nn.Conv2d(C, 2 * C, 1)

    def forward(self, x, timesteps, y=None):
        return torch.tanh(self.conv(x)) * torch.cos(timesteps.float() / 300).reshape(-1, 1, 1, 1)


def test_euler_equals_ddim_equals_flow_euler():
    diffusion = create_diffusion('cosine', 1000)
    model = DiscreteDenoiser(ADMNet(), diffusion)
    x_T = torch.randn(2, 3, 4, 4)
    t_a, t_b = 600, 300
    s_a, s_b = float(diffusion.sigmas[t_a]), float(diffusion.sigmas[t_b])
    ddim_steps, euler_steps = [], []
    x_ddim = ddim(model, x_T, [t_a, t_b], clip_denoised=False, callback=ddim_steps.append)
    x_sig = x_T * math.sqrt(1 + s_a**2)  # VP state -> sigma-space
    x_euler = euler(model, x_sig, [s_a, s_b, 0.0], callback=euler_steps.append)
    torch.testing.assert_close(x_ddim, x_euler, rtol=1e-5, atol=1e-5)  # both end in x0 after 2 calls
    torch.testing.assert_close(ddim_steps[1]['x'] * math.sqrt(1 + s_b**2), euler_steps[1]['x'], rtol=1e-5, atol=1e-5)
    assert [d['t'] for d in ddim_steps] == [600, 300] and ddim_steps[1]['sigma'] == pytest.approx(s_b)
    # one flow-time Euler step (rf: t = 1 / (1 + sigma), x_t = t x) on the same model
    t_a_f, t_b_f = 1 / (1 + s_a), 1 / (1 + s_b)
    x_flow = flow_euler(as_velocity(model, 'rf'), x_sig * t_a_f, [t_a_f, t_b_f])
    torch.testing.assert_close(x_flow / t_b_f, euler(model, x_sig, [s_a, s_b]), rtol=1e-5, atol=1e-5)
    # and in the cud convention (t = sigma / (1 + sigma), x_t = (1 - t) x)
    c_a, c_b = s_a / (1 + s_a), s_b / (1 + s_b)
    x_cud = flow_euler(as_velocity(model, 'cud'), x_sig * (1 - c_a), [c_a, c_b], convention='cud')
    torch.testing.assert_close(x_cud / (1 - c_b), euler(model, x_sig, [s_a, s_b]), rtol=1e-5, atol=1e-5)


def test_euler_ddim_flow_exact_in_float64():
    g = Gaussian()
    diffusion = create_diffusion('cosine', 1000, learn_sigma=False, var_type='fixed_small')
    ts = [800, 450, 100]
    sig = [float(diffusion.sigmas[t]) for t in ts] + [0.0]
    x_T = g.z.clone()
    x_ddim = ddim(as_eps_model(g.denoiser, diffusion), x_T, ts, diffusion=diffusion, clip_denoised=False)
    x_euler = euler(g.denoiser, x_T * math.sqrt(1 + sig[0]**2), sig)
    torch.testing.assert_close(x_ddim, x_euler, rtol=1e-12, atol=1e-12)
    tf = [1 / (1 + s) for s in sig[:3]]
    x_flow = flow_euler(as_velocity(g.denoiser, 'rf'), x_T * math.sqrt(1 + sig[0]**2) * tf[0], tf)
    torch.testing.assert_close(x_flow / tf[-1], euler(g.denoiser, x_T * math.sqrt(1 + sig[0]**2), sig[:3]),
                               rtol=1e-12, atol=1e-12)


def test_heun_does_not_coincide_across_spaces():
    g = Gaussian()
    sig = [10.0, 1.0, 0.1]
    x = g.z * 10.0
    tf = [1 / (1 + s) for s in sig]
    a = heun(g.denoiser, x, sig)
    b = flow_heun(as_velocity(g.denoiser, 'rf'), x * tf[0], tf, final_euler=False) / tf[-1]
    assert (a - b).abs().max() > 1e-3


def test_low_order_identities():
    g = Gaussian()
    sig = polynomial(9, 0.01, 20.0)
    x = g.z * 20.0
    ref = euler(g.denoiser, x, sig)
    torch.testing.assert_close(dpmpp(g.denoiser, x, sig, max_order=1), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dpmpp(g.denoiser, x, sig, max_order=1, predict_x0=False), ref, rtol=1e-12,
                               atol=1e-12)
    torch.testing.assert_close(ipndm(g.denoiser, x, sig, max_order=1), ref, rtol=1e-12, atol=1e-12)
    # EDM's deterministic sampler is edm_stochastic without churn
    torch.testing.assert_close(edm_stochastic(g.denoiser, x, sig), heun(g.denoiser, x, sig), rtol=0, atol=0)


def test_dpm_solver_2_is_the_log_midpoint_rule():
    g = Gaussian()
    s0, s1 = 5.0, 0.5
    x = g.z * s0
    d0 = (x - g.denoiser(x, s0)) / s0
    s_mid = math.sqrt(s0 * s1)
    x_mid = x + (s_mid - s0) * d0
    expect = x + (s1 - s0) * (x_mid - g.denoiser(x_mid, s_mid)) / s_mid
    torch.testing.assert_close(dpm(g.denoiser, x, [s0, s1]), expect, rtol=1e-13, atol=1e-13)


def test_sfd_student_step_and_afs():
    g = Gaussian()
    t0, t1 = 80.0, 10.93
    x = g.z * t0
    expect = x + (t1 - t0) * (x - g.denoiser(x, t0)) / t0
    torch.testing.assert_close(euler(g.denoiser, x, [t0, t1]), expect)
    # AFS: d_0 = x / sqrt(1 + t0^2) and no network call
    seen = []
    out, nfe = euler(g.denoiser, x, [t0, t1, 0.67], afs=True, return_nfe=True, callback=seen.append)
    x1 = x + (t1 - t0) * x / math.sqrt(1 + t0**2)
    torch.testing.assert_close(seen[1]['x'], x1)
    torch.testing.assert_close(seen[0]['denoised'], x - t0 * x / math.sqrt(1 + t0**2))
    assert nfe == 1
    for solver, plain, with_afs in ((heun, 4, 3), (dpm, 4, 3), (ipndm, 2, 1), (dpmpp, 2, 1)):
        assert solver(g.denoiser, x, [t0, t1, 0.67], return_nfe=True)[1] == plain
        assert solver(g.denoiser, x, [t0, t1, 0.67], afs=True, return_nfe=True)[1] == with_afs


@pytest.mark.parametrize('solver,nfe_no_zero,nfe_zero', [(euler, 17, 18), (heun, 34, 35), (dpm, 34, 35),
                                                         (ipndm, 17, 18), (dpmpp, 17, 18),
                                                         (edm_stochastic, 34, 35)])
def test_nfe_as_the_papers_count(solver, nfe_no_zero, nfe_zero):
    g = Gaussian()
    sig = polynomial(18, 0.002, 80.0)  # EDM's 18 stamps + 0: Heun NFE 35
    for s, expect in ((sig[:-1], nfe_no_zero), (sig, nfe_zero)):
        g.calls = 0
        out, nfe = solver(g.denoiser, g.z * 80.0, s, return_nfe=True)
        assert nfe == expect == g.calls and out.shape == g.z.shape


def test_flow_nfe_and_callbacks():
    g = Gaussian()
    v = as_velocity(g.denoiser, 'rf')
    t = torch.linspace(0.1, 0.9, 5)
    seen = []
    _, nfe = flow_heun(v, g.z, t, return_nfe=True, callback=seen.append)
    assert nfe == 2 * 4 - 1 and [d['i'] for d in seen] == [0, 1, 2, 3]
    assert set(seen[0]) == {'i', 'x', 't', 'v', 'sigma', 'denoised'}
    assert seen[1]['sigma'] == pytest.approx((1 - 0.3) / 0.3)
    torch.testing.assert_close(seen[1]['denoised'], seen[1]['x'] + 0.7 * seen[1]['v'])
    assert flow_heun(v, g.z, t, final_euler=False, return_nfe=True)[1] == 8
    assert flow_euler(v, g.z, t, return_nfe=True)[1] == 4
    # RectifiedFlow's exact Euler: dt = 1/N on the grid eps + i (1 - eps) / N
    a = flow_euler(v, g.z, [0.001, 0.5005], fixed_dt=0.5)
    torch.testing.assert_close(a, g.z + 0.5 * v(g.z, torch.full((16, ), 0.001, dtype=torch.float64)))


def test_callbacks_and_final_denoising_step():
    g = Gaussian()
    sig = polynomial(6, 0.01, 20.0)
    for solver in ODE_SOLVERS:
        seen = []
        out = solver(g.denoiser, g.z * 20.0, sig, callback=seen.append)
        assert [d['i'] for d in seen] == list(range(6)), solver.__name__
        assert set(seen[0]) == {'i', 'x', 'sigma', 'denoised'}
        assert seen[0]['sigma'] == 20.0 and torch.equal(seen[0]['x'], g.z * 20.0)
        # the step to sigma = 0 returns the denoiser output at the last sigma
        torch.testing.assert_close(out, g.denoiser(seen[-1]['x'], seen[-1]['sigma']), rtol=1e-12, atol=1e-12)


def test_edm_stochastic_churn():
    g = Gaussian()
    sig = polynomial(10, 0.01, 20.0)
    calls = []

    def randn_like(x):
        calls.append(1)
        return torch.ones_like(x)

    seen = []
    edm_stochastic(g.denoiser, g.z * 20.0, sig, S_churn=4.0, S_min=0.05, S_max=10.0, randn_like=randn_like,
                   callback=seen.append)
    gamma = min(4.0 / 10, math.sqrt(2) - 1)
    churned = [d for d, s in zip(seen, sig.tolist()) if 0.05 <= s <= 10.0]
    assert len(calls) == len(churned) > 0
    assert seen[2]['sigma'] == pytest.approx(float(sig[2]) * (1 + gamma))
    assert seen[0]['sigma'] == 20.0  # outside [S_min, S_max]: no churn


def test_solvers_keep_dtype_and_gradients():
    lin = nn.Linear(8, 8).double()

    def den(x, sigma, cond=None):
        return lin(x) / (1 + sigma.reshape(-1, 1))

    x = torch.randn(4, 8, dtype=torch.float64)
    for solver in ODE_SOLVERS:
        lin.zero_grad()
        out = solver(den, x, [3.0, 1.0, 0.2])
        assert out.dtype == torch.float64
        out.sum().backward()  # SFD trains a student through its own solver steps
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0, solver.__name__


def test_dynamic_thresholding_clamps_data_predictions():
    def wild(x, sigma, cond=None):
        return 5 * torch.ones_like(x)

    out = dpmpp(wild, torch.zeros(2, 8), [2.0, 0.0], thresholding=True)
    torch.testing.assert_close(out, torch.ones(2, 8))  # s = quantile(|D|) = 5: clamp(D, -5, 5) / 5
    assert get_solver('rk45') is rk45
