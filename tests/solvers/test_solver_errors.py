"""Bad input gives clear errors: names, orders, sigmas, flow times."""
import pytest

from kdm.diffusion import FlowDenoiser
from kdm.registry import SOLVERS
from kdm.solvers import dpm, dpmpp, euler, flow_euler, get_solver, heun, ipndm, rk45
from .gaussian import Gaussian

ALL = ['euler', 'heun', 'dpm', 'dpmpp', 'ipndm', 'edm_stochastic', 'ddpm', 'ddim', 'flow_euler', 'flow_heun', 'rk45']


def test_every_solver_is_registered_and_unknown_names_list_them():
    assert set(ALL) <= set(SOLVERS.module_dict)
    assert SOLVERS.get('heun') is heun
    with pytest.raises(KeyError) as err:
        get_solver('dpm_solver_3')
    for name in ALL:
        assert name in str(err.value)


@pytest.mark.parametrize('solver,bad', [(ipndm, 0), (ipndm, 5), (dpmpp, 0), (dpmpp, 4), (dpmpp, 2.5)])
def test_order_out_of_range(solver, bad):
    g = Gaussian()
    with pytest.raises(ValueError, match='max_order must be an integer in'):
        solver(g.denoiser, g.z, [2.0, 1.0], max_order=bad)


@pytest.mark.parametrize('sigmas,match', [([1.0, 2.0, 0.0], 'strictly decreasing'), ([1.0, 1.0, 0.0], 'strictly'),
                                          ([1.0, -0.5], 'non-negative'), ([1.0], 'at least 2'),
                                          ([[2.0, 1.0]], '1-D'), ([float('nan'), 0.0], 'finite'),
                                          ([float('inf'), 1.0], 'finite')])
def test_bad_sigmas(sigmas, match):
    g = Gaussian()
    for solver in (euler, heun, dpm, ipndm, dpmpp):
        with pytest.raises(ValueError, match=match):
            solver(g.denoiser, g.z, sigmas)


def test_bad_knobs_and_times():
    g = Gaussian()
    with pytest.raises(ValueError, match='r must lie'):
        dpm(g.denoiser, g.z, [2.0, 1.0], r=0.0)
    with pytest.raises(TypeError):
        euler(g.denoiser, g.z, [2.0, 1.0], order=2)  # unknown knobs are not swallowed
    v = lambda x, t: x  # noqa: E731
    with pytest.raises(ValueError, match='monotonic|strictly'):
        flow_euler(v, g.z, [0.1, 0.5, 0.3])
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        rk45(v, g.z, [0.0, 1.5])
    with pytest.raises(ValueError, match="'rf'"):
        flow_euler(v, g.z, [0.1, 0.5], convention='vp')
    fd = FlowDenoiser(lambda x, t: x, 'cud', img_channels=8, img_resolution=1)
    with pytest.raises(ValueError, match="'cud' convention"):
        flow_euler(fd, g.z, [0.1, 0.5])
