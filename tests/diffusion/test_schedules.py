"""Step schedules (spec sfd_solvers.md 4, sid_edm.md 2.7)."""
import math

import numpy as np
import pytest
import torch

from kdm.diffusion import create_diffusion
from kdm.diffusion.schedules import (DiscreteTimeTable, discrete, flow_rho, flow_uniform, get_schedule, logsnr,
                                     polynomial, respaced, time_uniform)
from kdm.registry import SCHEDULES


def test_karras_matches_edm_n18():
    sig = get_schedule('karras')(18, 0.002, 80, 7)
    expect = [80, 57.59, 40.79, 28.37, 19.35, 12.91, 8.401, 5.315, 3.257, 1.923, 1.088, 0.5853, 0.2964, 0.1395,
              0.0599, 0.0229, 0.0075, 0.002, 0]
    assert sig.dtype == torch.float64 and len(sig) == 19
    np.testing.assert_allclose(sig.numpy(), expect, rtol=6e-4, atol=5e-5)  # the spec prints 3-4 digits
    assert get_schedule('polynomial') is get_schedule('karras')


def test_sfd_student_teacher_refinement():
    student = polynomial(4, 0.006, 80, append_zero=False)
    np.testing.assert_allclose(student.numpy(), [80, 10.93, 0.670, 0.006], rtol=2e-3)
    teacher = polynomial(13, 0.006, 80, append_zero=False)
    np.testing.assert_allclose(teacher.numpy()[:5], [80, 51.16, 31.73, 19.00, 10.93], rtol=2e-3)
    diffusion = create_diffusion('linear', 1000)
    for name, kw in (('polynomial', {}), ('logsnr', {}), ('time_uniform', {}), ('time_uniform', dict(rho=2.0)),
                     ('discrete', dict(diffusion=diffusion))):
        fn = get_schedule(name)
        s = fn(4, 0.1, 14.0, append_zero=False, **kw)
        t = fn(13, 0.1, 14.0, append_zero=False, **kw)  # K = M + 1 = 4 teacher sub-steps per student interval
        np.testing.assert_allclose(t.numpy()[::4], s.numpy(), rtol=1e-9, err_msg=name)
        two = fn(2, float(s[1]), float(s[0]), append_zero=False, **kw)  # 2-stamp student step reproduces the ends
        np.testing.assert_allclose(two.numpy(), s.numpy()[:2], rtol=1e-9, err_msg=name)


def test_closed_forms():
    np.testing.assert_allclose(logsnr(5, 0.01, 100, append_zero=False).numpy(), [100, 10, 1, 0.1, 0.01], rtol=1e-12)
    tu = time_uniform(6, 0.002, 80, append_zero=False)
    assert tu[0].item() == pytest.approx(80) and tu[-1].item() == pytest.approx(0.002)
    # rho = 1 is uniform in the VP time tau
    eps_s = 1e-3
    vp_d = 2 * (math.log(0.002**2 + 1) / eps_s - math.log(80**2 + 1)) / (eps_s - 1)
    vp_min = math.log(80**2 + 1) - 0.5 * vp_d
    tau = [(-vp_min + math.sqrt(vp_min**2 + 2 * vp_d * math.log(1 + s**2))) / vp_d for s in tu.tolist()]
    np.testing.assert_allclose(np.diff(tau), np.diff(tau)[0], rtol=1e-6)
    assert polynomial(3, 0.1, 1.0, dtype=torch.float32, device='cpu').dtype == torch.float32
    assert polynomial(1, 0.1, 1.0).tolist() == [1.0, 0.0]


def test_discrete_schedule_table():
    diffusion = create_diffusion('linear', 1000)
    table = DiscreteTimeTable(diffusion.alphas_cumprod)
    taus = np.array([0.001, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(table.sigma_inv(table.sigma(taus)), taus, rtol=1e-9)
    np.testing.assert_allclose(table.sigma(np.arange(1, 1001) / 1000), diffusion.sigmas, rtol=1e-9)
    s = discrete(10, 0.1, 14.0, diffusion=diffusion, append_zero=True)
    assert s[0].item() == pytest.approx(14.0) and s[-2].item() == pytest.approx(0.1) and s[-1] == 0
    assert bool((s[:-1] > s[1:]).all())
    with pytest.raises(ValueError, match='diffusion='):
        discrete(4, 0.1, 14.0)


def test_respaced_levels():
    diffusion = create_diffusion('cosine', 1000)
    s = respaced(50, diffusion)
    assert len(s) == 51 and s[-1] == 0
    assert s[0].item() == pytest.approx(diffusion.sigmas[999]) and s[-2].item() == pytest.approx(diffusion.sigmas[0])
    assert s[1].item() == pytest.approx(diffusion.sigmas[979])


def test_flow_schedules():
    np.testing.assert_allclose(flow_uniform(4).numpy(), 1e-3 + np.arange(5) / 4 * (1 - 1e-3))
    np.testing.assert_allclose(flow_uniform(4, convention='cud').numpy(), [1, 0.75, 0.5, 0.25, 0])
    np.testing.assert_allclose(flow_uniform(2, eps=1e-3, convention='cud').numpy(), [1, 0.5005, 1e-3])
    np.testing.assert_allclose(flow_rho(4).numpy(), flow_uniform(4).numpy())
    g = flow_rho(3, rho=2.0).numpy()
    np.testing.assert_allclose(g, np.sqrt(1e-6 + np.arange(4) / 3 * (1 - 1e-6)))
    cud = flow_rho(3, rho=2.0, eps=1e-3, convention='cud').numpy()
    assert cud[0] == pytest.approx(1.0) and cud[-1] == pytest.approx(1e-3) and (np.diff(cud) < 0).all()


def test_unknown_schedule_and_bad_ranges():
    with pytest.raises(KeyError, match='karras.*logsnr|valid schedules: .*karras'):
        get_schedule('cosine_karras')
    assert {'karras', 'polynomial', 'logsnr', 'time_uniform', 'discrete', 'flow_uniform'} <= set(SCHEDULES.module_dict)
    with pytest.raises(ValueError, match='sigma_min'):
        polynomial(5, 1.0, 0.5)
    with pytest.raises(ValueError, match='positive'):
        logsnr(5, 0.0, 80)
    with pytest.raises(ValueError, match='positive integer'):
        polynomial(0, 0.1, 1)
    with pytest.raises(ValueError, match='finite'):
        polynomial(4, 0.1, float('inf'))
    with pytest.raises(ValueError, match='eps'):
        flow_uniform(4, eps=1.5)
