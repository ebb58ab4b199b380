# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Solver benchmark: overhead against a bare loop of denoiser calls, and accuracy on a Gaussian at NFE 2-10.

    python benchmarks/solvers.py [--device cpu|cuda] [--threads 1] [--batch 16] [--res 32] [--repeats 25] [--orders]

Part 1 (overhead): every solver samples a tiny denoiser (a two-layer conv net behind ``EDMPrecond``) and its wall
time is divided by the time of a bare loop that makes the same denoiser calls (replaying the solver's inputs): the
median over repeats of the ratio of back-to-back runs (paired, so slow phases of a shared host cancel; the bare loop
does no arithmetic at all, so the ratio is the whole cost of the solver's own work). Goal: <= 1.02. On the CPU the
ratio of this thread's CPU time is printed too: with one torch thread it does not count time lost to other
processes, which makes wall ratios noisy on a shared host.

Part 2 (accuracy): data ~ N(mu, diag(s^2)), ideal denoiser ``D(x, s) = (s^2 x + sigma^2 mu) / (s^2 + sigma^2)``;
RMS error of each solver's result against the closed-form probability-flow ODE solution, float64, at NFE 2..10
(sigma in [0.002, 80], EDM's polynomial rho = 7 schedule; logSNR for DPM-Solver++ as SFD uses it; no final
denoising step; flow solvers in rectified-flow time from t = 1e-3 to 1). ``--orders`` adds the convergence-order
table (error ratio when the step count doubles) that docs/benchmarks.md records.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdm.diffusion import (DiscreteDenoiser, EDMPrecond, as_velocity, create_diffusion,  # noqa: E402
                           schedules)
from kdm.solvers import (ddim, ddpm, dpm, dpmpp, edm_stochastic, euler, flow_euler, flow_heun, heun,  # noqa: E402
                         ipndm, rk45)


class TinyNet(nn.Module):
    """conv3x3 (C -> 64) - ReLU - conv3x3 (64 -> C), scaled by the noise label; EDM-family call (3.5k parameters,
    about 0.23 GFLOP per call at batch 16, 32x32). ReLU, not SiLU:
    the CPU SiLU kernel is several times slower on large activations, which would make the cost depend on the
    values the solver feeds in rather than on the number of calls."""

    def __init__(self, C=3, hidden=64):
        super().__init__()
        self.conv0 = nn.Conv2d(C, hidden, 3, padding=1)
        self.conv1 = nn.Conv2d(hidden, C, 3, padding=1)

    def forward(self, x, noise_labels, class_labels=None):
        h = self.conv1(torch.relu(self.conv0(x)))
        return h * torch.cos(noise_labels).reshape(-1, 1, 1, 1)


class TinyADM(nn.Module):
    """The same net with the ADM call ``net(x, timesteps)`` and 2C outputs (learned sigma)."""

    def __init__(self, C=3, hidden=64):
        super().__init__()
        self.in_channels, self.image_size = C, 32
        self.conv0 = nn.Conv2d(C, hidden, 3, padding=1)
        self.conv1 = nn.Conv2d(hidden, 2 * C, 3, padding=1)

    def forward(self, x, timesteps, y=None):
        return self.conv1(torch.relu(self.conv0(x))).clamp(-1, 1)


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def _time(fn, device):
    """(wall seconds, CPU seconds of this thread); with one torch thread on the CPU the latter is immune to other
    processes competing for the cores."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.thread_time()
    fn()
    _sync(device)
    return time.perf_counter() - t0, time.thread_time() - c0


class Recorder:
    """Calls ``fn`` and keeps every call's arguments, so the bare loop can replay exactly the solver's inputs (CPU
    kernels are not value-blind: e.g. SiLU on large activations is much slower than on small ones)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.fn(*args, **kwargs)


def overhead_table(device, batch, res, repeats):
    torch.manual_seed(0)
    den = EDMPrecond(TinyNet(), res, 3).to(device).eval()
    adm = TinyADM().to(device).eval()
    diffusion = create_diffusion('cosine', 1000)
    x = torch.randn(batch, 3, res, res, device=device) * 80
    sig = schedules.polynomial(11, 0.002, 80.0)  # 11 stamps + 0: 11 steps
    times = schedules.flow_uniform(10)
    vel = as_velocity(den, 'rf')
    # name, solver call taking the model, the model
    cases = [
        ('euler', lambda m: euler(m, x, sig), den),
        ('heun', lambda m: heun(m, x, sig), den),
        ('dpm', lambda m: dpm(m, x, sig), den),
        ('ipndm (4)', lambda m: ipndm(m, x, sig), den),
        ('dpmpp (3M)', lambda m: dpmpp(m, x, sig), den),
        ('edm_stochastic', lambda m: edm_stochastic(m, x, sig, S_churn=10), den),
        ('ddim (adm net)', lambda m: ddim(DiscreteDenoiser(m, diffusion, img_channels=3, img_resolution=res), x / 80,
                                          10), adm),
        ('ddpm (adm net)', lambda m: ddpm(DiscreteDenoiser(m, diffusion, img_channels=3, img_resolution=res), x / 80,
                                          10), adm),
        ('flow_euler', lambda m: flow_euler(m, x / 80, times), vel),
        ('flow_heun', lambda m: flow_heun(m, x / 80, times), vel),
    ]
    rows = []
    with torch.no_grad():
        for name, solve, model in cases:
            recorder = Recorder(model)
            torch.manual_seed(1)  # stochastic samplers draw the same noise in every run
            solve(recorder)  # warm-up, and the exact calls the solver makes
            calls = recorder.calls

            def bare(model=model, calls=calls):
                for args, kwargs in calls:
                    model(*args, **kwargs)

            def run(solve=solve, model=model):
                torch.manual_seed(1)
                solve(model)

            bare()
            t_bare, t_solver = [], []
            for i in range(repeats):  # alternate the order so neither side always runs first
                pair = (_time(bare, device), _time(run, device)) if i % 2 == 0 else tuple(
                    reversed((_time(run, device), _time(bare, device))))
                t_bare.append(pair[0])
                t_solver.append(pair[1])
            wall = sorted(s[0] / b[0] for s, b in zip(t_solver, t_bare))
            row = (name, len(calls), min(t[0] for t in t_solver) * 1e3, min(t[0] for t in t_bare) * 1e3,
                   wall[len(wall) // 2])
            if device.type == 'cpu':
                cpu = sorted(s[1] / b[1] for s, b in zip(t_solver, t_bare))
                row += (cpu[len(cpu) // 2], )
            rows.append(row)
    return rows


class Gaussian:

    def __init__(self, dim=64, batch=256, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.linspace(-0.5, 0.5, dim, dtype=torch.float64)
        self.s = torch.linspace(0.3, 1.0, dim, dtype=torch.float64)
        self.z = torch.randn(batch, dim, generator=g, dtype=torch.float64)

    def denoiser(self, x, sigma, cond=None):
        sg = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1)
        return (self.s**2 * x + sg**2 * self.mu) / (self.s**2 + sg**2)

    def exact(self, x_a, sigma_a, sigma_b):
        return self.mu + (x_a - self.mu) * torch.sqrt((self.s**2 + sigma_b**2) / (self.s**2 + sigma_a**2))

    def rms(self, out, ref):
        return (out - ref).pow(2).mean().sqrt().item()


SIGMA_MIN, SIGMA_MAX = 0.002, 80.0

SIGMA_SOLVERS = [
    # name, solver, knobs, schedule, NFE per step
    ('euler', euler, {}, 'polynomial', 1),
    ('heun', heun, {}, 'polynomial', 2),
    ('dpm', dpm, {}, 'polynomial', 2),
    ('ipndm (4)', ipndm, dict(max_order=4), 'polynomial', 1),
    ('dpmpp (2M)', dpmpp, dict(max_order=2), 'logsnr', 1),
    ('dpmpp (3M)', dpmpp, dict(max_order=3), 'logsnr', 1),
]


def sigma_error(g, solver, steps, schedule, **knobs):
    sig = schedules.get_schedule(schedule)(steps + 1, SIGMA_MIN, SIGMA_MAX, append_zero=False)
    x_a = g.z * SIGMA_MAX
    out = solver(g.denoiser, x_a, sig, **knobs)
    return g.rms(out, g.exact(x_a, SIGMA_MAX, SIGMA_MIN))


def flow_error(g, solver, steps, **knobs):
    eps = 1e-3
    sigma_a = (1 - eps) / eps
    x_a = g.z * sigma_a
    out = solver(as_velocity(g.denoiser, 'rf'), x_a * eps, schedules.flow_uniform(steps, eps=eps), **knobs)
    return g.rms(out, g.exact(x_a, sigma_a, 0.0))


def accuracy_table():
    g = Gaussian()
    nfes = list(range(2, 11))
    rows = []
    for name, solver, knobs, schedule, per in SIGMA_SOLVERS:
        cells = []
        for nfe in nfes:
            cells.append(sigma_error(g, solver, nfe // per, schedule, **knobs) if nfe % per == 0 else None)
        rows.append((name, cells))
    rows.append(('flow_euler', [flow_error(g, flow_euler, n) for n in nfes]))
    rows.append(('flow_heun', [flow_error(g, flow_heun, (n + 1) // 2) if n % 2 else None for n in nfes]))
    eps = 1e-3
    x_a = g.z * (1 - eps) / eps
    out, nfe = rk45(as_velocity(g.denoiser, 'rf'), x_a * eps, [eps, 1.0], return_nfe=True)
    rk = (nfe, g.rms(out, g.exact(x_a, (1 - eps) / eps, 0.0)))
    return nfes, rows, rk


def order_table():
    g = Gaussian(dim=8, batch=16)
    steps = [16, 32, 64, 128, 256]
    cases = [('euler', euler, {}, 'polynomial'), ('heun', heun, {}, 'polynomial'), ('dpm', dpm, {}, 'polynomial'),
             ('edm_stochastic (S_churn=0)', edm_stochastic, {}, 'polynomial')]
    cases += [(f'ipndm (max_order={k})', ipndm, dict(max_order=k), 'polynomial') for k in (1, 2, 3, 4)]
    cases += [(f'dpmpp (max_order={k})', dpmpp, dict(max_order=k), 'logsnr') for k in (1, 2, 3)]
    cases += [('dpmpp (3, predict_x0=False)', dpmpp, dict(max_order=3, predict_x0=False), 'logsnr'),
              ('dpmpp (3, taylor_d2=True)', dpmpp, dict(max_order=3, taylor_d2=True), 'polynomial'),
              ('dpmpp (3M) on polynomial', dpmpp, dict(max_order=3), 'polynomial')]
    rows = []
    for name, solver, knobs, schedule in cases:
        errs = [sigma_error(g, solver, n, schedule, **knobs) for n in steps]
        rows.append((name, schedule, [math.log2(a / b) for a, b in zip(errs, errs[1:])]))
    for name, solver in (('flow_euler', flow_euler), ('flow_heun', flow_heun)):
        errs = [flow_error(g, solver, n) for n in steps]
        rows.append((name, 'flow_uniform', [math.log2(a / b) for a, b in zip(errs, errs[1:])]))
    return steps, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--threads', type=int, default=1, help='CPU threads (1 keeps timings stable on shared hosts)')
    parser.add_argument('--res', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=25)
    parser.add_argument('--orders', action='store_true', help='also print the convergence-order table')
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'
    print(f'# Solver overhead: tiny conv denoiser, batch {args.batch}x3x{args.res}x{args.res}, {name}, '
          f'{args.repeats} paired repeats')
    cpu = device.type == 'cpu'
    print('| solver | NFE | solver ms (min) | bare loop ms (min) | wall ratio (median) |' +
          (' CPU-time ratio (median) |' if cpu else '') + '\n'
          '|---|---|---|---|---|' + ('---|' if cpu else ''))
    for row in overhead_table(device, args.batch, args.res, args.repeats):
        print('| {} | {} | {:.2f} | {:.2f} | {:.3f} |'.format(*row[:5]) + (' {:.3f} |'.format(row[5]) if cpu else ''))
    nfes, rows, rk = accuracy_table()
    print('\n# RMS error vs the Gaussian closed form (float64; - = NFE not reachable by that solver)')
    print('| solver | ' + ' | '.join(f'NFE {n}' for n in nfes) + ' |\n|---|' + '---|' * len(nfes))
    for name, cells in rows:
        print(f'| {name} | ' + ' | '.join('-' if c is None else f'{c:.2e}' for c in cells) + ' |')
    print(f'\nrk45 (rtol = atol = 1e-5): NFE {rk[0]}, RMS error {rk[1]:.2e}')
    if args.orders:
        steps, rows = order_table()
        print('\n# Measured convergence order log2(err(N) / err(2N))')
        print('| solver | schedule | ' + ' | '.join(f'{a}->{b}' for a, b in zip(steps, steps[1:])) + ' |')
        print('|---|---|' + '---|' * (len(steps) - 1))
        for name, schedule, orders in rows:
            print(f'| {name} | {schedule} | ' + ' | '.join(f'{o:.2f}' for o in orders) + ' |')


if __name__ == '__main__':
    main()
