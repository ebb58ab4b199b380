#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Per-iteration overhead of kdm's Runner against a bare PyTorch loop doing the same computation.

Both train the same EDM toy denoiser (EDMPrecond around a ToyUNet) on the 16x16 digits with the same batch,
Adam optimiser and EMA update; the bare loop is ``for batch in loader: loss.backward(); opt.step(); ema.lerp_()``.
The kdm side is ``tools/train.py``'s Runner with the default runtime (logger, checkpoint hook, NaN guard,
per-iteration reseeding, resumable sampler). Runs alternate bare / kdm / bare / kdm ... in one process and the
script prints the median time per iteration of each and their ratio (goal <= 1.03).

    OMP_NUM_THREADS=1 python benchmarks/overhead.py [--iters 60] [--rounds 5] [--batch 64] [--channels 32] [--cpu]
    python benchmarks/overhead.py --device cuda --batch 512 --channels 128      (on a GPU)
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

from kdm.datasets import DigitsDataset  # noqa: E402
from kdm.diffusion import EDMLoss, EDMPrecond  # noqa: E402
from kdm.models.networks import ToyUNet  # noqa: E402
from kdm.registry import HOOKS, RUNNERS  # noqa: E402

CLOCK = time.perf_counter  # --cpu switches to the process CPU time (robust against other jobs on the machine)
DEVICE = 'cpu'  # --device; the Runner places the model on MMEngine's get_device() (CUDA when there is one)


def now() -> float:
    """The clock, after waiting for queued CUDA work so that an iteration's time includes its kernels."""
    if DEVICE.startswith('cuda'):
        torch.cuda.synchronize()
    return CLOCK()
CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'methods', 'edm', 'toy_digits.py')


@HOOKS.register_module()
class _IterClock(Hook):
    """Records the wall time of every training iteration (data loading included)."""
    priority = 'VERY_LOW'

    def __init__(self):
        self.times, self._t = [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self._t is None:
            self._t = now()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        t = now()
        self.times.append(t - self._t)
        self._t = t


def run_kdm(args, work_dir) -> list:
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'model.net.model.model_channels': args.channels, 'train_dataloader.batch_size': args.batch,
        'train_cfg.max_iters': args.iters, 'default_hooks.logger.interval': 50, 'custom_hooks': [],
        'default_hooks.checkpoint.interval': 10**9, 'log_level': 'WARNING'
    })
    cfg.work_dir = work_dir
    runner = RUNNERS.build(cfg)
    clock = _IterClock()
    runner.register_hook(clock)
    runner.train()
    return clock.times[args.warmup:]


def run_bare(args) -> list:
    torch.manual_seed(0)
    net = EDMPrecond(ToyUNet(16, 1, 1, model_channels=args.channels, channel_mult=(1, 2, 2), num_blocks=1),
                     img_resolution=16, img_channels=1).to(DEVICE)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = EDMLoss()
    loader = torch.utils.data.DataLoader(DigitsDataset(split='train'), batch_size=args.batch, shuffle=True,
                                         drop_last=True)
    times, it = [], 0
    t = now()
    while it < args.iters:
        for batch in loader:
            x = batch['img'].to(DEVICE, non_blocking=True)
            loss = loss_fn(net, x).reshape(x.shape[0], -1).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), net.parameters()):
                    pe.lerp_(p, 1e-3)
            t_end = now()
            times.append(t_end - t)
            t, it = t_end, it + 1
            if it == args.iters:
                break
    return times[args.warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=60)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--channels', type=int, default=32)
    parser.add_argument('--cpu', action='store_true', help='time process CPU seconds instead of wall seconds')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='device of the bare loop; the Runner uses CUDA whenever it is available')
    args = parser.parse_args()
    global CLOCK, DEVICE
    DEVICE = args.device
    if args.cpu:
        CLOCK = time.process_time
    bare, kdm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            bare.append(statistics.median(run_bare(args)))
            kdm.append(statistics.median(run_kdm(args, osp.join(tmp, f'r{r}'))))
            print(f'round {r}: bare {bare[-1] * 1e3:.2f} ms/iter, kdm {kdm[-1] * 1e3:.2f} ms/iter, '
                  f'ratio {kdm[-1] / bare[-1]:.3f}', flush=True)
    ratios = [k / b for k, b in zip(kdm, bare)]
    print(f'median over {args.rounds} rounds: bare {statistics.median(bare) * 1e3:.2f} ms/iter, '
          f'kdm {statistics.median(kdm) * 1e3:.2f} ms/iter, kdm/bare = {statistics.median(ratios):.3f} '
          f'(min {min(ratios):.3f}, max {max(ratios):.3f}); torch threads {torch.get_num_threads()}, '
          f'batch {args.batch}, ToyUNet channels {args.channels}, clock {"process CPU" if args.cpu else "wall"}, '
          f'device {DEVICE}')


if __name__ == '__main__':
    main()
