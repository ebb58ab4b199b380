#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Prepare a DKDM pool once and save it (the reference's ``scripts/dynamic_prepare.py`` and ``.cache`` files).

    python tools/dkdm_prepare.py CONFIG --out FILE [--world-size W] [--seed S] [--device cuda] [--cfg-options ...]

Runs the teacher's "shuffle denoise" (``shared/spec/dkdm_adm.md`` 3.3) for ``world_size`` processes at once, i.e.
``round(rho * T) * batch * world_size`` entries with ``batch`` = ``model.batch_size`` of the config (per process),
and writes ``dict(pool_t, pool_x, meta)`` atomically. Train with ``--cfg-options model.pool_cache=FILE``; a cache
whose rho, global batch, steps or image shape differ from the training config is refused. Rank ``r`` of a run takes
rows ``[r N, (r + 1) N)``, as in the reference, so a cache serves any world size with the same global batch.
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any directory without install

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Prepare (and cache) the teacher pool of a DKDM config')
    parser.add_argument('config', help='a DKDM config, e.g. configs/methods/dkdm/cifar10_57m_rho0.4.py')
    parser.add_argument('--out', required=True, help='output file, e.g. checkpoints/dkdm/CIFAR10-Dynamic-0.4.pt')
    parser.add_argument('--world-size', type=int, default=1,
                        help='number of training processes the cache is for (the pool holds one slice of '
                        'round(rho*T)*batch entries per process); default 1')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the preparation (default 0)')
    parser.add_argument('--device', default=None, help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.rho=0.2 model.batch_size=64')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings

    from kdm.engine.errors import explain
    from kdm.models.distillers.dkdm import prepare_pool_cache, save_pool_cache
    from kdm.registry import MODELS
    try:
        if not osp.isfile(args.config):
            raise FileNotFoundError(2, 'config file not found', args.config)
        if args.world_size < 1:
            raise ValueError(f'--world-size must be >= 1, got {args.world_size}')
        cfg = Config.fromfile(args.config)
        cfg.merge_from_dict(args.cfg_options)
        if cfg.get('custom_imports'):
            import_modules_from_strings(**cfg.custom_imports)
        if cfg.model.get('type') != 'DKDM':
            raise ValueError(f"{args.config} is not a DKDM config (model.type = {cfg.model.get('type')!r})")
        DefaultScope.get_instance(f'dkdm_prepare_{time.time()}', scope_name=cfg.get('default_scope', 'kdm'))
        model_cfg = dict(cfg.model, pool_cache=None)
        device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        torch.manual_seed(args.seed)
        if device.type == 'cuda':
            torch.cuda.manual_seed_all(args.seed)
        model = MODELS.build(model_cfg)
        if model.variant == 'iterative':
            raise ValueError('the iterative variant has no pool to prepare (it starts from fresh noise)')
        n = model.local_pool_size * args.world_size
        gb = n * int(torch.tensor(model.img_shape).prod()) * 4 / 1e9
        print(f'DKDM pool: variant {model.variant}, rho {model.rho}, T {model.num_timesteps}, batch '
              f'{model.batch_size} x world size {args.world_size} -> {n:,} entries of {tuple(model.img_shape)} '
              f'({gb:.2f} GB), about {n * model.num_timesteps // 2:,} teacher evaluations on {device}', flush=True)

        from tqdm import tqdm
        bar = tqdm(total=None, unit='eval', unit_scale=True, dynamic_ncols=True, desc='shuffle denoise')

        def progress(done, total):
            if bar.total is None:
                bar.total = total
            bar.update(done - bar.n)

        start = time.time()
        pool_t, pool_x, meta = prepare_pool_cache(model, args.world_size, device, progress)
        bar.close()
        meta.update(seed=args.seed, config=osp.basename(args.config), teacher=str(cfg.model.teacher.get('path')),
                    created=time.strftime('%Y-%m-%d %H:%M:%S'))
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        save_pool_cache(args.out, pool_t, pool_x, meta)
        hist = torch.bincount(pool_t.cpu(), minlength=model.num_timesteps + 1)[1:model.num_timesteps]
        print(f'saved {args.out} ({osp.getsize(args.out) / 1e9:.2f} GB) in {time.time() - start:.0f} s; '
              f'pool timesteps {int(pool_t.min())}..{int(pool_t.max())}, mean {pool_t.float().mean():.1f} '
              f'(uniform on 1..T-1: {model.num_timesteps / 2:.1f}), entries per timestep {int(hist.min())}..'
              f'{int(hist.max())}')
    except (KeyError, TypeError, FileNotFoundError, ValueError, RuntimeError) as exc:
        message = explain(exc) or str(exc.args[0] if exc.args else exc)
        if os.environ.get('KDM_DEBUG'):
            raise
        print(f'kdm: error: {message}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
