#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Metric costs, measured in one run (results go to docs/benchmarks.md, section Metrics).

1. Feature extraction: images per second of kdm's ``FIDInceptionV3`` (uint8 in, TF1 resize, pool + logits +
   spatial features out) divided by a bare torchvision Inception-v3 loop on the same uint8 images (float
   conversion, ``F.interpolate`` to 299, normalisation, forward) with the same batch size. Goal >= 1.0.
   Rounds alternate between the two; the best round of each counts.
2. Fréchet distance at 2048-d: ``scipy.linalg.sqrtm`` (the reported path) vs the symmetric eigen path, with their
   relative difference.

    python benchmarks/metrics.py [--images 32] [--batch 16] [--rounds 3] [--device cpu|cuda]

Random-initialised weights (timing does not depend on the values); nothing is downloaded.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=32, help='images per round')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--resolution', type=int, default=32, help='input size (CIFAR-10: 32)')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--fd-dim', type=int, default=2048)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return p.parse_args(argv)


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def bench_features(args):
    import torchvision

    from kdm.evaluation.detectors import FIDInceptionV3
    device = torch.device(args.device)
    ours = FIDInceptionV3(random_init=True, batch_size=args.batch).to(device)
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    tv = tv.eval().to(device)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, args.resolution, args.resolution), dtype=torch.uint8,
                           generator=gen)

    def run_ours():
        with torch.inference_mode():
            out = ours(images)
        return out['pool']

    def run_tv():
        outs = []
        with torch.inference_mode():
            for start in range(0, len(images), args.batch):
                x = images[start:start + args.batch].to(device).float()
                x = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
                outs.append(tv((x - 128) / 128))
        return torch.cat(outs)

    run_ours(), run_tv()  # warm-up
    t_ours, t_tv = [], []
    for _ in range(args.rounds):
        for fn, acc in ((run_ours, t_ours), (run_tv, t_tv)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            acc.append(time.perf_counter() - t0)
    ips_ours, ips_tv = args.images / min(t_ours), args.images / min(t_tv)
    return ips_ours, ips_tv


def bench_fd(dim: int):
    from kdm.evaluation.fid import frechet_distance
    rs = np.random.RandomState(0)
    n = dim * 2
    a = rs.randn(n, dim) @ (rs.randn(dim, dim) / np.sqrt(dim))
    b = rs.randn(n, dim) @ (rs.randn(dim, dim) / np.sqrt(dim)) + 0.1
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    out = {}
    for method in ('scipy', 'eigen'):
        t0 = time.perf_counter()
        value = frechet_distance(mu1, s1, mu2, s2, method)
        out[method] = (time.perf_counter() - t0, value)
    return out


def main(argv=None):
    args = parse_args(argv)
    print(f'device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads')
    ips_ours, ips_tv = bench_features(args)
    print(f'feature extraction ({args.images} images {args.resolution}x{args.resolution}, batch {args.batch}, best of '
          f'{args.rounds}): kdm FIDInceptionV3 {ips_ours:.2f} img/s, bare torchvision Inception-v3 loop '
          f'{ips_tv:.2f} img/s -> ratio {ips_ours / ips_tv:.2f} (goal >= 1.0)')
    fd = bench_fd(args.fd_dim)
    (ts, vs), (te, ve) = fd['scipy'], fd['eigen']
    print(f'Frechet distance {args.fd_dim}-d: scipy sqrtm {ts:.2f} s, eigen {te:.2f} s ({ts / te:.1f}x faster), '
          f'values {vs:.6f} / {ve:.6f}, relative difference {abs(vs - ve) / abs(vs):.1e}')


if __name__ == '__main__':
    main()
