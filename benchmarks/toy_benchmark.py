#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The toy benchmark every method reports into (issue 7): 16x16 digits, CPU, one run.

1. The quickstart pipeline (``tools/quickstart.py``: detector, EDM class-conditional teacher, ADM teacher, every
   distiller), scored with more samples and with the teacher also at 1, 2 and 4 NFE (Euler) next to its full
   35-NFE Heun; columns: parameters, NFE, FD in the digits classifier's feature space against the held-out
   digits, class accuracy of conditional samples, training wall time.
2. Each method's own target check (its issue's "toy benchmark target"): DKDM runs ``benchmarks/dkdm_toy.py`` (a
   student of half the teacher's size, data-free, against the teacher at the same sampler and against the data-free
   synthetic-dataset baseline trained for the same iterations).

Writes ``<work-dir>/toy_benchmark.md`` (the table for ``docs/benchmarks.md``) and prints it.

    python benchmarks/toy_benchmark.py [--work-dir work_dirs/toy_benchmark] [--num-samples 1000] [--dkdm-iters 5000]
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))
sys.path.insert(0, osp.join(ROOT, 'benchmarks'))

import quickstart  # noqa: E402  (tools/quickstart.py)

EXTRA_ROWS = [
    quickstart.Row('EDM teacher, Euler 2 steps', 'teacher', 2, {'model.solver': 'euler', 'model.num_steps': 2},
                   role='teacher'),
    quickstart.Row('EDM teacher, Euler 1 step', 'teacher', 1, {'model.solver': 'euler', 'model.num_steps': 1},
                   role='teacher'),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/toy_benchmark')
    p.add_argument('--num-samples', type=int, default=1000)
    p.add_argument('--dkdm-iters', type=int, default=5000, help='iterations of the DKDM target check')
    p.add_argument('--dkdm-work-dir', default='work_dirs/dkdm_toy',
                   help='work dir of benchmarks/dkdm_toy.py (its finished stages are reused)')
    p.add_argument('--skip-dkdm-target', action='store_true', help='only the quickstart table')
    args = p.parse_args(argv)
    quickstart.ROWS = quickstart.ROWS[:2] + EXTRA_ROWS + quickstart.ROWS[2:]
    quickstart.main(['--work-dir', args.work_dir, '--num-samples', str(args.num_samples)])
    table = open(osp.join(args.work_dir, 'metrics.md')).read().split('\n', 2)[2].replace('![grid](grid.png)', '')
    lines = ['### Quickstart models', '', table.strip() + f' Grid: {args.work_dir}/grid.png.', '']
    if not args.skip_dkdm_target:
        import dkdm_toy
        dkdm_dir = osp.join(ROOT, args.dkdm_work_dir)
        dkdm_toy.main(['--iters', str(args.dkdm_iters), '--work-dir', args.dkdm_work_dir, '--parallel',
                       '--threads', '1'])
        res = json.load(open(osp.join(dkdm_dir, f'results_{args.dkdm_iters}.json')))
        lines += ['### DKDM target (issue 8)', '', open(osp.join(dkdm_dir, f'results_{args.dkdm_iters}.md')).read()]
        verdict = 'met' if res['target_ratio_met'] and res['target_beats_baseline'] else 'not met'
        lines.append(f'DKDM toy-benchmark target: **{verdict}** (FD ratio {res["dkdm_over_teacher"]:.2f}, '
                     f'baseline beaten: {res["target_beats_baseline"]}).')
    text = '\n'.join(lines)
    with open(osp.join(args.work_dir, 'toy_benchmark.md'), 'w') as f:
        f.write(text + '\n')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
