#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Compute reference statistics of a real dataset for FID / sFID (and features for KID / PRDC).

    python tools/fid_ref.py SOURCE --out refs/cifar10-train.npz [--features] [--detector PATH]
    python tools/fid_ref.py --config CFG [--dataset-key train_dataloader.dataset] --out REF.npz
    python tools/fid_ref.py data/digits.npz --detector-type digits --detector clf.pth --out digits_ref.npz

SOURCE is an image folder, an EDM dataset zip, an ADM/DKDM ``.npz`` batch (``arr_0``) or a CIFAR-10 python folder.
The output is kdm's reference npz: ``mu, sigma`` (2048-d Inception pool features, float64, covariance with N − 1 as
EDM's ``fid.py ref``), ``mu_s, sigma_s`` (the ADM evaluator's 2023-d sFID features), optionally ``features``
(float32, for KID / PRDC), and ``kdm_meta`` (detector, weights SHA-256, preprocessing, image count, source), so a
metric refuses statistics of another detector. EDM's and ADM's scripts read the same file (``mu``/``sigma``).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any directory without install


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Reference statistics (mu, sigma, mu_s, sigma_s, features) of real data')
    p.add_argument('source', nargs='?', help='image folder, EDM zip, ADM npz or CIFAR-10 folder')
    p.add_argument('--out', required=True, help='output .npz')
    p.add_argument('--config', help='take the dataset from this config instead of SOURCE')
    p.add_argument('--dataset-key', default='train_dataloader.dataset', help='dotted config key of the dataset')
    p.add_argument('--split', default='train', help='CIFAR-10 split when SOURCE is a CIFAR-10 folder')
    p.add_argument('--detector', help='detector weights (Inception .pth/.pt, or the digits classifier .pth)')
    p.add_argument('--detector-type', choices=['inception', 'digits'], default='inception')
    p.add_argument('--features', action='store_true', help='also store all pool features (for KID and PRDC)')
    p.add_argument('--no-spatial', action='store_true', help='skip the sFID statistics (Inception only)')
    p.add_argument('--max-images', type=int, help='use a seeded random subset of this many images')
    p.add_argument('--seed', type=int, default=0, help='seed of the subset')
    p.add_argument('--batch-size', type=int, default=250)
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if (args.source is None) == (args.config is None):
        p.error('give exactly one of SOURCE or --config')
    return args


def dataset_from_config(path: str, key: str):
    from mmengine.config import Config
    if not osp.isfile(path):
        raise FileNotFoundError(2, 'config file not found', path)
    node = Config.fromfile(path)
    for part in key.split('.'):
        if part not in node:
            raise KeyError(f'{path} has no key {key}')
        node = node[part]
    return dict(node)


def compute_reference(source, detector, names, batch_size=250, max_images=None, seed=0, keep_features=False,
                      split='train'):
    """Statistics of ``source`` through ``detector``; returns (dict of arrays, number of images, source text)."""
    import numpy as np
    from mmengine.dist import collect_results, get_dist_info, is_main_process

    from kdm.evaluation.base import FeatureStats, as_numpy_features
    from kdm.evaluation.image_sources import describe_source, iter_uint8_batches, open_image_source, subset_indices
    ds = open_image_source(source, split=split)
    idx = subset_indices(len(ds), max_images, seed)
    rank, world = get_dist_info()
    stats = {n: FeatureStats(detector.feature_dims[n]) for n in names}
    parts = []
    title = f'reference statistics of {len(idx)} images from {describe_source(source)}' if rank == 0 else None
    for bidx, imgs in iter_uint8_batches(ds, idx[rank::world], batch_size, title):
        out = detector(imgs, features=tuple(names))
        for n in names:
            stats[n].update(out[n])
        if keep_features:
            parts.append(dict(index=np.asarray(bidx), pool=as_numpy_features(out['pool'])))
    arrays = {}
    for n in names:
        stats[n].all_reduce()
        mu, sigma = stats[n].mean_cov(ddof=1)
        suffix = '' if n == 'pool' else '_s'
        arrays[f'mu{suffix}'], arrays[f'sigma{suffix}'] = mu, sigma
    if keep_features:
        gathered = collect_results(parts, len(idx), device='cpu') if world > 1 else parts
        if is_main_process():
            order = np.argsort(np.concatenate([p['index'] for p in gathered]))
            arrays['features'] = np.concatenate([p['pool'] for p in gathered])[order]
    return arrays, len(idx), describe_source(source)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.dist import is_main_process

    import kdm.evaluation  # noqa: F401
    from kdm.evaluation.detectors import get_detector
    from kdm.evaluation.ref_stats import save_reference
    try:
        if args.launcher != 'none':
            from kdm.engine.launcher import init_dist
            init_dist(args.launcher)
        source = dataset_from_config(args.config, args.dataset_key) if args.config else args.source
        det_cfg = (dict(type='DigitsClassifier', weights=args.detector) if args.detector_type == 'digits'
                   else dict(type='FIDInceptionV3', weights=args.detector))
        detector = get_detector(det_cfg)
        names = ['pool'] + (['spatial'] if 'spatial' in detector.feature_dims and not args.no_spatial else [])
        arrays, n, desc = compute_reference(source, detector, names, args.batch_size, args.max_images, args.seed,
                                            args.features, args.split)
    except (FileNotFoundError, ValueError, KeyError, ImportError) as exc:
        if os.environ.get('KDM_DEBUG'):
            raise
        print(f'kdm: error: {exc}', file=sys.stderr)
        return 2
    if is_main_process():
        meta = dict(detector.protocol, num_images=n, source=desc, ddof=1, subset_seed=args.seed
                    if args.max_images else None, features=sorted(arrays))
        save_reference(args.out, meta=meta, **arrays)
        print(f'wrote {args.out}: ' + ', '.join(f'{k} {tuple(v.shape)}' for k, v in arrays.items()) +
              f' from {n} images')
    from kdm.engine.launcher import shutdown_dist
    shutdown_dist()
    return 0


if __name__ == '__main__':
    sys.exit(main())
