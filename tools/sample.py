#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Generate images with a trained model: PNG files, an ADM-format ``.npz`` batch and a grid image.

    python tools/sample.py CONFIG CKPT [--seeds 0-63] [--outdir DIR] [--ema ema] [--labels-cycle 10]
    torchrun --nproc_per_node N tools/sample.py CONFIG CKPT --launcher pytorch ...

Writes ``DIR/images/<seed:06d>.png`` (one file per seed), ``DIR/samples_<N>x<H>x<W>x<C>.npz`` (``arr_0`` uint8 NHWC,
plus ``arr_1`` int64 labels for a class-conditional model: the format of ADM's ``image_sample.py`` and of
``tools/test.py --samples``) and ``DIR/grid.png`` (the first ``--grid`` images). Image ``i`` starts from the noise
of seed ``i``, so the files do not depend on the batch size or the number of processes.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any directory without install

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Sample images from a trained kdm model')
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint to load')
    p.add_argument('--seeds', default='0-63', help="per-image seeds, e.g. '0-49999' (default 0-63)")
    p.add_argument('--outdir', help='output folder (default: work_dirs/<config name>/samples)')
    p.add_argument('--batch-size', type=int, default=64, help='images per process and batch')
    p.add_argument('--ema', help="EMA to sample with (model.sample_ema); 'none' = raw weights")
    p.add_argument('--class-label', type=int, default=-1, help='class of every image (conditional models)')
    p.add_argument('--labels-cycle', type=int, help='image i gets class seed %% K (balanced conditional set)')
    p.add_argument('--grid', type=int, default=64, help='images in grid.png (0: no grid)')
    p.add_argument('--nrow', type=int, help='images per grid row (default: sqrt)')
    p.add_argument('--no-png', action='store_true', help='do not write one PNG per image')
    p.add_argument('--no-npz', action='store_true', help='do not write the npz batch')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, help='override config keys')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args) -> Config:
    for path, what in ((args.config, 'config file'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(2, f'{what} not found', path)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from, cfg.resume = args.checkpoint, False
    if args.ema is not None:
        cfg.model.sample_ema = None if args.ema.lower() == 'none' else args.ema
    loader = dict(cfg.get('test_dataloader') or dict(
        num_workers=0, collate_fn=dict(type='default_collate')))
    loader.update(batch_size=args.batch_size,
                  sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
                  dataset=dict(type='SeedDataset', seeds=args.seeds, label=args.class_label,
                               labels_cycle=args.labels_cycle))
    for key in ('test_dataloader', 'test_cfg', 'test_evaluator', 'val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg.pop(key, None)  # only the model is needed; the sampling loop is below
    cfg.custom_hooks = []
    return cfg, loader


def save_png(img, path: str) -> None:
    from PIL import Image
    arr = img.permute(1, 2, 0).numpy()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from mmengine.dist import collect_results, get_dist_info, is_main_process
    from mmengine.runner import Runner
    from mmengine.utils import ProgressBar

    from kdm.registry import RUNNERS
    cfg, loader_cfg = build_config(args)
    outdir = args.outdir or osp.join(cfg.work_dir, 'samples')
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    runner.load_or_resume()
    import kdm.datasets  # noqa: F401 - SeedDataset
    loader = Runner.build_dataloader(loader_cfg)
    rank, world = get_dist_info()
    img_dir = osp.join(outdir, 'images')
    if not args.no_png:
        os.makedirs(img_dir, exist_ok=True)
    n_total = len(loader.dataset)
    bar = ProgressBar(n_total) if rank == 0 else None
    mine = []
    model = runner.model
    model.eval()
    with torch.no_grad():
        for batch in loader:
            for s in model.test_step(batch):
                fake = s['fake'].cpu()
                if not args.no_png:
                    save_png(fake, osp.join(img_dir, f"{int(s['seed']):06d}.png"))
                mine.append(dict(seed=int(s['seed']), label=int(s['label']), fake=fake))
            if bar is not None:
                bar.update(len(batch['seed']) * world)
    parts = collect_results(mine, n_total, device='cpu') if world > 1 else mine
    if is_main_process():
        print()
        parts = sorted(parts, key=lambda s: s['seed'])
        images = torch.stack([s['fake'] for s in parts])  # (N, C, H, W) uint8
        labels = [s['label'] for s in parts]
        os.makedirs(outdir, exist_ok=True)
        if not args.no_npz:
            from kdm.datasets.npz import save_npz_batch
            n, c, h, w = images.shape
            path = osp.join(outdir, f'samples_{n}x{h}x{w}x{c}.npz')
            conditional = any(label >= 0 for label in labels)
            save_npz_batch(path, images.permute(0, 2, 3, 1).contiguous().numpy(),
                           torch.tensor(labels).numpy() if conditional else None)
            print(f'wrote {path}')
        if args.grid > 0:
            import torchvision
            k = min(args.grid, len(images))
            nrow = args.nrow or max(1, int(round(k ** 0.5)))
            grid = torchvision.utils.make_grid(images[:k].float() / 255, nrow=nrow, padding=2, pad_value=1.0)
            torchvision.utils.save_image(grid, osp.join(outdir, 'grid.png'))
            print(f"wrote {osp.join(outdir, 'grid.png')}")
        if not args.no_png:
            print(f'wrote {len(images)} PNGs to {img_dir}')
    from kdm.engine.launcher import shutdown_dist
    shutdown_dist()
    return 0


if __name__ == '__main__':
    sys.exit(main())
