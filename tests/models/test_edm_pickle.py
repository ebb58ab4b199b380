# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The restricted EDM/EDM2/SiD pickle loader (shared/spec/sid_edm.md section 3) on pickles written by the test in
the reference format (tests/models/edm_format.py)."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

from kdm.diffusion import EDMPrecond, iDDPMPrecond
from kdm.models.networks import EDM2Precond, SongUNet
from kdm.models.teachers import (PickleSecurityError, TeacherLoadError, load_edm_reference_stats,
                                 read_edm_pickle)
from kdm.models.teachers.edm_pickle import audit_module_source
from kdm.registry import TEACHERS
from .edm_format import (GENUINE_SRC, MALICIOUS_SRC, Persistent, edm_snapshot_bytes, reference_loader,
                         reference_modules, to_reference)

TINY = dict(model_type='SongUNet', embedding_type='positional', encoder_type='standard', decoder_type='standard',
            channel_mult_noise=1, resample_filter=[1, 1], model_channels=16, channel_mult=[1, 2], augment_dim=9,
            dropout=0.13, num_blocks=1, attn_resolutions=[4])


def tiny_edm(label_dim=0, seed=0, model_channels=16):
    """A tiny DDPM++ inside EDMPrecond with non-trivial weights, and EDM's init kwargs for it."""
    torch.manual_seed(seed)
    kw = dict(TINY, model_channels=model_channels)
    net_kw = {k: v for k, v in kw.items() if k != 'model_type'}
    net = SongUNet(img_resolution=8, in_channels=3, out_channels=3, label_dim=label_dim, **net_kw)
    pre = EDMPrecond(net, img_resolution=8, img_channels=3, label_dim=label_dim)
    with torch.no_grad():
        for p in pre.parameters():
            p.normal_(0, 0.2)
    init_kwargs = dict(img_resolution=8, img_channels=3, label_dim=label_dim, use_fp16=False, **kw)
    return pre.eval(), init_kwargs


def write(tmp_path, data: bytes, name='network-snapshot.pkl'):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize('label_dim', [0, 10])
def test_safe_loader_rebuilds_edm_snapshot(tmp_path, label_dim):
    pre, kw = tiny_edm(label_dim)
    path = write(tmp_path, edm_snapshot_bytes(to_reference(pre, GENUINE_SRC, kw)))
    teacher = TEACHERS.build(dict(type='edm_pickle', path=path))
    assert isinstance(teacher, EDMPrecond) and isinstance(teacher.model, SongUNet)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert list(teacher.state_dict()) == list(pre.state_dict())
    x, sigma = torch.randn(4, 3, 8, 8), torch.tensor([0.002, 0.5, 2.0, 80.0])
    cond = torch.tensor([1, 2, 3, 9]) if label_dim else None
    with torch.no_grad():
        assert torch.equal(teacher(x, sigma, cond), pre(x, sigma, cond))
        aug = torch.randn(4, 9)
        assert torch.equal(teacher(x, sigma, cond, augment_labels=aug), pre(x, sigma, cond, augment_labels=aug))


def test_sida_encoder_decoder_generator(tmp_path):
    """SiDA/SiD2A EDM generators: ``EDMPrecond_EncoderDecoder`` around ``SongUNet_EncoderDecoder`` with the EDM
    teacher's parameter names (spec 3.2) rebuild as EDMPrecond + SongUNet; SiDA's training switches are dropped."""
    pre, kw = tiny_edm(label_dim=10)
    kw = dict(kw, model_type='SongUNet_EncoderDecoder', use_gan=True, force_normalization=False)
    path = write(tmp_path, edm_snapshot_bytes(to_reference(pre, GENUINE_SRC, kw,
                                                           class_name='EDMPrecond_EncoderDecoder')))
    module, info = read_edm_pickle(path)
    assert info['class_name'] == 'EDMPrecond_EncoderDecoder' and info['cfg']['type'] == 'EDMPrecond'
    assert isinstance(module.model, SongUNet) and 'use_gan' not in info['cfg']['model']
    x, sigma, cond = torch.randn(2, 3, 8, 8), torch.tensor([2.5, 2.5]), torch.tensor([3, 7])
    with torch.no_grad():
        assert torch.equal(module.eval()(x, sigma, cond), pre(x, sigma, cond))


def test_read_reports_what_it_found(tmp_path):
    pre, kw = tiny_edm()
    path = write(tmp_path, edm_snapshot_bytes(to_reference(pre, GENUINE_SRC, kw)))
    _, info = read_edm_pickle(path)
    assert info['class_name'] == 'EDMPrecond' and info['keys'] == ['ema', 'loss_fn', 'augment_pipe', 'dataset_kwargs']
    assert info['num_params'] == sum(p.numel() for p in pre.parameters())
    assert info['cfg']['model']['type'] == 'SongUNet' and info['cfg']['model']['model_channels'] == 16
    assert info['dataset_kwargs']['resolution'] == 8


def test_iddpm_precond_and_buffers(tmp_path):
    torch.manual_seed(0)
    net = SongUNet(img_resolution=8, in_channels=3, out_channels=6, model_channels=16, channel_mult=[1, 2],
                   num_blocks=1, attn_resolutions=[])
    pre = iDDPMPrecond(net, img_resolution=8, img_channels=3).eval()
    kw = dict(img_resolution=8, img_channels=3, label_dim=0, use_fp16=False, model_type='SongUNet',
              model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[])
    path = write(tmp_path, edm_snapshot_bytes(to_reference(pre, GENUINE_SRC, kw)))
    teacher = TEACHERS.build(dict(type='edm_pickle', path=path))
    assert isinstance(teacher, iDDPMPrecond) and torch.equal(teacher.u, pre.u)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(teacher(x, torch.tensor([0.1, 5.0])), pre(x, torch.tensor([0.1, 5.0])),
                               rtol=0, atol=0)


@pytest.mark.parametrize('generator', [False, True])
def test_edm2_snapshot_fp16_tensors(tmp_path, generator):
    """EDM2 snapshots: EasyDict top level, fp16 parameters and MPFourier buffers (upcast on load); SiD's
    generator class has no log-variance head."""
    torch.manual_seed(0)
    kw = dict(img_resolution=8, img_channels=4, label_dim=5, use_fp16=True, model_channels=32, dropout=0.0,
              channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], channels_per_head=16)
    pre = EDM2Precond(logvar_channels=0 if generator else 128, **kw).eval()
    with torch.no_grad():
        for p in pre.parameters():
            p.normal_(0, 0.5)
        for p in pre.parameters():  # what the file holds: float16 values
            p.copy_(p.half().float())
        for b in pre.buffers():
            b.copy_(b.half().float())
    name = 'EDM_2_Precond_Generator' if generator else 'Precond'
    record = to_reference(pre, GENUINE_SRC, kw, class_name=name, half=True)
    path = write(tmp_path, edm_snapshot_bytes(record, easydict=True, encoder=None))
    teacher = TEACHERS.build(dict(type='edm_pickle', path=path))
    assert isinstance(teacher, EDM2Precond) and hasattr(teacher, 'logvar_linear') != generator
    assert all(p.dtype == torch.float32 for p in teacher.parameters())
    x, sigma, cond = torch.randn(3, 4, 8, 8), torch.tensor([0.01, 1.0, 30.0]), torch.tensor([0, 2, 4])
    with torch.no_grad():
        assert torch.equal(teacher(x, sigma, cond), pre(x, sigma, cond))
        if not generator:
            assert torch.equal(teacher.logvar(sigma), pre.logvar(sigma))


def test_embedded_code_is_never_executed_and_refused(tmp_path):
    target = tmp_path / 'pwned.txt'
    pre, kw = tiny_edm()
    data = edm_snapshot_bytes(to_reference(pre, MALICIOUS_SRC.format(path=str(target)), kw))
    path = write(tmp_path, data)
    with pytest.raises(TeacherLoadError, match=r'would execute on import(.|\n)*open\(\.\.\.\)'):
        TEACHERS.build(dict(type='edm_pickle', path=path))
    assert not target.exists()
    # opting out of the source check loads the weights, and still never runs the embedded code
    teacher = TEACHERS.build(dict(type='edm_pickle', path=path, check_source=False))
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(teacher(x, 1.0), pre(x, 1.0))
    assert not target.exists()
    # the payload is live: the reference loader (which executes module_src) writes the file
    reference_loader(data)
    assert target.exists()


def test_unexpected_global_is_refused_by_name(tmp_path):
    target = tmp_path / 'pwned.txt'

    class Payload:

        def __reduce__(self):
            return exec, (f'open({str(target)!r}, "w").write("x")', )

    pre, kw = tiny_edm()
    with reference_modules():
        data = pickle.dumps(dict(ema=to_reference(pre, GENUINE_SRC, kw), extra=Payload()), protocol=4)
    path = write(tmp_path, data)
    with pytest.raises(PickleSecurityError, match=r'builtins\.exec'):
        TEACHERS.build(dict(type='edm_pickle', path=path))
    assert not target.exists()
    with reference_modules():
        data = pickle.dumps(dict(ema=Persistent('EDMPrecond', dict(_init_kwargs=dict(pwn=osp.join)), GENUINE_SRC)))
    with pytest.raises(PickleSecurityError, match=r'(posixpath|ntpath)\.join'):
        TEACHERS.build(dict(type='edm_pickle', path=write(tmp_path, data, 'b.pkl')))


def test_unknown_class_and_bad_files(tmp_path):
    pre, kw = tiny_edm()
    data = edm_snapshot_bytes(to_reference(pre, GENUINE_SRC, kw, class_name='MysteryNet'))
    with pytest.raises(TeacherLoadError, match=r"unsupported pickled class 'MysteryNet'"):
        TEACHERS.build(dict(type='edm_pickle', path=write(tmp_path, data)))
    good = edm_snapshot_bytes(to_reference(pre, GENUINE_SRC, kw))
    with pytest.raises(TeacherLoadError, match='truncated'):
        TEACHERS.build(dict(type='edm_pickle', path=write(tmp_path, good[:len(good) // 2], 'cut.pkl')))
    with pytest.raises(TeacherLoadError, match='not a pickle'):
        TEACHERS.build(dict(type='edm_pickle', path=write(tmp_path, b'<html>404</html>', 'page.pkl')))
    with pytest.raises(TeacherLoadError, match="no entry 'ema_typo'"):
        TEACHERS.build(dict(type='edm_pickle', path=write(tmp_path, good, 'ok.pkl'), key='ema_typo'))
    missing = tmp_path / 'edm-cifar10-32x32-uncond-vp.pkl'
    with pytest.raises(FileNotFoundError,
                       match=r'(?s)edm-cifar10-32x32-uncond-vp\.pkl.*nvlabs-fi-cdn\.nvidia\.com/edm'):
        TEACHERS.build(dict(type='edm_pickle', path=str(missing)))


def test_wrong_architecture_names_first_mismatch(tmp_path):
    small, kw = tiny_edm(model_channels=16)
    big, _ = tiny_edm(model_channels=32)
    data = edm_snapshot_bytes(to_reference(big, GENUINE_SRC, kw))  # kwargs say 16 channels, tensors have 32
    with pytest.raises(TeacherLoadError, match=r"first mismatching key 'model\.map_augment\.weight': checkpoint shape "
                       r'\(32, 9\), network shape \(16, 9\)'):
        TEACHERS.build(dict(type='edm_pickle', path=write(tmp_path, data)))


def test_audit_flags_import_time_code_only():
    assert audit_module_source(GENUINE_SRC) == []
    src = GENUINE_SRC + 'import os\nx = os.system("id")\ndef f(a=eval("1")):\n    open("x")\n'
    issues = audit_module_source(src)
    assert any('os.system' in i for i in issues) and any('eval' in i for i in issues)
    assert not any('open' in i for i in issues)  # inside a function body: runs only when called
    assert audit_module_source("if __name__ == '__main__':\n    main()\n") == []
    # a harmless-looking call name bound to something else
    assert audit_module_source('from os import system as float\nx = float("id")\n') == \
        ["line 1: rebinds 'float' to os.system"]


def test_reference_stats(tmp_path):
    rng = np.random.default_rng(0)
    stats = {'fid': {'mu': rng.normal(size=8), 'sigma': rng.normal(size=(8, 8)).astype(np.float32)},
             'fd_dinov2': {'mu': rng.normal(size=4), 'sigma': np.eye(4)}}
    path = tmp_path / 'img512.pkl'
    path.write_bytes(pickle.dumps(stats, protocol=4))
    out = load_edm_reference_stats(str(path))
    assert set(out) == {'fid', 'fd_dinov2'}
    np.testing.assert_array_equal(out['fid']['sigma'], stats['fid']['sigma'])
    assert out['fid']['sigma'].dtype == np.float32
    np.savez(tmp_path / 'cifar10-32x32.npz', mu=stats['fid']['mu'], sigma=stats['fid']['sigma'])
    out = load_edm_reference_stats(str(tmp_path / 'cifar10-32x32.npz'))
    np.testing.assert_array_equal(out['mu'], stats['fid']['mu'])
    bad = tmp_path / 'obj.pkl'
    bad.write_bytes(pickle.dumps({'mu': np.array([object()], dtype=object)}, protocol=4))
    with pytest.raises(PickleSecurityError):
        load_edm_reference_stats(str(bad))
    with pytest.raises(FileNotFoundError, match='dataset-refs'):
        load_edm_reference_stats(str(tmp_path / 'missing.pkl'))
