"""EDM preconditioners and losses (spec sid_edm.md 2.1, 2.6)."""
import math

import pytest
import torch
from torch import nn

from kdm.diffusion.edm import EDMLoss, EDMPrecond, VELoss, VEPrecond, VPLoss, VPPrecond, iDDPMPrecond
from kdm.registry import LOSSES, MODELS

X0 = torch.tensor([0.3, -0.7, 0.1, 0.9]).reshape(1, 1, 2, 2)  # the point mass


def sigma_from_noise(kind, c_noise, precond):
    """Invert each wrapper's c_noise (EDM Table 1) to recover sigma inside the 'network'."""
    if kind == 'edm':
        return torch.exp(4 * c_noise)
    if kind == 've':
        return 2 * torch.exp(c_noise)
    if kind == 'vp':
        t = c_noise / (precond.M - 1)
        return ((0.5 * precond.beta_d * t**2 + precond.beta_min * t).exp() - 1).sqrt()
    return precond.u[(precond.M - 1 - c_noise).round().long()]


def table1(kind, sigma, sd=0.5):
    """(c_skip, c_out, c_in) of EDM Table 1."""
    if kind == 'edm':
        return sd**2 / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2).sqrt(), 1 / (sigma**2 + sd**2).sqrt()
    if kind == 've':
        return torch.ones_like(sigma), sigma, torch.ones_like(sigma)
    return torch.ones_like(sigma), -sigma, 1 / (sigma**2 + 1).sqrt()  # vp, iddpm


class IdealResidual(nn.Module):
    """F(c_in x, c_noise) = (x0 - c_skip x) / c_out for the point mass x0: then D = x0 exactly."""

    def __init__(self, kind, channels=1):
        super().__init__()
        self.kind, self.channels, self.precond = kind, channels, None

    def forward(self, x_in, c_noise, class_labels=None):
        sigma = sigma_from_noise(self.kind, c_noise, self.precond).reshape(-1, 1, 1, 1).to(x_in.dtype)
        c_skip, c_out, c_in = table1(self.kind, sigma)
        x = x_in / c_in
        F = (X0 - c_skip * x) / c_out
        return torch.cat([F, 100 + F], dim=1) if self.channels == 2 else F  # iDDPM: the 2nd half is ignored


@pytest.mark.parametrize('kind,cls,kwargs', [('edm', EDMPrecond, {}), ('vp', VPPrecond, {}), ('ve', VEPrecond, {}),
                                             ('iddpm', iDDPMPrecond, {})])
def test_ideal_residual_of_point_mass_gives_x0(kind, cls, kwargs):
    net = IdealResidual(kind, channels=2 if kind == 'iddpm' else 1)
    precond = cls(net, img_resolution=2, img_channels=1, **kwargs)
    object.__setattr__(net, 'precond', precond)  # a plain reference, not a sub-module
    sigmas = torch.tensor([0.01, 0.3, 2.5, 40.0])
    if kind == 'iddpm':
        sigmas = precond.round_sigma(sigmas)
    x = X0 + sigmas.reshape(-1, 1, 1, 1) * torch.randn(4, 1, 2, 2)
    torch.testing.assert_close(precond(x, sigmas), X0.expand(4, -1, -1, -1), rtol=1e-4, atol=1e-4)
    assert set(precond.state_dict()) == ({'u'} if kind == 'iddpm' else set())  # no parameters but EDM's buffer


def test_edm_coefficients_at_sid_sigma():
    precond = EDMPrecond(IdealResidual('edm'), 2, 1)
    c_skip, c_out, c_in, c_noise = precond.coefficients(torch.tensor(2.5))
    assert (round(float(c_skip), 4), round(float(c_out), 4), round(float(c_in), 4), round(float(c_noise), 4)) == (
        0.0385, 0.4903, 0.3922, 0.2291)


def test_vp_and_iddpm_ranges():
    vp = VPPrecond(IdealResidual('vp'), 2, 1)
    # computed in float32 like EDM (so 0.000977 rather than the float64 0.001000)
    assert vp.sigma_min == pytest.approx(math.sqrt(math.exp(0.5 * 19.9 * 1e-10 + 0.1 * 1e-5) - 1), rel=3e-2)
    assert vp.sigma_max == pytest.approx(math.sqrt(math.exp(0.5 * 19.9 + 0.1) - 1), rel=1e-5)
    s = torch.tensor([0.01, 1.0, 50.0])
    torch.testing.assert_close(vp.sigma(vp.sigma_inv(s)), s)
    idd = iDDPMPrecond(IdealResidual('iddpm', 2), 2, 1)
    u = idd.u
    assert u.dtype == torch.float32 and u.shape == (1001, ) and u[1000] == 0
    assert bool((u[:-1] > u[1:]).all())
    assert idd.sigma_max == float(u[0]) and idd.sigma_min == float(u[999])
    # u_0 comes from the clipped ratio C_1 (abar_0 = 0), hence the huge top level; samplers clamp to 80
    assert idd.sigma_max == pytest.approx(20291.17, rel=1e-5) and idd.sigma_min == pytest.approx(0.006422, rel=1e-3)
    # round_sigma snaps to the nearest level, keeps shape and dtype
    q = torch.tensor([[float(u[10]) * 1.001, float(u[500]) * 0.999]], dtype=torch.float64)
    snapped = idd.round_sigma(q)
    assert snapped.shape == q.shape and snapped.dtype == torch.float64
    assert snapped[0].tolist() == [float(u[10]), float(u[500])]
    assert idd.round_sigma(q, return_index=True).tolist() == [[10, 500]]


def test_class_labels_and_kwargs_are_passed():
    seen = {}

    class Net(nn.Module):

        def forward(self, x, c_noise, class_labels=None, augment_labels=None):
            seen.update(labels=class_labels, aug=augment_labels, c_noise=c_noise)
            return torch.zeros_like(x)

    precond = EDMPrecond(Net(), 2, 1, label_dim=3)
    x = torch.zeros(2, 1, 2, 2)
    precond(x, 1.0, torch.tensor([2, 0]), augment_labels=torch.ones(2, 9))
    assert seen['labels'].tolist() == [[0, 0, 1], [1, 0, 0]] and seen['aug'].shape == (2, 9)
    assert seen['c_noise'].shape == (2, )
    precond(x, 1.0)  # a conditional net without labels gets zeros, as EDM
    assert seen['labels'].tolist() == [[0, 0, 0], [0, 0, 0]]
    # (N, D) toy data broadcasts
    toy = EDMPrecond(Net(), 1, 5)
    assert toy(torch.ones(4, 5), torch.tensor([0.5, 1, 2, 3])).shape == (4, 5)


@MODELS.register_module(name='_KdmTestEDMNet', force=True)
class _TestNet(nn.Module):

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x, noise_labels, class_labels=None):
        return self.conv(x)


def test_built_from_config_keeps_model_keys():
    cfg = dict(type='_KdmTestEDMNet', img_resolution=4, in_channels=3, out_channels=6)
    precond = iDDPMPrecond(cfg, img_resolution=4, img_channels=3)
    assert isinstance(precond.model, _TestNet)
    assert set(precond.state_dict()) == {'model.conv.weight', 'model.conv.bias', 'u'}
    built = MODELS.build(dict(type='EDMPrecond', model=dict(cfg, out_channels=3), img_resolution=4, img_channels=3))
    assert built(torch.zeros(1, 3, 4, 4), 0.5).shape == (1, 3, 4, 4)
    with pytest.raises(TypeError, match='config dict'):
        EDMPrecond('SongUNet', 4, 3)


def test_edm_loss_weight_at_sigma_data():
    loss = EDMLoss()
    assert float(loss.weight(0.5)) == pytest.approx(2 / 0.5**2)  # = 8: lambda(sd) = 2 / sd^2
    s = torch.tensor([0.01, 0.5, 3.0, 80.0])
    c_out = s * 0.5 / (s**2 + 0.25).sqrt()
    torch.testing.assert_close(loss.weight(s) * c_out**2, torch.ones(4))  # effective weight 1 (EDM Eq. 8)
    assert LOSSES.get('EDMLoss') is EDMLoss and LOSSES.get('VPLoss') is VPLoss and LOSSES.get('VELoss') is VELoss


@pytest.mark.parametrize('loss', [EDMLoss(), VPLoss(), VELoss()])
def test_losses_are_per_element_and_zero_for_ideal_denoiser(loss):
    images = X0.expand(3, -1, -1, -1).clone()
    calls = []

    def ideal(x, sigma, labels=None, augment_labels=None):
        calls.append((sigma, labels, augment_labels))
        return X0.expand_as(x)

    out = loss(ideal, images, labels=torch.tensor([1, 2, 3]))
    assert out.shape == images.shape and torch.all(out == 0)
    sigma, labels, aug = calls[0]
    assert sigma.shape == (3, ) and labels.tolist() == [1, 2, 3] and aug is None
    loss(ideal, images, augment_labels=torch.zeros(3, 9))
    assert calls[-1][2].shape == (3, 9)
