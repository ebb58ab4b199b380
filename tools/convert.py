#!/usr/bin/env python
# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Convert a teacher file into a kdm checkpoint and print what it found.

    python tools/convert.py edm-cifar10-32x32-uncond-vp.pkl checkpoints/edm_cifar10_uncond.pth
    python tools/convert.py ADM_cifar10_baseline.pt checkpoints/adm_cifar10.pth \\
        --teacher-config configs/_base_/models/adm_cifar10_teacher.py
    python tools/convert.py checkpoint_16.pth checkpoints/slimflow_28m.pth \\
        --teacher-config configs/_base_/models/slimflow_cifar10_27.9m_teacher.py

The source is read by the matching teacher loader (``edm_pickle`` for ``.pkl`` files, else the ``teacher`` dict of
``--teacher-config``, whose ``path`` the source replaces); nothing embedded in it is executed. The output is
``dict(state_dict=..., meta=dict(cfg=<config text whose model rebuilds the Denoiser>, source=...))``, loadable
with ``dict(type='kdm', path=OUT)`` as a teacher. A kdm checkpoint as source is re-written with only its state
dict and meta (no optimizer state). The result is verified by reloading it and comparing outputs.
"""
import argparse
import hashlib
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any directory without install

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert a teacher file (EDM/EDM2/SiD .pkl, guided-diffusion .pt, '
                                     'RectifiedFlow/SlimFlow/CUD .pth) into a kdm checkpoint')
    parser.add_argument('src', help='the teacher file')
    parser.add_argument('out', nargs='?', help='output checkpoint (.pth); omit to only print what was found')
    parser.add_argument('--teacher-config', help='config file with a `teacher` dict (needed for .pt/.pth teachers: '
                        'it gives the architecture and the loader)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override keys of the teacher dict, e.g. teacher.ema=False teacher.key=model; for a '
                        '.pkl: teacher.key, teacher.check_source, teacher.use_fp16')
    parser.add_argument('--no-verify', action='store_true', help='skip reloading the output to compare outputs')
    return parser.parse_args(argv)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def teacher_config(src: str, config_file=None, options=None) -> dict:
    """The loader config for ``src``: ``edm_pickle`` for ``.pkl``, else the config file's ``teacher``."""
    if config_file is None:
        if src.endswith('.pkl'):
            teacher = dict(type='edm_pickle')
        else:
            teacher = dict(type='kdm')
    else:
        cfg = Config.fromfile(config_file)
        if 'teacher' not in cfg:
            raise ValueError(f'{config_file} has no `teacher` dict')
        teacher = cfg.teacher.to_dict()
    if options:
        teacher.update({k[len('teacher.'):] if k.startswith('teacher.') else k: v for k, v in options.items()})
    teacher['path'] = src
    return teacher


#: keys of an ``edm_pickle`` teacher dict (the arguments of ``kdm.models.teachers.load_edm_pickle``)
PICKLE_OPTIONS = ('key', 'check_source', 'use_fp16')


def read_pickle_teacher(src: str, teacher: dict):
    """Read an EDM/EDM2/SiD pickle as the ``edm_pickle`` loader would (``key``, ``check_source``, ``use_fp16``).

    Returns ``(frozen denoiser, info)`` as ``read_edm_pickle`` (whose ``info['cfg']`` carries ``use_fp16``).
    """
    from kdm.models.teachers import read_edm_pickle
    options = {k: v for k, v in teacher.items() if k not in ('type', 'path')}
    unknown = sorted(set(options) - set(PICKLE_OPTIONS))
    if unknown:
        raise ValueError(f'unknown edm_pickle option(s) {unknown}; valid: {list(PICKLE_OPTIONS)}')
    denoiser, info = read_edm_pickle(src, **options)
    denoiser.eval().requires_grad_(False)
    return denoiser, info


def denoiser_config(teacher: dict, info: dict) -> dict:
    """The ``MODELS`` config that rebuilds the Denoiser a teacher loader returned."""
    kind = teacher['type']
    if kind == 'edm_pickle':
        return info['cfg']
    if kind == 'adm':
        from kdm.models.teachers.adm import DEFAULT_DIFFUSION
        net = teacher['network']
        return dict(type='DiscreteDenoiser', net=net, diffusion=teacher.get('diffusion') or DEFAULT_DIFFUSION,
                    parameterization=teacher.get('parameterization', 'eps'),
                    timestep_mode=teacher.get('timestep_mode', 'nearest'), label_dim=int(net.get('num_classes') or 0))
    if kind == 'flow':
        net = teacher['network']
        return dict(type='FlowDenoiser', net=net, convention=teacher.get('convention', 'rf'),
                    time_scale=teacher.get('time_scale'), eps=teacher.get('eps'),
                    label_dim=int(net.get('label_dim', 0) or 0))
    raise ValueError(f'cannot convert a {kind!r} teacher; known: edm_pickle, adm, flow, kdm')


def convert(src: str, out=None, config_file=None, options=None, verify=True, log=print) -> dict:
    """Read ``src`` with its loader, print a summary, write ``out`` (if given) and verify it. Returns the summary."""
    from kdm.registry import TEACHERS
    import kdm.models  # noqa: F401 - registers networks and loaders
    from kdm.models.teachers import read_kdm_checkpoint
    teacher = teacher_config(src, config_file, options)
    kind = teacher['type']
    summary = dict(source=osp.abspath(src), kind=kind, sha256=sha256(src))
    if kind == 'kdm':
        ckpt = read_kdm_checkpoint(src)
        summary.update(cfg_text=ckpt['meta']['cfg'], num_tensors=len(ckpt['state_dict']))
        state_dict, cfg_text = ckpt['state_dict'], ckpt['meta']['cfg']
        denoiser = TEACHERS.build(teacher)
    else:
        info = {}
        if kind == 'edm_pickle':
            denoiser, info = read_pickle_teacher(src, teacher)
            summary.update(class_name=info['class_name'], file_keys=info['keys'], init_kwargs=info['init_kwargs'])
        else:
            denoiser = TEACHERS.build(teacher)
        model_cfg = denoiser_config(teacher, info)
        cfg_text = Config(dict(model=model_cfg)).pretty_text
        state_dict = denoiser.state_dict()
        summary.update(model_cfg=model_cfg)
    summary.update(denoiser=type(denoiser).__name__, num_params=sum(p.numel() for p in denoiser.parameters()),
                   img=(denoiser.img_channels, denoiser.img_resolution), label_dim=denoiser.label_dim,
                   sigma_range=(denoiser.sigma_min, denoiser.sigma_max))
    log(f'source      {summary["source"]}  (sha256 {summary["sha256"][:16]}...)')
    log(f'read as     {kind}' + (f', class {summary["class_name"]}, file keys {summary["file_keys"]}'
                                  if 'class_name' in summary else ''))
    log(f'denoiser    {summary["denoiser"]}, {summary["num_params"]:,} parameters, images {summary["img"][0]}x'
        f'{summary["img"][1]}x{summary["img"][1]}, label_dim {summary["label_dim"]}, sigma in '
        f'[{summary["sigma_range"][0]:.4g}, {summary["sigma_range"][1]:.4g}]')
    if 'model_cfg' in summary:
        log('config      ' + Config(dict(model=summary['model_cfg'])).pretty_text.replace('\n', '\n            '))
    if out is None:
        return summary
    from kdm.engine.checkpoint import atomic_torch_save
    meta = dict(cfg=cfg_text, source=dict(path=summary['source'], kind=kind, sha256=summary['sha256']),
                converted_by='tools/convert.py')
    atomic_torch_save(dict(state_dict=state_dict, meta=meta), out)
    log(f'wrote       {out}  (load it as teacher=dict(type="kdm", path="{out}"))')
    if verify:
        reloaded = TEACHERS.build(dict(type='kdm', path=out))
        gen = torch.Generator().manual_seed(0)
        shape = (2, denoiser.img_channels, denoiser.img_resolution, denoiser.img_resolution)
        x = torch.randn(shape, generator=gen)
        cond = torch.randint(denoiser.label_dim, (2, ), generator=gen) if denoiser.label_dim else None
        sigma = torch.tensor([0.5, 5.0]).clamp(denoiser.sigma_min, denoiser.sigma_max)
        with torch.no_grad():
            diff = (reloaded(x, sigma, cond) - denoiser(x, sigma, cond)).abs().max().item()
        summary['verify_max_abs_diff'] = diff
        log(f'verified    reloaded output vs source output: max |diff| = {diff:.3g}')
        if diff != 0:
            raise RuntimeError(f'the converted checkpoint does not reproduce the source (max |diff| {diff})')
    return summary


def main(argv=None):
    args = parse_args(argv)
    convert(args.src, args.out, args.teacher_config, args.cfg_options, verify=not args.no_verify)


if __name__ == '__main__':
    main()
