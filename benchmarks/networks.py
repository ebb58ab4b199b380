#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Forward + backward time of every network at CIFAR size (32x32, batch 8), printed as a table.

    python benchmarks/networks.py [--device cpu|cuda] [--threads N] [--batch 8] [--repeats 3] [--only NAME ...]

Each network (reference configurations, see docs/teachers.md) gets one warm-up step, then ``--repeats`` timed steps
of ``loss = out.square().mean(); loss.backward()`` in train mode; the median is reported with the thread count and
the device, because CPU timings depend on both (and on other load of a shared host). ToyMLP runs on (batch, 2)
toy data. The markdown table it prints goes into docs/benchmarks.md.
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

import kdm.models.networks  # noqa: E402,F401 - registers the networks
from kdm.registry import MODELS  # noqa: E402

_DDPMPP = dict(type='SongUNet', img_resolution=32, in_channels=3, out_channels=3, model_channels=128)
_DKDM = dict(type='ADMUNet', image_size=32, in_channels=3, out_channels=6, attention_resolutions=(2, 4),
             channel_mult=(1, 2, 2, 2), num_heads=4, num_head_channels=32, use_scale_shift_norm=True,
             resblock_updown=True, use_new_attention_order=True, dropout=0.3)
# name: (config, call convention)
NETWORKS = {
    'SongUNet DDPM++ (EDM CIFAR-10)': (dict(_DDPMPP, augment_dim=9, channel_mult=[2, 2, 2], dropout=0.13), 'edm'),
    'SongUNet NCSN++ (EDM CIFAR-10)': (dict(_DDPMPP, augment_dim=9, channel_mult=[2, 2, 2], dropout=0.13,
                                            embedding_type='fourier', channel_mult_noise=2, encoder_type='residual',
                                            resample_filter=[1, 3, 3, 1]), 'edm'),
    'SongUNet SlimFlow 27.9M': (dict(_DDPMPP, channel_mult=[1, 2, 2], num_blocks=2, dropout=0.15), 'edm'),
    'SongUNet SlimFlow 3.4M': (dict(_DDPMPP, model_channels=64, channel_mult=[1, 1, 2], num_blocks=1,
                                    dropout=0.15), 'edm'),
    'DhariwalUNet SlimFlow-ImageNet 44.7M (32 px)': (dict(type='DhariwalUNet', img_resolution=32, in_channels=3,
                                                          out_channels=3, label_dim=1000, model_channels=128,
                                                          channel_mult=[1, 2, 2, 2], num_blocks=2,
                                                          attn_resolutions=[32, 16], dropout=0.13), 'edm_cond'),
    'ADMUNet DKDM 57M': (dict(_DKDM, model_channels=128, num_res_blocks=3), 'adm'),
    'ADMUNet DKDM 14M': (dict(_DKDM, model_channels=64, num_res_blocks=3), 'adm'),
    'EDM2UNet XS (32 px, 3 ch)': (dict(type='EDM2UNet', preset='xs', img_resolution=32, img_channels=3,
                                       label_dim=1000), 'edm2'),
    'ToyUNet (default, 6k)': (dict(type='ToyUNet', img_resolution=32, in_channels=3, out_channels=3), 'edm'),
    'ToyMLP (2-D data)': (dict(type='ToyMLP', in_channels=2), 'mlp'),
}


def make_inputs(kind, batch, device):
    g = torch.Generator().manual_seed(0)
    if kind == 'mlp':
        x = torch.randn(batch, 2, generator=g)
    else:
        x = torch.randn(batch, 3, 32, 32, generator=g)
    t = torch.rand(batch, generator=g)
    x, t = x.to(device), t.to(device)
    labels = torch.eye(1000, device=device)[torch.randint(1000, (batch, ), generator=g).to(device)]
    if kind == 'adm':
        return (x, (t * 999).long())
    if kind == 'edm_cond':
        return (x, t, labels)
    if kind == 'edm2':
        return (x, t, labels)
    return (x, t)


def time_network(cfg, kind, batch, repeats, device):
    torch.manual_seed(0)
    net = MODELS.build(dict(cfg)).to(device).train()
    params = sum(p.numel() for p in net.parameters())
    inputs = make_inputs(kind, batch, device)

    def step():
        net.zero_grad(set_to_none=True)
        net(*inputs).square().mean().backward()
        if device.type == 'cuda':
            torch.cuda.synchronize()

    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return params, statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--only', nargs='*', help='substrings of network names to run')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == 'cuda' else
             f'CPU, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores, load average '
             f'{os.getloadavg()[0]:.1f}')
    print(f'forward + backward, batch {args.batch}, 32x32, float32, train mode, median of {args.repeats} '
          f'after 1 warm-up, on {where}, torch {torch.__version__}\n')
    rows = []
    for name, (cfg, kind) in NETWORKS.items():
        if args.only and not any(s.lower() in name.lower() for s in args.only):
            continue
        params, sec = time_network(cfg, kind, args.batch, args.repeats, device)
        rows.append((name, params, sec))
        print(f'  {name:<46s} {params / 1e6:9.2f}M  {sec * 1000:10.1f} ms', flush=True)
    print('\n| network | parameters | fwd+bwd time (ms) |\n|---|---:|---:|')
    for name, params, sec in rows:
        print(f'| {name} | {params / 1e6:.2f}M | {sec * 1000:.1f} |')


if __name__ == '__main__':
    main()
