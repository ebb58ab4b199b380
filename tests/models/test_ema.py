"""EMA schedules: constant, EDM half-life with ramp-up, EDM2 power function."""
import math

import pytest
import torch
from torch import nn

from kdm.models.ema import ConstantEMA, HalfLifeEMA, PowerEMA, power_std_to_exp


def _run(ema, values):
    src = nn.Linear(1, 1, bias=False)
    for v in values:
        src.weight.data.fill_(v)
        ema.update_parameters(src)
    return ema.module.weight.item()


def test_constant_ema_matches_recursion():
    net = nn.Linear(1, 1, bias=False)
    ema = ConstantEMA(net, momentum=0.1)
    values = [1.0, 2.0, 3.0, 4.0]
    ref = values[0]  # the first update copies
    for v in values[1:]:
        ref = 0.9 * ref + 0.1 * v
    assert _run(ema, values) == pytest.approx(ref)


def test_halflife_ema_is_edm_rule():
    net = nn.Linear(1, 1, bias=False)
    ema = HalfLifeEMA(net, batch_size=64, halflife_kimg=0.5, rampup_ratio=0.05)
    values = [float(i) for i in range(1, 30)]
    ref, nimg = None, 0
    for v in values:  # EDM training_loop.py: h = min(halflife, ramp * cur_nimg); beta = 0.5 ** (B / max(h, 1e-8))
        h = min(500.0, nimg * 0.05)
        beta = 0.5**(64 / max(h, 1e-8))
        ref = v if ref is None else ref * beta + (1 - beta) * v
        nimg += 64
    assert _run(ema, values) == pytest.approx(ref, rel=1e-6)
    assert ema.beta(10**9) == pytest.approx(0.5**(64 / 500))


def test_power_ema_exponent_and_profile():
    assert power_std_to_exp(0.05) == pytest.approx(16.97, abs=0.01)
    assert power_std_to_exp(0.10) == pytest.approx(6.94, abs=0.01)
    g = power_std_to_exp(0.07)
    assert math.sqrt((g + 1) / ((g + 2)**2 * (g + 3))) == pytest.approx(0.07)
    with pytest.raises(ValueError, match='std'):
        power_std_to_exp(0.5)
    ema = PowerEMA(nn.Linear(1, 1, bias=False), std=0.1)
    assert ema.beta(0) == 0.0  # first update copies
    values = [1.0, 5.0, 2.0, 7.0]
    ref = values[0]
    for t, v in enumerate(values[1:], start=2):
        beta = (1 - 1 / t)**(ema.gamma + 1)
        ref = beta * ref + (1 - beta) * v
    assert _run(ema, values) == pytest.approx(ref)


def test_ema_counter_is_in_state_dict():
    ema = ConstantEMA(nn.Linear(2, 2))
    ema.update_parameters(nn.Linear(2, 2))
    sd = ema.state_dict()
    assert int(sd['steps']) == 1
    fresh = ConstantEMA(nn.Linear(2, 2))
    fresh.load_state_dict(sd)
    assert int(fresh.steps) == 1 and torch.equal(fresh.module.weight, ema.module.weight)
