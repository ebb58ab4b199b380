#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Train a kdm model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
    tools/dist_train.sh CONFIG NUM_GPUS [args]        # torchrun, --launcher pytorch
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any directory without install

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a kdm model (teacher training or distillation)')
    parser.add_argument('config', help='config file, e.g. configs/methods/dkdm/cifar10_57m_rho0.4.py')
    parser.add_argument('--work-dir', help='directory for logs, checkpoints and sample grids '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or from the latest checkpoint of the work dir if no path is given')
    parser.add_argument('--amp', action='store_true', help='mixed precision (AmpOptimWrapper) for every network')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.rho=0.2 train_dataloader.batch_size=64')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='how the processes were started (dist_train.sh uses pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args) -> Config:
    """Load the config and apply the command-line overrides (OpenMMLab conventions)."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(2, 'config file not found', args.config)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        import torch

        from kdm.engine.errors import ConfigError
        if not torch.cuda.is_available():  # MMEngine's AmpOptimWrapper asserts a CUDA/NPU/MLU/MUSA device
            raise ConfigError('--amp needs a CUDA device (MMEngine\'s AmpOptimWrapper); none is available, '
                              'train in float32 without --amp')
        set_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def set_amp(cfg: Config) -> None:
    """Turn every optim wrapper of the config (single or one per network) into an AmpOptimWrapper."""
    ow = cfg.optim_wrapper
    targets = [v for k, v in ow.items() if isinstance(v, dict) and 'optimizer' in v] if 'optimizer' not in ow \
        else [ow]
    for w in targets:
        if w.get('type', 'OptimWrapper') == 'OptimWrapper':
            w['type'] = 'AmpOptimWrapper'
            w.setdefault('loss_scale', 'dynamic')


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.runner import Runner

    from kdm.engine.errors import explain
    from kdm.registry import RUNNERS
    try:
        cfg = build_config(args)
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
        runner.train()
    except (KeyError, TypeError, FileNotFoundError, ValueError, RuntimeError, FloatingPointError) as exc:
        message = explain(exc)
        if message is None or os.environ.get('KDM_DEBUG'):
            raise
        print(f'kdm: error: {message}', file=sys.stderr)
        return 2
    from kdm.engine.launcher import shutdown_dist
    shutdown_dist()  # all ranks finished: tear gloo/nccl down before the interpreter does
    return 0


if __name__ == '__main__':
    sys.exit(main())
