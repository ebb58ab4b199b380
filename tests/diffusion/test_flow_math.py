"""Rectified-flow conventions (spec cud_slimflow_rf.md 1, 5.1)."""
import pytest
import torch

from kdm.diffusion import flow as F


@pytest.mark.parametrize('convention', ['rf', 'cud'])
def test_interpolation_velocity_and_conversions(convention):
    x, z = torch.randn(4, 3, 2, 2, dtype=torch.float64), torch.randn(4, 3, 2, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.4, 0.7, 0.95], dtype=torch.float64)
    x_t = F.interpolate(x, z, t, convention)
    tt = t.reshape(-1, 1, 1, 1)
    data_end = 1.0 if convention == 'rf' else 0.0
    expect = tt * x + (1 - tt) * z if convention == 'rf' else tt * z + (1 - tt) * x
    torch.testing.assert_close(x_t, expect)
    v = F.target_velocity(x, z, convention)
    # v is d x_t / dt along the straight path
    torch.testing.assert_close(F.interpolate(x, z, t + 1e-3, convention) - x_t, 1e-3 * v)
    torch.testing.assert_close(F.velocity_to_x0(x_t, t, v, convention), x)
    torch.testing.assert_close(F.velocity_to_noise(x_t, t, v, convention), z)
    torch.testing.assert_close(F.x0_to_velocity(x_t, t, x, convention), v)
    # sigma-space: x_t / scale = x + sigma z with scale = 1 / (1 + sigma)
    sigma = F.flow_time_to_sigma(t, convention)
    torch.testing.assert_close(F.sigma_to_flow_time(sigma, convention), t)
    scale = (1 / (1 + sigma)).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(x_t / scale, x + sigma.reshape(-1, 1, 1, 1) * z)
    assert float(F.flow_time_to_sigma(torch.tensor(data_end), convention)) == 0


def test_time_sampling_eps():
    torch.manual_seed(0)
    t = F.sample_time(20000)
    assert t.min() >= 1e-3 and t.max() <= 1 and t.min() < 2e-3
    t = F.sample_time(20000, convention='cud')
    assert t.min() >= 1e-5 and t.min() < 1e-3
    assert F.sample_time(5, eps=0.5).min() >= 0.5


@pytest.mark.parametrize('convention,scale', [('rf', 999.0), ('cud', 1.0)])
def test_rectified_flow_loss_zero_for_exact_velocity(convention, scale):
    c = torch.full((3, 2), 0.25)  # all data at one point: the exact velocity is known in closed form
    z = torch.randn(3, 2)
    seen = []

    def model(x_t, t_fed):
        seen.append(t_fed)
        t = (t_fed / scale).reshape(-1, 1)
        if convention == 'rf':
            noise = (x_t - t * c) / (1 - t)
            return c - noise
        noise = (x_t - (1 - t) * c) / t
        return noise - c

    t = torch.tensor([0.2, 0.5, 0.9])
    loss = F.rectified_flow_loss(model, c, noise=z, t=t, convention=convention)
    assert loss.shape == (3, ) and loss.abs().max() < 1e-10
    torch.testing.assert_close(seen[0], t * scale)
    wrong = F.rectified_flow_loss(lambda x, s: torch.zeros_like(x), c, noise=z, t=t, convention=convention)
    torch.testing.assert_close(wrong, ((c - z)**2).mean(dim=1))


def test_unknown_convention():
    with pytest.raises(ValueError, match="'rf'"):
        F.interpolate(torch.zeros(1), torch.zeros(1), 0.5, 'flow')
