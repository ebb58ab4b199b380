#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Score a model (or existing images) with the metrics of a config, and print the protocol with the numbers.

    python tools/test.py CONFIG CKPT [--seeds 0-49999] [--out metrics.json] [--cfg-options k=v ...]
    tools/dist_test.sh CONFIG CKPT NUM_GPUS [args]          # torchrun, --launcher pytorch; same numbers
    python tools/test.py --samples DIR|NPZ|ZIP --ref REF [--metrics fid,is,kid,prdc,pr,sfid] [--detector PATH]
    python tools/test.py CONFIG --samples DIR|NPZ [--ref REF]  # the config's test_evaluator on existing images

With a checkpoint, the config's ``test_dataloader`` (a ``SeedDataset``) gives one seed per image; the model's
``test_step`` turns seeds into uint8 images and the ``test_evaluator`` metrics score them. Per-image seeds and
``DefaultSampler(round_up=False)`` make the result independent of the number of GPUs. ``--samples`` scores images
that already exist (what ``fid.py calc`` / ADM's ``evaluator.py`` did in the reference code bases).
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any directory without install

from mmengine.config import Config, DictAction  # noqa: E402

METRIC_TYPES = dict(fid='FID', is_='InceptionScore', sfid='SFID', kid='KID', prdc='PRDC', pr='PrecisionRecall',
                    acc='ClassifierAccuracy')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Evaluate a kdm model (or a folder/npz of images) with FID, IS, ...')
    p.add_argument('config', nargs='?', help='config file (its test_dataloader and test_evaluator are used)')
    p.add_argument('checkpoint', nargs='?', help='checkpoint to load (cfg.load_from)')
    p.add_argument('--seeds', help="per-image seeds, e.g. '0-49999' (overrides the test dataset's seeds)")
    p.add_argument('--batch-size', type=int, help='images per process and batch')
    p.add_argument('--ema', help="EMA to sample with (model.sample_ema), e.g. 'ema'; 'none' = raw weights")
    p.add_argument('--samples', help='score existing images instead of generating: folder, EDM zip or ADM npz')
    p.add_argument('--ref', help='reference statistics (.npz/.pkl) or real images for the metrics (overrides ref)')
    p.add_argument('--metrics', default='fid', help='with --samples and no config: comma list of '
                   'fid,is,sfid,kid,prdc,pr,acc (default fid)')
    p.add_argument('--kid-subset-size', type=int, default=1000, help='KID subset size with --metrics (default 1000)')
    p.add_argument('--detector', help='detector weight file (Inception .pth/.pt, or digits classifier .pth)')
    p.add_argument('--detector-type', choices=['inception', 'digits'], default='inception',
                   help='detector family with --samples and no config')
    p.add_argument('--out', help='write the metrics and the protocol to this JSON file')
    p.add_argument('--work-dir', help='directory for logs (default: work_dirs/<config name>)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, help='override config keys')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.samples is None and (args.config is None or args.checkpoint is None):
        p.error('give CONFIG CKPT (generate and score) or --samples DIR|NPZ (score existing images)')
    return args


# ----------------------------------------------------------------------------------------------- protocol
def model_protocol(cfg: Config) -> dict:
    """Solver, NFE and EMA name as far as the model config states them."""
    model = cfg.get('model') or {}
    sampler = model.get('sampler') or model.get('solver') or {}
    out = {}
    if isinstance(sampler, dict):
        out['solver'] = sampler.get('type') or sampler.get('solver')
        for k in ('nfe', 'num_steps', 'steps', 'num_inference_steps'):
            if sampler.get(k) is not None:
                out['NFE' if k == 'nfe' else f'NFE ({k})'] = sampler[k]
                break
    elif isinstance(sampler, str):
        out['solver'] = sampler
    for k in ('nfe', 'num_steps', 'sample_steps'):
        if model.get(k) is not None and not any(x.startswith('NFE') for x in out):
            out['NFE' if k == 'nfe' else f'NFE ({k})'] = model[k]
    ema = model.get('sample_ema', 'ema (default)')
    out['EMA'] = 'none (raw weights)' if ema is None else ema
    out['model'] = model.get('type')
    return {k: v for k, v in out.items() if v is not None}


class NFECounter:
    """Measures the NFE of generation: forward calls of the sampled network (``model.get_net(model.sample_ema)``,
    what every method's ``sample`` runs) per ``model.sample`` call, i.e. per generated batch.

    This is the number the papers report (network evaluations per image; EDM Heun with 18 steps: 35), whatever the
    config calls its step count. Models without ``get_net`` are not measured (``summary()`` returns None).
    """

    def __init__(self, model):
        from kdm.models.base import unwrap
        self.per_batch, self._calls, self._handle = [], 0, None
        model = unwrap(model)
        try:
            net = model.get_net(model.sample_ema)
        except (AttributeError, KeyError):
            return
        self._handle = net.register_forward_pre_hook(self._count)
        sample = model.sample

        def counted_sample(*args, **kwargs):
            self._calls = 0
            out = sample(*args, **kwargs)
            self.per_batch.append(self._calls)
            return out

        model.sample = counted_sample  # instance attribute: generate() calls self.sample

    def _count(self, module, args):
        self._calls += 1

    def summary(self):
        """The NFE per image (an int), ``'mean (min-max)'`` when it varied between batches (adaptive RK45), or
        None when nothing was measured."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if not self.per_batch:
            return None
        lo, hi = min(self.per_batch), max(self.per_batch)
        return lo if lo == hi else f'{sum(self.per_batch) / len(self.per_batch):.1f} ({lo}-{hi})'


def metric_protocols(metrics) -> dict:
    """Merge the per-metric protocols into one table of rows (identical values shown once)."""
    rows = {}
    for m in metrics:
        proto = getattr(m, 'protocol', None) or {}
        name = proto.get('metric', type(m).__name__)
        for k, v in proto.items():
            if k == 'metric' or v is None:
                continue
            rows.setdefault(k, {})[name] = v
    out = {}
    for k, per in rows.items():
        vals = {json.dumps(v, default=str, sort_keys=True) for v in per.values()}
        out[k] = next(iter(per.values())) if len(vals) == 1 else per
    return out


def print_tables(metrics: dict, protocol: dict) -> str:
    from terminaltables import AsciiTable
    rows = [['metric', 'value']] + [[k, f'{v:.6g}' if isinstance(v, float) else str(v)] for k, v in metrics.items()]
    prot = [['protocol', 'value']]
    for k, v in protocol.items():
        if isinstance(v, dict):
            v = '; '.join(f'{a}: {b}' for a, b in v.items())
        prot.append([k, str(v)])
    text = AsciiTable(rows, title='kdm metrics').table + '\n' + AsciiTable(prot, title='protocol').table
    print(text, flush=True)
    return text


def write_json(path: str, metrics: dict, protocol: dict) -> None:
    from kdm.engine.checkpoint import atomic_write
    atomic_write(path, json.dumps(dict(metrics=metrics, protocol=protocol), indent=2, default=str))


# ----------------------------------------------------------------------------------------------- --samples
def detector_cfg(args) -> dict:
    if args.detector_type == 'digits':
        return dict(type='DigitsClassifier', weights=args.detector)
    return dict(type='FIDInceptionV3', weights=args.detector)


def metrics_from_args(args) -> list:
    out = []
    for name in [m.strip().lower() for m in args.metrics.split(',') if m.strip()]:
        key = 'is_' if name == 'is' else name
        if key not in METRIC_TYPES:
            raise ValueError(f"unknown metric '{name}'; choose from fid, is, sfid, kid, prdc, pr, acc")
        m = dict(type=METRIC_TYPES[key], detector=detector_cfg(args))
        if key == 'kid':
            m['subset_size'] = args.kid_subset_size
        if key not in ('is_', 'acc'):
            if not args.ref:
                raise ValueError(f"metric '{name}' needs --ref (reference statistics or real images)")
            m.update(_ref_arg(args.ref))
        out.append(m)
    return out


def _ref_arg(ref: str) -> dict:
    """A statistics file goes to ``ref``; a folder / EDM zip of real images to ``real``."""
    return dict(ref=ref) if ref.endswith(('.npz', '.pkl')) else dict(real=ref)


def evaluator_metric_cfgs(ev) -> list:
    """The metric configs of a ``test_evaluator`` (a list, ``dict(metrics=[...])`` or a single metric)."""
    return ev if isinstance(ev, (list, tuple)) else ev.get('metrics', [ev])


def override_ref(metric_cfgs: list, ref: str) -> None:
    """Point every metric that compares against real data at ``ref`` (in place)."""
    for m in metric_cfgs:
        if m.get('type') not in ('InceptionScore', 'ClassifierAccuracy'):
            m.pop('ref', None)
            m.pop('real', None)
            m.update(_ref_arg(ref))


def evaluate_samples(args, cfg=None):
    """Score existing images with the metrics of the config (or of --metrics); returns (metrics, protocol)."""
    from mmengine.dist import get_dist_info
    from mmengine.evaluator import Evaluator

    import kdm.evaluation  # noqa: F401 - registers metrics and detectors
    from kdm.evaluation.image_sources import describe_source, iter_uint8_batches, open_image_source, source_label
    from kdm.registry import METRICS
    if cfg is not None and cfg.get('test_evaluator'):
        ev = cfg.test_evaluator
        mcfgs = [dict(m) for m in evaluator_metric_cfgs(ev)]
        if args.ref:
            override_ref(mcfgs, args.ref)
        if args.detector:
            for m in mcfgs:
                if isinstance(m.get('detector'), dict):
                    m['detector'] = dict(m['detector'], weights=args.detector)
    else:
        mcfgs = metrics_from_args(args)
    metrics = [METRICS.build(m) for m in mcfgs]
    for m in metrics:
        m.detector  # noqa: B018 - build the detectors now: a missing weight file fails before any scoring
    evaluator = Evaluator(metrics)
    ds = open_image_source(args.samples)
    rank, world = get_dist_info()
    n = len(ds)
    mine = list(range(n))[rank::world]
    bs = args.batch_size or 250
    progress = f'scoring {n} images from {args.samples}' if rank == 0 else None
    for idx, imgs in iter_uint8_batches(ds, mine, bs, progress):
        samples = [dict(fake=imgs[j], seed=int(i), label=source_label(ds, int(i))) for j, i in enumerate(idx)]
        evaluator.process(samples)
    values = evaluator.evaluate(n)
    protocol = dict(samples=describe_source(args.samples), n_images=n)
    protocol.update(metric_protocols(metrics))
    return values, protocol


# ----------------------------------------------------------------------------------------------- main
def build_config(args) -> Config:
    if not osp.isfile(args.config):
        raise FileNotFoundError(2, 'config file not found', args.config)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.checkpoint:
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(2, 'checkpoint not found', args.checkpoint)
        cfg.load_from, cfg.resume = args.checkpoint, False
    if args.seeds is not None:
        cfg.test_dataloader.dataset.seeds = args.seeds
    if args.batch_size is not None:
        cfg.test_dataloader.batch_size = args.batch_size
    if args.ema is not None:
        cfg.model.sample_ema = None if args.ema.lower() == 'none' else args.ema
    if args.ref:
        override_ref(evaluator_metric_cfgs(cfg.test_evaluator), args.ref)
    return cfg


def evaluate_model(args, cfg):
    from mmengine.runner import Runner

    from kdm.registry import RUNNERS
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    nfe = NFECounter(runner.model)
    values = runner.test()
    metrics = runner.test_loop.evaluator.metrics
    ds = runner.test_dataloader.dataset
    meta = getattr(ds, 'metainfo', {}) or {}
    protocol = dict(config=args.config, checkpoint=args.checkpoint, seeds=meta.get('seeds', cfg.test_dataloader.
                    dataset.get('seeds')), n_generated=len(ds))
    protocol.update(model_protocol(cfg))
    measured = nfe.summary()
    if measured is not None:
        protocol['NFE (measured)'] = measured
    protocol.update(metric_protocols(metrics))
    return values, protocol


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.dist import is_main_process

    from kdm.engine.errors import explain
    try:
        if args.samples is not None:
            cfg = build_config(args) if args.config else None
            if args.launcher != 'none':
                from kdm.engine.launcher import init_dist
                init_dist(args.launcher)
            values, protocol = evaluate_samples(args, cfg)
        else:
            cfg = build_config(args)
            values, protocol = evaluate_model(args, cfg)
    except (KeyError, TypeError, FileNotFoundError, ValueError, RuntimeError, ImportError) as exc:
        message = explain(exc)
        if message is None and isinstance(exc, (FileNotFoundError, ValueError, ImportError)):
            message = str(exc)  # kdm's own messages (missing weights, bad references, too few samples) say it all
        if message is None or os.environ.get('KDM_DEBUG'):
            raise
        print(f'kdm: error: {message}', file=sys.stderr)
        return 2
    if is_main_process():
        print_tables(values, protocol)
        if args.out:
            write_json(args.out, values, protocol)
            print(f'wrote {args.out}')
    from kdm.engine.launcher import shutdown_dist
    shutdown_dist()
    return 0


if __name__ == '__main__':
    sys.exit(main())
