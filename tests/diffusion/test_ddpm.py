"""Discrete Gaussian diffusion against the closed forms of spec dkdm_adm.md section 1."""
import math

import numpy as np
import pytest
import torch

from kdm.diffusion.ddpm import (GaussianDiffusion, create_diffusion, get_betas, normal_kl, space_timesteps)

T = 1000


@pytest.fixture(scope='module')
def diffusion():
    return GaussianDiffusion(get_betas('cosine', T), learn_sigma=True)


def cosine_f(u):
    return math.cos((u + 0.008) / 1.008 * math.pi / 2)**2


def test_cosine_betas_closed_form_and_sanity_values():
    betas = get_betas('cosine', T)
    assert betas.dtype == np.float64 and betas.shape == (T, )
    expected = [min(1 - cosine_f((i + 1) / T) / cosine_f(i / T), 0.999) for i in range(T)]
    np.testing.assert_array_equal(betas, expected)
    assert betas[0] == pytest.approx(4.13e-5, rel=1e-3)
    assert betas[999] == 0.999 and (betas[:999] < 0.999).all()  # only the last one is clipped
    assert np.cumprod(1 - betas)[999] == pytest.approx(2.43e-9, rel=1e-2)


def test_linear_betas():
    np.testing.assert_allclose(get_betas('linear', 1000)[[0, -1]], [1e-4, 0.02])
    np.testing.assert_allclose(get_betas('linear', 500)[[0, -1]], [2e-4, 0.04])  # scaled by 1000/T
    with pytest.raises(ValueError, match='cosine'):
        get_betas('quadratic', 10)


def test_space_timesteps_matches_spec_sets():
    k50 = space_timesteps(T, '50')
    assert len(k50) == 50 and k50[:8] == [0, 20, 41, 61, 82, 102, 122, 143] and k50[-3:] == [958, 979, 999]
    k100 = space_timesteps(T, 100)
    assert len(k100) == 100 and k100[:7] == [0, 10, 20, 30, 40, 50, 61] and k100[-2:] == [989, 999]
    # stride (T-1)/(K-1) with Python rounding, exactly
    assert k50 == sorted({round(k * 999 / 49) for k in range(50)})
    assert space_timesteps(T, 'ddim25') == list(range(0, T, 40))
    two = space_timesteps(T, '10,20')
    assert len(two) == 30 and max(s for s in two if s < 500) == 499 and min(s for s in two if s >= 500) == 500
    with pytest.raises(ValueError, match='integer stride'):
        space_timesteps(T, 'ddim999')
    with pytest.raises(ValueError, match='cannot divide'):
        space_timesteps(10, '20')


def test_derived_arrays_and_posterior_coefficients(diffusion):
    b = get_betas('cosine', T)
    abar = np.cumprod(1 - b)
    abar_prev = np.append(1.0, abar[:-1])
    post_var = b * (1 - abar_prev) / (1 - abar)
    np.testing.assert_allclose(diffusion.alphas_cumprod, abar, rtol=1e-15)
    np.testing.assert_allclose(diffusion.posterior_variance, post_var, rtol=1e-15)
    np.testing.assert_allclose(diffusion.posterior_log_variance_clipped[1:], np.log(post_var[1:]), rtol=1e-15)
    assert diffusion.posterior_log_variance_clipped[0] == np.log(post_var[1])  # index 0 uses beta~_1
    np.testing.assert_allclose(diffusion.posterior_mean_coef1, b * np.sqrt(abar_prev) / (1 - abar), rtol=1e-15)
    np.testing.assert_allclose(diffusion.posterior_mean_coef2, (1 - abar_prev) * np.sqrt(1 - b) / (1 - abar),
                               rtol=1e-15)
    np.testing.assert_allclose(diffusion.sigmas, np.sqrt((1 - abar) / abar), rtol=1e-15)
    # the posterior mean is the Gaussian conditional of x_{t-1} given x_t and x0
    x0, xt = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    t = torch.tensor([1, 400, 999])
    mean, var, _ = diffusion.q_posterior_mean_variance(x0, xt, t)
    for i, ti in enumerate(t.tolist()):
        a_prev, a, al = abar_prev[ti], abar[ti], 1 - b[ti]
        expect = (np.sqrt(a_prev) * b[ti] * x0[i].numpy() + np.sqrt(al) * (1 - a_prev) * xt[i].numpy()) / (1 - a)
        np.testing.assert_allclose(mean[i].numpy(), expect, rtol=1e-12)
        np.testing.assert_allclose(var[i].numpy(), post_var[ti], rtol=1e-12)


def test_gather_casts_at_use(diffusion):
    t = torch.tensor([5, 7])
    assert diffusion.gather('betas', t, torch.zeros(2, 3, 4, 4)).dtype == torch.float32
    got = diffusion.gather('betas', t, torch.zeros(2, 3, dtype=torch.float64))
    assert got.dtype == torch.float64 and got.shape == (2, 1)
    assert got[:, 0].tolist() == diffusion.betas[[5, 7]].tolist()


def test_learned_range_variance_endpoints_exact(diffusion):
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    t = torch.tensor([0, 1, 500, 999])
    eps = torch.randn_like(x)
    for v, expect in ((1.0, np.log(diffusion.betas)), (-1.0, diffusion.posterior_log_variance_clipped)):
        out = diffusion.p_mean_variance(torch.cat([eps, torch.full_like(x, v)], 1), x, t)
        got = out['log_variance'][:, 0, 0, 0].numpy()
        np.testing.assert_array_equal(got, expect[t.numpy()])
    out = diffusion.p_mean_variance(torch.cat([eps, torch.zeros_like(x)], 1), x, t)
    mid = 0.5 * (np.log(diffusion.betas) + diffusion.posterior_log_variance_clipped)[t.numpy()]
    np.testing.assert_allclose(out['log_variance'][:, 0, 0, 0].numpy(), mid, rtol=1e-14)


def test_p_mean_variance_eps_path_and_clipping(diffusion):
    torch.manual_seed(0)
    x = 3 * torch.randn(2, 3, 4, 4, dtype=torch.float64)
    t = torch.tensor([10, 900])
    eps, v = torch.randn_like(x), torch.rand_like(x) * 2 - 1
    out = diffusion.p_mean_variance(torch.cat([eps, v], 1), x, t, clip_denoised=True)
    abar = torch.as_tensor(diffusion.alphas_cumprod[t.numpy()]).reshape(-1, 1, 1, 1)
    x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
    torch.testing.assert_close(out['pred_xstart_unclipped'], x0)
    torch.testing.assert_close(out['pred_xstart'], x0.clamp(-1, 1))
    assert out['eps'] is not None and torch.equal(out['eps'], eps)
    mean, _, _ = diffusion.q_posterior_mean_variance(x0.clamp(-1, 1), x, t)
    torch.testing.assert_close(out['mean'], mean)
    with pytest.raises(ValueError, match='2\\*C'):
        diffusion.p_mean_variance(eps, x, t)


def test_fixed_variances():
    b = get_betas('cosine', T)
    small = GaussianDiffusion(b, learn_sigma=False, var_type='fixed_small')
    large = GaussianDiffusion(b, learn_sigma=False)
    x, t = torch.zeros(2, 1, dtype=torch.float64), torch.tensor([0, 5])
    lv_small = small.p_mean_variance(torch.zeros_like(x), x, t)['log_variance'][:, 0]
    lv_large = large.p_mean_variance(torch.zeros_like(x), x, t)['log_variance'][:, 0]
    np.testing.assert_allclose(lv_small.numpy(), small.posterior_log_variance_clipped[[0, 5]])
    np.testing.assert_allclose(lv_large.numpy(), np.log([small.posterior_variance[1], b[5]]))


def test_normal_kl():
    m, lv = torch.randn(5), torch.randn(5)
    assert torch.allclose(normal_kl(m, lv, m, lv), torch.zeros(5), atol=1e-6)
    # KL(N(0,1) || N(1, e^2)) = log(e) + (1 + 1) / (2 e^2) - 1/2
    e = math.exp(1.0)
    assert normal_kl(torch.tensor(0.0), 0.0, 1.0, 2.0).item() == pytest.approx(1 + 1 / e**2 - 0.5)


def _stub_net(C, record=None, eps_scale=0.5):
    """A deterministic 'network' with learnable eps and v heads."""
    w = torch.nn.Parameter(torch.tensor(eps_scale, dtype=torch.float64))
    vparam = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))

    def net(x, ts):
        if record is not None:
            record.append(ts.clone())
        return torch.cat([w * x, vparam * torch.ones_like(x)], dim=1)

    return net, w, vparam


def test_hybrid_loss_matches_spec(diffusion):
    torch.manual_seed(0)
    x0 = torch.rand(4, 3, 4, 4, dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 1, 500, 999])
    noise = torch.randn_like(x0)
    net, w, vparam = _stub_net(3)
    out = diffusion.training_losses(net, x0, t, noise=noise)
    xt = diffusion.q_sample(x0, t, noise)
    eps_hat = w.detach() * xt
    torch.testing.assert_close(out['mse'], ((noise - eps_hat)**2).mean(dim=(1, 2, 3)))
    # vb: KL(q || p) in bits/dim for t > 0, decoder NLL at t = 0, from [eps.detach(), v] without clipping
    p = diffusion.p_mean_variance(torch.cat([eps_hat, vparam.detach() * torch.ones_like(xt)], 1), xt, t,
                                  clip_denoised=False)
    q_mean, _, q_lv = diffusion.q_posterior_mean_variance(x0, xt, t)
    kl = normal_kl(q_mean, q_lv, p['mean'], p['log_variance']).mean(dim=(1, 2, 3)) / math.log(2)
    torch.testing.assert_close(out['vb'][1:], kl[1:])
    assert not torch.isclose(out['vb'][0], kl[0])  # t = 0 is the decoder NLL
    torch.testing.assert_close(out['loss'], out['mse'] + out['vb'])
    # the vb term trains only the variance head
    out['vb'].sum().backward()
    assert w.grad is None or w.grad == 0
    assert vparam.grad is not None and vparam.grad != 0


def test_rescaled_mse_and_kl_losses():
    b = get_betas('cosine', 200)
    x0, t, noise = torch.rand(2, 1, 2, 2, dtype=torch.float64), torch.tensor([3, 100]), None
    torch.manual_seed(1)
    noise = torch.randn_like(x0)
    plain = GaussianDiffusion(b).training_losses(_stub_net(1)[0], x0, t, noise=noise)
    rescaled = GaussianDiffusion(b, loss_type='rescaled_mse').training_losses(_stub_net(1)[0], x0, t, noise=noise)
    torch.testing.assert_close(rescaled['vb'], plain['vb'] * 0.2)
    kl = GaussianDiffusion(b, loss_type='kl').training_losses(_stub_net(1)[0], x0, t, noise=noise)
    torch.testing.assert_close(kl['loss'], kl['vb'])


def test_input_perturbation_keeps_unperturbed_target(diffusion):
    x0 = torch.rand(3, 3, 4, 4, dtype=torch.float64) * 2 - 1
    t = torch.tensor([100, 400, 800])
    noise = torch.randn_like(x0)
    seen = []

    def net(x, ts):
        seen.append(x)
        return torch.cat([torch.zeros_like(x), torch.zeros_like(x)], 1)

    torch.manual_seed(5)
    out = diffusion.training_losses(net, x0, t, noise=noise, input_perturbation=0.15)
    torch.manual_seed(5)
    xi = torch.randn_like(noise)
    torch.testing.assert_close(seen[0], diffusion.q_sample(x0, t, noise + 0.15 * xi))
    # with a zero eps prediction the MSE is the mean square of the UNPERTURBED noise
    torch.testing.assert_close(out['mse'], (noise**2).mean(dim=(1, 2, 3)))


def test_respacing_recomputes_arrays_and_keeps_original_indices(diffusion):
    sub = diffusion.respace('50')
    keep = space_timesteps(T, 50)
    assert sub.num_timesteps == 50 and sub.timestep_map.tolist() == keep
    abar = diffusion.alphas_cumprod[keep]
    np.testing.assert_allclose(sub.betas, 1 - abar / np.append(1.0, abar[:-1]), rtol=1e-14)
    np.testing.assert_allclose(sub.alphas_cumprod, abar, rtol=1e-10)
    b = sub.betas
    np.testing.assert_allclose(sub.posterior_variance[1:],
                               b[1:] * (1 - abar[:-1]) / (1 - abar[1:]), rtol=1e-12)
    assert sub.model_timesteps(torch.tensor([0, 1, 49])).tolist() == [0, 20, 999]
    record = []
    x0 = torch.rand(2, 1, 2, 2, dtype=torch.float64)
    sub.training_losses(_stub_net(1, record)[0], x0, torch.tensor([1, 49]))
    assert record[0].tolist() == [20, 999]
    # respacing a respaced diffusion composes the maps
    assert sub.respace([0, 49]).timestep_map.tolist() == [0, 999]
    assert create_diffusion(timestep_respacing='ddim10').timestep_map.tolist() == list(range(0, 1000, 100))


def test_rescale_timesteps():
    d = GaussianDiffusion(get_betas('linear', 100), rescale_timesteps=True).respace('10')
    assert d.model_timesteps(torch.tensor([9])).tolist() == [990.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match='var_type'):
        GaussianDiffusion(get_betas('linear', 100), var_type='huge')
    with pytest.raises(ValueError, match='betas'):
        GaussianDiffusion(np.array([0.1, 1.5]))
    with pytest.raises(ValueError, match='lie in'):
        GaussianDiffusion(get_betas('linear', 100)).respace([0, 100])
