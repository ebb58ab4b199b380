#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The quickstart (``make demo``): kdm end to end on a CPU in minutes, on real handwritten digits.

Stages (each is skipped when its output already exists, so a second run only re-scores):

1. train the digits classifier that serves as the metric detector (``tools/train_detector.py``);
2. train the teachers: an EDM-formulation class-conditional denoiser (``configs/quickstart/teacher_edm_cond.py``)
   and the ADM-style discrete teacher that DKDM distils (``configs/quickstart/teacher_adm.py``);
3. distil with every method available (``configs/quickstart/<method>.py``);
4. sample every model from the same per-image seeds, score it (Frechet distance in the classifier's feature
   space against the held-out digits, class accuracy of conditional samples), and write
   ``<work-dir>/grid.png`` (one row per model: the teacher at full NFE, each student at its NFE) and
   ``<work-dir>/metrics.md`` / ``metrics.json``; the table is also printed.

    python tools/quickstart.py [--work-dir work_dirs/demo] [--num-samples 500] [--only teacher,dkdm]
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


@dataclass
class Train:
    """A training stage: ``tools/train.py config`` into ``<work-dir>/<name>``; ``needs`` maps config keys to the
    final checkpoint of an earlier stage."""
    name: str
    config: str
    needs: Dict[str, str] = field(default_factory=dict)


@dataclass
class Row:
    """One evaluated model: a row of the table and of the grid."""
    title: str
    stage: str
    nfe: int
    options: Dict[str, object] = field(default_factory=dict)
    role: str = 'student'
    #: The method's toy-benchmark target (its issue): FD <= ``target_ratio`` x the FD of the row titled ``teacher``.
    teacher: Optional[str] = None
    target_ratio: Optional[float] = None


# `--smoke`: the same pipeline in miniature (2 iterations, tiny networks, few samples) for the test suite.
SMOKE_COMMON = ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2', 'custom_hooks=[]',
                'train_dataloader.batch_size=8']
SMOKE = {
    'detector': ['--epochs', '1'],
    'teacher': SMOKE_COMMON + ['model.net.model.model_channels=4', 'model.num_steps=2'],
    'adm_teacher': SMOKE_COMMON + ['model.net.channel_mult=(1,)', 'model.net.attention_resolutions=()',
                                   'model.sample_steps=2'],
    'dkdm': SMOKE_COMMON + ['train_dataloader.batch_size=4', 'model.batch_size=4', 'model.rho=0.2',
                            'model.timestep_respacing=10', 'model.prepare_batch_size=8', 'model.sample_steps=2',
                            'model.student.channel_mult=(1,)', 'model.student.attention_resolutions=()'],
}

# Every method issue adds its stage and its row here (and its config under configs/quickstart/).
STAGES = [
    Train('teacher', 'configs/quickstart/teacher_edm_cond.py'),
    Train('adm_teacher', 'configs/quickstart/teacher_adm.py'),
    Train('dkdm', 'configs/quickstart/dkdm.py', needs={'model.teacher.path': 'adm_teacher'}),
]
ROWS = [
    Row('EDM teacher, Heun 18 steps', 'teacher', 35, {'model.num_steps': 18}, role='teacher'),
    Row('EDM teacher, Euler 4 steps', 'teacher', 4, {'model.solver': 'euler', 'model.num_steps': 4},
        role='teacher'),
    Row('ADM teacher, 50 ancestral steps', 'adm_teacher', 50, role='teacher'),
    Row('DKDM student (data-free), 50 ancestral steps', 'dkdm', 50, teacher='ADM teacher, 50 ancestral steps',
        target_ratio=1.2),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='kdm quickstart on the handwritten digits (CPU, minutes)')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--num-samples', type=int, default=500, help='generated images per model for the metrics')
    p.add_argument('--only', help='comma list of stages to run (default: all); later stages need earlier ones')
    p.add_argument('--cfg-options', nargs='*', default=[], help='overrides passed to every training stage')
    p.add_argument('--jobs', type=int, default=2, help='stages trained side by side (one CPU thread each)')
    p.add_argument('--smoke', action='store_true', help='a miniature of the pipeline (seconds; for tests)')
    return p.parse_args(argv)


def say(msg: str) -> None:
    print(f'[kdm quickstart] {msg}', flush=True)


def parse_options(options: List[str]) -> dict:
    """``['a.b=1', 'c=(1,2)']`` -> ``{'a.b': 1, 'c': (1, 2)}``, exactly as ``--cfg-options`` parses them."""
    from mmengine.config import DictAction
    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest='options')(None, namespace, list(options))
    return namespace.options


def final_checkpoint(config: str, work_dir: str, options: List[str] = ()) -> str:
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(parse_options(options))
    return osp.join(work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')


PROGRESS = re.compile(r'Iter\(train\)|^epoch \d|^wrote |Traceback|\w+Error: |kdm: error|DKDM: preparing')


def start_logged(name: str, cmd: List[str], threads: int = 1) -> subprocess.Popen:
    """Start a stage as a subprocess with ``threads`` torch threads (stages run side by side, one thread each; a
    stage that runs alone gets every core); its progress lines (MMEngine's iteration log, the tools' own
    summaries) are echoed with the stage name."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            bufsize=1)
    proc.stage, proc.tail = name, []

    def pump():
        for line in proc.stdout:
            proc.tail = (proc.tail + [line])[-40:]
            if PROGRESS.search(line):
                print(f'    [{name}] ' + line.rstrip()[-150:], flush=True)

    proc.pump = threading.Thread(target=pump, daemon=True)
    proc.pump.start()
    return proc


def stage_options(stage: Train, done: Dict[str, str], extra: List[str], smoke: bool) -> List[str]:
    """The ``--cfg-options`` of a stage: its dependencies' checkpoints, the smoke overrides, the user's."""
    return ([f'{key}={done[dep]}' for key, dep in stage.needs.items()] + (SMOKE.get(stage.name, []) if smoke else [])
            + list(extra))


def run_stages(work_dir: str, extra: List[str], only: Optional[set], jobs: int, timings: dict,
               smoke: bool = False) -> Dict[str, str]:
    """Train the detector and every stage, up to ``jobs`` at a time, each after the stages it needs; a stage whose
    output exists is reused."""
    done: Dict[str, str] = {}
    detector = osp.join(work_dir, 'detector', 'digits_classifier.pth')
    pending = [Train('detector', '')] + list(STAGES)
    running: Dict[str, tuple] = {}
    while pending or running:
        for stage in list(pending):
            if len(running) >= jobs or any(dep not in done for dep in stage.needs.values()):
                continue
            pending.remove(stage)
            if stage.name == 'detector':
                out = detector
                cmd = [sys.executable, osp.join(ROOT, 'tools', 'train_detector.py'), '--out', detector]
                cmd += SMOKE['detector'] if smoke else []
            else:
                options = stage_options(stage, done, extra, smoke)
                out = final_checkpoint(stage.config, osp.join(work_dir, stage.name), options)
                cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), osp.join(ROOT, stage.config),
                       '--work-dir', osp.join(work_dir, stage.name)] + (['--cfg-options', *options] if options else [])
            if osp.isfile(out):
                say(f'{stage.name}: reusing {out}')
                done[stage.name] = out
                continue
            if only is not None and stage.name not in only and stage.name != 'detector':
                continue
            # alone: nothing running and no other stage ready to start (e.g. a distiller waiting for its teacher)
            alone = not running and not any(all(d in done for d in s.needs.values()) for s in pending)
            threads = jobs if alone else 1
            say(f'{stage.name}: starting ' + (stage.config or 'tools/train_detector.py') + f' ({threads} thread'
                + ('s)' if threads > 1 else ')'))
            running[stage.name] = (start_logged(stage.name, cmd, threads), out, time.time())
        for name, (proc, out, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            proc.pump.join()
            if proc.returncode != 0:
                sys.stderr.write(''.join(proc.tail))
                raise SystemExit(f'[kdm quickstart] stage {name} failed (exit {proc.returncode})')
            timings[name] = time.time() - t0
            say(f'{name}: finished in {timings[name]:.0f} s')
            done[name] = out
            del running[name]
        if running:
            time.sleep(0.5)
        elif pending and all(any(d not in done for d in s.needs.values()) for s in pending):
            say(f'skipping {[s.name for s in pending]}: a stage they need was not trained')
            break
    return done


def evaluate(rows: List[Row], stages: Dict[str, Train], done: Dict[str, str], detector_path: str, n: int,
             timings: dict, extra: List[str] = (), smoke: bool = False) -> List[dict]:
    import torch

    from kdm.apis import generate, load_model
    from kdm.datasets import DigitsDataset
    from kdm.evaluation.detectors import DigitsClassifier
    from kdm.evaluation.fid import fid_from_features
    detector = DigitsClassifier(weights=detector_path).eval()

    def feats(images):
        return detector(images)

    test, train = DigitsDataset(split='test'), DigitsDataset(split='train')
    real = feats(torch.stack([test.get_uint8(i) for i in range(len(test))]))['pool']
    train_real = feats(torch.stack([train.get_uint8(i) for i in range(min(n, len(train)))]))['pool']
    noise = torch.randint(0, 256, (n, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    results = [
        dict(model=name, params='', nfe='', fd=fid_from_features(f, real, method='eigen'), accuracy=None,
             role='reference', grid=None)
        for name, f in (('real digits (training split)', train_real), ('uniform noise images', feats(noise)['pool']))
    ]
    for row in rows:
        if row.stage not in done:
            continue
        stage = stages[row.stage]
        options = parse_options(stage_options(stage, done, extra, smoke))
        options.update(row.options if not smoke else {})
        model = load_model(osp.join(ROOT, stage.config), done[row.stage], cfg_options=options)
        conditional = model.label_dim > 0
        labels = [i % 10 for i in range(n)] if conditional else None
        t0 = time.time()
        images = generate(model, seeds=range(n), labels=labels, batch_size=250)
        sample_time = time.time() - t0
        out = feats(images)
        acc = None
        if conditional:
            acc = float((out['logits'].argmax(1) == torch.tensor(labels)).double().mean())
        params = sum(p.numel() for p in model.get_net(None).parameters())
        grid = images[:10]
        fd = fid_from_features(out['pool'], real, method='eigen')
        say(f'{row.title}: FD {fd:.2f}'
            + (f', accuracy {acc:.3f}' if acc is not None else '') + f' ({sample_time:.1f} s for {n} samples)')
        results.append(dict(model=row.title, params=params, nfe=row.nfe, fd=fd,
                            accuracy=acc, role=row.role, grid=grid, train_seconds=timings.get(row.stage),
                            sample_seconds=sample_time, target=target_verdict(row, fd, results)))
    return results


def target_verdict(row: Row, fd: float, results: List[dict]) -> Optional[str]:
    """``'met (1.10x <= 1.2x teacher FD)'`` / ``'not met (...)'`` for a row with a target; None otherwise."""
    if row.target_ratio is None:
        return None
    teacher = next((r for r in results if r['model'] == row.teacher), None)
    if teacher is None:
        return f'teacher row {row.teacher!r} not evaluated'
    ratio = fd / teacher['fd']
    verdict = 'met' if ratio <= row.target_ratio else 'not met'
    return f'{verdict} ({ratio:.2f}x vs <= {row.target_ratio}x teacher FD)'


def write_grid(results: List[dict], path: str) -> None:
    """One labelled row of ten images per model (digits 0-9 for conditional models)."""
    import numpy as np
    from PIL import Image, ImageDraw
    rows = [r for r in results if r['grid'] is not None]
    scale, label_w = 4, 330
    cell = 16 * scale + 2
    canvas = Image.new('RGB', (label_w + 10 * cell, len(rows) * cell + 4), 'white')
    draw = ImageDraw.Draw(canvas)
    for i, r in enumerate(rows):
        y = i * cell + 2
        draw.text((4, y + cell // 2 - 6), f"{r['model']} ({r['nfe']} NFE)", fill='black')
        for j, img in enumerate(r['grid']):
            tile = Image.fromarray(img[0].numpy().astype(np.uint8), 'L').resize((16 * scale, 16 * scale),
                                                                                  Image.NEAREST)
            canvas.paste(tile, (label_w + j * cell, y))
    canvas.save(path)


def write_table(results: List[dict], n: int, detector_path: str, work_dir: str) -> str:
    from terminaltables import AsciiTable
    header = ['model', 'parameters', 'NFE', 'FD (classifier)', 'class accuracy', 'train time (s)', 'toy target']
    body = []
    for r in results:
        body.append([r['model'], f"{r['params']:,}" if r['params'] else '', str(r['nfe']), f"{r['fd']:.2f}",
                     '' if r['accuracy'] is None else f"{100 * r['accuracy']:.1f} %",
                     '' if not r.get('train_seconds') else f"{r['train_seconds']:.0f}", r.get('target') or ''])
    table = AsciiTable([header] + body, title=' kdm quickstart: 16x16 digits ').table
    protocol = (f'{n} samples per model from seeds 0-{n - 1} (conditional models: class = seed % 10); FD of the '
                f'64-d penultimate features of the digits classifier {detector_path} against the 359 held-out '
                'test digits; EMA weights. Toy target: the method issue\'s FD ratio to its teacher at these '
                'iterations (the full target check is benchmarks/toy_benchmark.py).')
    md = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    md += ['| ' + ' | '.join(c or '' for c in row) + ' |' for row in body]
    with open(osp.join(work_dir, 'metrics.md'), 'w') as f:
        f.write('# kdm quickstart\n\n' + '\n'.join(md) + f'\n\n{protocol}\n\n![grid](grid.png)\n')
    with open(osp.join(work_dir, 'metrics.json'), 'w') as f:
        json.dump([{k: v for k, v in r.items() if k != 'grid'} for r in results], f, indent=2)
    return table + '\n' + protocol


def main(argv=None) -> int:
    args = parse_args(argv)
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    only = set(args.only.split(',')) if args.only else None
    timings_path = osp.join(work_dir, 'timings.json')
    timings = json.load(open(timings_path)) if osp.isfile(timings_path) else {}
    t_start = time.time()
    done = run_stages(work_dir, args.cfg_options, only, args.jobs, timings, args.smoke)
    with open(timings_path, 'w') as f:
        json.dump(timings, f, indent=2)
    n = 20 if args.smoke else args.num_samples
    say(f'scoring the models with {n} samples each')
    results = evaluate(ROWS, {s.name: s for s in STAGES}, done, done['detector'], n, timings, args.cfg_options,
                       args.smoke)
    write_grid(results, osp.join(work_dir, 'grid.png'))
    print(write_table(results, n, done['detector'], work_dir))
    say(f'done in {time.time() - t_start:.0f} s: {osp.join(work_dir, "grid.png")}, '
        f'{osp.join(work_dir, "metrics.md")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
