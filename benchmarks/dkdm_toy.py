#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""DKDM on the 16x16 digits: teacher vs DKDM student vs the data-free synthetic-dataset baseline (CPU, minutes).

    python benchmarks/dkdm_toy.py [--iters 5000] [--work-dir work_dirs/dkdm_toy] [--seeds 0-999] [--force]

Stages (each reused when its output exists, unless --force):

1. the teacher: ``configs/methods/ddpm/toy_digits.py`` (ADM-style, 1.37M parameters, T = 1000, learned variance),
   trained into ``work_dirs/ddpm_toy_digits`` if missing;
2. the detector: the digits classifier of ``tools/train_detector.py``;
3. the synthetic dataset of the baseline: 1,438 teacher samples (the size of the real training split) with the
   100-step ancestral sampler (``tools/sample.py``), as the paper does for CelebA / ImageNet;
4. DKDM (``configs/methods/dkdm/toy_digits_dkdm.py``, a 714K-parameter student, dynamic pool rho = 0.4);
5. the baseline (``toy_digits_baseline_datafree.py``: the same student trained with the hybrid loss on the synthetic
   set) for the same number of iterations, batch, learning rate and EMA;
6. FD in the digits classifier's feature space (64-d) of ``--seeds`` samples of each model against the 359 held-out
   digits, all with the same 50-step respaced ancestral sampler (``tools/test.py``).

Target (issue 8): FD(DKDM) <= 1.2 x FD(teacher) and FD(DKDM) < FD(baseline). Prints a table and writes
``<work-dir>/results_<iters>.json`` and ``results_<iters>.md``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

TEACHER_CFG = 'configs/methods/ddpm/toy_digits.py'
DKDM_CFG = 'configs/methods/dkdm/toy_digits_dkdm.py'
BASELINE_CFG = 'configs/methods/dkdm/toy_digits_baseline_datafree.py'
DETECTOR = 'work_dirs/detectors/digits_classifier.pth'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='DKDM toy benchmark on the digits (CPU)')
    p.add_argument('--iters', type=int, default=5000, help='training iterations of DKDM and of the baseline')
    p.add_argument('--work-dir', default='work_dirs/dkdm_toy')
    p.add_argument('--teacher', default='work_dirs/ddpm_toy_digits/iter_3000.pth',
                   help='teacher checkpoint (trained with configs/methods/ddpm/toy_digits.py when missing)')
    p.add_argument('--seeds', default='0-999', help='evaluation seeds (one sample each)')
    p.add_argument('--synthetic-steps', default='100', help='sampler steps of the synthetic dataset (paper: 100)')
    p.add_argument('--threads', type=int, default=None, help='OMP threads of each stage (default: all cores)')
    p.add_argument('--force', action='store_true', help='redo the DKDM and baseline stages and the evaluation')
    p.add_argument('--parallel', action='store_true',
                   help='train DKDM while the synthetic set is sampled and the baseline trained (2+ cores)')
    return p.parse_args(argv)


def run(cmd, env, log):
    """Run a python tool from the repository root, stream its last lines to ``log``; raise on failure."""
    start = time.time()
    with open(log, 'w') as f:
        proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}); log {log}:\n{tail}')
    return time.time() - start


def count_params(cfg_path, key):
    import torch
    from mmengine.config import Config

    from kdm.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, cfg_path))
    with torch.device('meta'):
        net = MODELS.build(cfg.model[key])
    return sum(p.numel() for p in net.parameters())


def fd_of(json_path):
    with open(json_path) as f:
        metrics = json.load(f)['metrics']
    return float(metrics['FD_classifier'])


def main(argv=None) -> int:
    args = parse_args(argv)
    wd = osp.join(ROOT, args.work_dir)
    os.makedirs(wd, exist_ok=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    times = {}
    t_start = time.time()

    def stage(name, output, cmd, always=False):
        if osp.exists(osp.join(ROOT, output)) and not (always and args.force):
            print(f'[{name}] reusing {output}', flush=True)
            return
        print(f'[{name}] running: python {" ".join(cmd)}', flush=True)
        times[name] = run(cmd, env, osp.join(wd, f'{name}.log'))
        print(f'[{name}] done in {times[name]:.0f} s', flush=True)

    teacher = args.teacher
    teacher_dir = osp.dirname(teacher)
    stage('teacher', teacher, ['tools/train.py', TEACHER_CFG, '--work-dir', teacher_dir])
    stage('detector', DETECTOR, ['tools/train_detector.py', '--out', DETECTOR])
    n_real = 1438  # DigitsDataset(split='train') with the default split
    synthetic = f'{args.work_dir}/teacher_samples/samples_{n_real}x16x16x1.npz'
    dkdm_ckpt = f'{args.work_dir}/dkdm/iter_{args.iters}.pth'
    base_ckpt = f'{args.work_dir}/baseline/iter_{args.iters}.pth'

    def baseline_chain():
        stage('synthetic', synthetic, ['tools/sample.py', TEACHER_CFG, teacher, '--seeds', f'0-{n_real - 1}',
                                       '--no-png', '--grid', '64', '--outdir', f'{args.work_dir}/teacher_samples',
                                       '--cfg-options', f'model.sample_steps={args.synthetic_steps}'])
        stage('baseline', base_ckpt, ['tools/train.py', BASELINE_CFG, '--work-dir', f'{args.work_dir}/baseline',
                                      '--cfg-options', f'train_cfg.max_iters={args.iters}',
                                      f'train_dataloader.dataset.path={synthetic}',
                                      f'default_hooks.checkpoint.interval={args.iters}', 'custom_hooks=[]'], True)

    def dkdm_chain():
        stage('dkdm', dkdm_ckpt, ['tools/train.py', DKDM_CFG, '--work-dir', f'{args.work_dir}/dkdm', '--cfg-options',
                                  f'train_cfg.max_iters={args.iters}', f'model.teacher.path={teacher}',
                                  f'default_hooks.checkpoint.interval={args.iters}', 'custom_hooks=[]'], True)

    def in_parallel(fns, label):
        import threading
        errors = []

        def guarded(fn):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - re-raised in the main thread
                errors.append(e)

        threads = [threading.Thread(target=guarded, args=(fn, )) for fn in fns]
        start = time.time()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise errors[0]
        times[label] = time.time() - start

    if args.parallel:
        in_parallel([dkdm_chain, baseline_chain], 'training (parallel)')
    else:
        baseline_chain()
        dkdm_chain()
    teacher_opt = ['--cfg-options', f'model.teacher.path={teacher}']
    evals = dict(teacher=(DKDM_CFG, dkdm_ckpt, ['--ema', 'teacher', *teacher_opt]),
                 dkdm=(DKDM_CFG, dkdm_ckpt, teacher_opt), baseline=(BASELINE_CFG, base_ckpt, []))
    fd = {}

    def evaluate(name):
        cfg, ckpt, extra = evals[name]
        out = f'{args.work_dir}/fd_{name}.json' if name == 'teacher' else f'{args.work_dir}/fd_{name}_{args.iters}.json'
        stage(f'eval_{name}', out, ['tools/test.py', cfg, ckpt, '--seeds', args.seeds, '--out', out, '--work-dir',
                                    f'{args.work_dir}/eval_{name}', *extra], True)
        fd[name] = fd_of(osp.join(ROOT, out))

    if args.parallel:
        in_parallel([lambda n=n: evaluate(n) for n in evals], 'evaluation (parallel)')
    else:
        for name in evals:
            evaluate(name)

    teacher_params = count_params(TEACHER_CFG, 'net')
    student_params = count_params(DKDM_CFG, 'student')
    ratio = fd['dkdm'] / fd['teacher']
    results = dict(iters=args.iters, seeds=args.seeds, teacher_params=teacher_params, student_params=student_params,
                   fd=fd, dkdm_over_teacher=ratio, target_ratio_met=ratio <= 1.2,
                   target_beats_baseline=fd['dkdm'] < fd['baseline'], stage_seconds=times)
    rows = [('model', 'params', 'training', 'sampler', 'FD (classifier)'),
            ('teacher', f'{teacher_params / 1e6:.2f}M', 'digits (3000 it)', 'DDPM-50', f"{fd['teacher']:.3f}"),
            ('DKDM student', f'{student_params / 1e6:.2f}M', f'data-free DKDM, {args.iters} it', 'DDPM-50',
             f"{fd['dkdm']:.3f}"),
            ('baseline student', f'{student_params / 1e6:.2f}M', f'1,438 teacher samples, {args.iters} it',
             'DDPM-50', f"{fd['baseline']:.3f}")]
    md = ['| ' + ' | '.join(rows[0]) + ' |', '|' + '---|' * len(rows[0])] + ['| ' + ' | '.join(r) + ' |'
                                                                             for r in rows[1:]]
    md.append('')
    md.append(f"FD(DKDM) / FD(teacher) = {ratio:.2f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'}); "
              f"DKDM {'beats' if fd['dkdm'] < fd['baseline'] else 'does NOT beat'} the data-free baseline "
              f"({fd['dkdm']:.3f} vs {fd['baseline']:.3f}).")
    md.append('')
    ran = {k: v for k, v in times.items() if v >= 1.0}  # a parallel group whose stages were all reused takes ~0 s
    md.append('Stage wall times (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in ran.items()) +
              f'; total {time.time() - t_start:.0f}.' if ran else 'Every stage was reused from an earlier run.')
    text = '\n'.join(md)
    print(text)
    with open(osp.join(wd, f'results_{args.iters}.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(wd, f'results_{args.iters}.md'), 'w') as f:
        f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
