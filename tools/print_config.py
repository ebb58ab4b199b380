#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Print the fully merged config (after _base_ inheritance and --cfg-options), optionally building the model
to check it: ``python tools/print_config.py CONFIG [--cfg-options k=v] [--build]``."""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Print a merged kdm config')
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--build', action='store_true',
                        help='also build the model on the meta device and print its parameter counts')
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        print(f'kdm: error: config file not found: {args.config}', file=sys.stderr)
        return 2
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    print(cfg.pretty_text)
    if args.build:
        import torch
        from mmengine.registry import init_default_scope

        from kdm.registry import MODELS
        init_default_scope(cfg.get('default_scope', 'kdm'))
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
        for name, child in model.named_children():
            n = sum(p.numel() for p in child.parameters())
            print(f'{name:20s} {n / 1e6:10.3f} M parameters')
    return 0


if __name__ == '__main__':
    sys.exit(main())
