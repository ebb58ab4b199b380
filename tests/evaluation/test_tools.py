# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""tools/fid_ref.py, tools/test.py (--samples and CONFIG CKPT, 1 and 2 processes) and tools/sample.py."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import free_port

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool(name):
    """Import tools/<name>.py under a private module name (``test`` would clash with Python's own package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'kdm_tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp('tools')
    from kdm.evaluation.detectors import DigitsClassifier
    clf = DigitsClassifier(random_init=True, seed=3)
    torch.save(dict(state_dict=clf.state_dict(), meta=dict(resolution=16, num_classes=10, feature_dim=64)),
               d / 'clf.pth')
    from kdm.datasets.digits import DigitsDataset
    ds = DigitsDataset(split='test', resolution=16)
    imgs = torch.stack([ds.get_uint8(i) for i in range(len(ds))]).permute(0, 2, 3, 1).numpy()
    np.savez(d / 'real.npz', arr_0=imgs)
    gen = torch.Generator().manual_seed(5)
    np.savez(d / 'fake.npz', arr_0=torch.randint(0, 256, (60, 16, 16, 1), dtype=torch.uint8, generator=gen).numpy())
    # a checkpoint of the toy generator, in MMEngine's layout
    sys.path.insert(0, ROOT)
    from tests.evaluation.toy_generator import EvalToyGenerator
    torch.manual_seed(0)
    torch.save(dict(state_dict=EvalToyGenerator().state_dict(), meta=dict()), d / 'toy.pth')
    return d


def test_fid_ref_and_test_samples(workdir, capsys):
    fid_ref, test_tool = _tool('fid_ref'), _tool('test')
    ref = str(workdir / 'ref.npz')
    assert fid_ref.main([str(workdir / 'real.npz'), '--out', ref, '--detector-type', 'digits', '--detector',
                         str(workdir / 'clf.pth'), '--features', '--batch-size', '100']) == 0
    from kdm.evaluation import load_reference
    r = load_reference(ref)
    assert r['mu'].shape == (64,) and r['features'].shape == (359, 64) and r['num_images'] == 359
    assert r['meta']['detector'].startswith('DigitsClassifier') and len(r['meta']['weights_sha256']) == 64
    out = str(workdir / 'm.json')
    assert test_tool.main(['--samples', str(workdir / 'fake.npz'), '--ref', ref, '--metrics', 'fid,kid,prdc',
                           '--kid-subset-size', '50',
                           '--detector-type', 'digits', '--detector', str(workdir / 'clf.pth'), '--out', out]) == 0
    res = json.load(open(out))
    from kdm.evaluation import fid_from_features, get_detector
    det = get_detector(dict(type='DigitsClassifier', weights=str(workdir / 'clf.pth')))
    fake = det(torch.from_numpy(np.load(workdir / 'fake.npz')['arr_0']).permute(0, 3, 1, 2))['pool'].numpy()
    assert res['metrics']['FID'] == pytest.approx(fid_from_features(fake, r['features']), rel=1e-5)
    assert res['protocol']['n_fake'] == 60 and res['protocol']['detector_sha256'] == r['meta']['weights_sha256']
    printed = capsys.readouterr().out
    assert 'kdm metrics' in printed and 'protocol' in printed and 'PRDC/coverage' in printed
    # bad input: an empty folder is a clear error, not a traceback
    empty = workdir / 'empty'
    empty.mkdir()
    assert test_tool.main(['--samples', str(empty), '--ref', ref, '--detector-type', 'digits', '--detector',
                           str(workdir / 'clf.pth')]) == 2
    assert 'no images' in capsys.readouterr().err


def _run(args, nproc=None):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    cmd = ([osp.join(ROOT, 'tools', 'dist_test.sh')] if nproc else [sys.executable, osp.join(ROOT, 'tools',
                                                                                              'test.py')])
    if nproc:
        env['PORT'] = str(free_port())
        args = args[:2] + [str(nproc)] + args[2:]
    res = subprocess.run(cmd + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def test_test_py_model_one_and_two_processes(workdir, capsys):
    cfg = osp.join(ROOT, 'tests', 'evaluation', 'configs', 'toy_eval.py')
    opts = ['--cfg-options', f'digits_detector.weights={workdir / "clf.pth"}',
            *[f'test_evaluator.{i}.detector.weights={workdir / "clf.pth"}' for i in range(3)]]
    one, two = str(workdir / 'one.json'), str(workdir / 'two.json')
    test_tool = _tool('test')  # 1 process in this interpreter, 2 through tools/dist_test.sh
    assert test_tool.main([cfg, str(workdir / 'toy.pth'), '--seeds', '0-39', '--out', one, '--work-dir',
                           str(workdir / 'w1'), *opts]) == 0
    printed = capsys.readouterr().out
    assert 'FD_classifier' in printed and 'seeds' in printed and 'EMA' in printed
    _run([cfg, str(workdir / 'toy.pth'), '--seeds', '0-39', '--out', two, '--work-dir', str(workdir / 'w2'), *opts],
         nproc=2)
    a, b = json.load(open(one)), json.load(open(two))
    assert a['protocol']['seeds'] == '0-39' and a['protocol']['n_generated'] == 40
    assert a['protocol']['EMA'] == 'none (raw weights)' and a['protocol']['model'] == 'EvalToyGenerator'
    assert a['protocol']['NFE (measured)'] == 1 and b['protocol']['NFE (measured)'] == 1  # one net call per image
    for k, v in a['metrics'].items():
        assert b['metrics'][k] == pytest.approx(v, rel=1e-5, abs=1e-9), k
    assert 0.0 <= a['metrics']['accuracy'] <= 1.0


def test_sample_py(workdir):
    sample = _tool('sample')
    out = workdir / 'samples'
    cfg = osp.join(ROOT, 'tests', 'evaluation', 'configs', 'toy_eval.py')
    assert sample.main([cfg, str(workdir / 'toy.pth'), '--seeds', '0-9', '--outdir', str(out), '--labels-cycle',
                        '10', '--batch-size', '4']) == 0
    pngs = sorted(os.listdir(out / 'images'))
    assert pngs[0] == '000000.png' and len(pngs) == 10
    npz = np.load(out / 'samples_10x16x16x1.npz')
    assert npz['arr_0'].shape == (10, 16, 16, 1) and npz['arr_0'].dtype == np.uint8
    assert npz['arr_1'].tolist() == list(range(10))
    assert (out / 'grid.png').is_file()
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(out / 'images' / '000003.png')), npz['arr_0'][3, :, :, 0])


def test_nfe_counter_counts_sampled_network_calls():
    """The measured NFE is the number of forward calls of ``get_net(sample_ema)`` per ``sample`` call (not the
    config's step count), reported as a range when it varies between batches (adaptive solvers)."""
    from torch import nn
    test_tool = _tool('test')

    class Model(nn.Module):
        sample_ema = 'ema'

        def __init__(self):
            super().__init__()
            self.net, self.ema = nn.Identity(), nn.Identity()
            self.steps = 3

        def get_net(self, ema=None):
            return self.ema if ema == 'ema' else self.net

        def sample(self, noise):
            for _ in range(self.steps):  # e.g. Heun: 2 calls per step, minus the last correction
                noise = self.get_net(self.sample_ema)(noise)
            self.net(noise)  # the raw network is not the sampled one
            return noise

        def generate(self, noise):
            return self.sample(noise)

    model = Model()
    counter = test_tool.NFECounter(model)
    model.generate(torch.zeros(2))
    model.generate(torch.zeros(2))
    assert counter.per_batch == [3, 3] and counter.summary() == 3
    assert not model.ema._forward_pre_hooks  # summary() removes the hook
    model = Model()
    counter = test_tool.NFECounter(model)
    for steps in (4, 6):
        model.steps = steps
        model.generate(torch.zeros(1))
    assert counter.summary() == '5.0 (4-6)'
    assert test_tool.NFECounter(nn.Linear(1, 1)).summary() is None  # no get_net: nothing measured


def test_train_detector(tmp_path, capsys):
    """tools/train_detector.py trains the digits classifier (far above chance in 3 epochs) and writes a file that
    DigitsClassifier loads (weights_only) with its metadata; the loaded net reproduces the reported accuracy."""
    train = _tool('train_detector')
    out = tmp_path / 'clf.pth'
    assert train.main(['--out', str(out), '--epochs', '3', '--resolution', '16']) == 0
    assert 'test accuracy' in capsys.readouterr().out
    ckpt = torch.load(out, map_location='cpu', weights_only=True)
    meta = ckpt['meta']
    assert meta['resolution'] == 16 and meta['num_classes'] == 10 and meta['feature_dim'] == 64
    assert meta['test_accuracy'] > 0.7  # 10 classes: chance is 0.1
    from kdm.evaluation.detectors import DigitsClassifier
    net = DigitsClassifier(weights=str(out))
    images, labels = train.load_split('test', 16)
    assert train.accuracy(net, images, labels) == pytest.approx(meta['test_accuracy'])
    assert net.protocol['weights_sha256'] != 'random'
