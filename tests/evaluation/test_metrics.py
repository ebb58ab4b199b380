# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The BaseMetric classes: sample dicts in, numbers out; reference files; 2-process gloo == 1 process."""
import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from kdm.evaluation import (FID, KID, PRDC, SFID, ClassifierAccuracy, InceptionScore, PrecisionRecall,
                            compute_kid, compute_prdc, fid_from_features, get_detector, inception_score,
                            load_reference, save_reference)
from tests.conftest import free_port

DET = dict(type='DigitsClassifier', random_init=True, seed=0)


def make_samples(n=48, seed=0, res=16, labelled=True):
    gen = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, 1, res, res), dtype=torch.uint8, generator=gen)
    return [dict(fake=imgs[i], seed=100 + i, label=i % 10 if labelled else -1) for i in range(n)]


def make_real(tmp_path, n=40, seed=1):
    gen = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 200, (n, 16, 16, 1), dtype=torch.uint8, generator=gen).numpy()
    path = str(tmp_path / f'real_{n}_{seed}.npz')
    np.savez(path, arr_0=imgs)
    return path


def build_metrics(real):
    return [FID(detector=DET, real=real, name='FD'), FID(detector=DET, real=real, name='FD_eig', fd_method='eigen'),
            InceptionScore(detector=DET, splits=4), KID(detector=DET, real=real, subset_size=20, num_subsets=3),
            PRDC(detector=DET, real=real), PrecisionRecall(detector=DET, real=real),
            ClassifierAccuracy(detector=DET)]


def run_metrics(metrics, samples, batch=8, rank=0, world=1, size=None):
    mine = samples[rank::world]  # DefaultSampler(shuffle=False, round_up=False) split
    for start in range(0, len(mine), batch):
        chunk = [dict(s) for s in mine[start:start + batch]]  # fresh dicts per batch, as test_step makes them
        for m in metrics:
            m.process(None, chunk)
    out = {}
    for m in metrics:
        out.update(m.evaluate(len(samples) if size is None else size))
    return out


def test_metric_values_match_functions(tmp_path):
    real = make_real(tmp_path)
    samples = make_samples()
    out = run_metrics(build_metrics(real), samples)
    det = get_detector(DET)
    fake = det(torch.stack([s['fake'] for s in samples]))
    realf = det(torch.from_numpy(np.load(real)['arr_0']).permute(0, 3, 1, 2))
    f, r = fake['pool'].numpy(), realf['pool'].numpy()
    assert out['FD'] == pytest.approx(fid_from_features(f, r), rel=1e-6)
    assert out['FD_eig'] == pytest.approx(out['FD'], rel=1e-6)
    assert out['IS'] == pytest.approx(inception_score(fake['logits'].numpy(), 4)[0], rel=1e-9)
    assert out['KID'] == pytest.approx(compute_kid(r, f, 3, 20)[0], rel=1e-9)
    prdc = compute_prdc(r, f, 5)
    for k, v in prdc.items():
        assert out[f'PRDC/{k}'] == pytest.approx(v)
    acc = (fake['logits'].argmax(1) == torch.tensor([s['label'] for s in samples])).double().mean()
    assert out['accuracy'] == pytest.approx(float(acc))
    assert set(out) >= {'PR/precision', 'PR/recall', 'IS_std', 'KID_std'}


def _worker(rank, world, port, real, samples, queue):
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        out = run_metrics(build_metrics(real), samples, batch=5, rank=rank, world=world)
        queue.put((rank, out))
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_equals_one_process(tmp_path):
    real = make_real(tmp_path, n=41)
    samples = make_samples(n=47)
    single = run_metrics(build_metrics(real), samples, batch=7)
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, real, samples, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank in (0, 1):
        assert results[rank].keys() == single.keys()
        for k, v in single.items():
            assert results[rank][k] == pytest.approx(v, rel=1e-6, abs=1e-12), k  # float32 batch effects


def test_reference_files(tmp_path):
    real = make_real(tmp_path)
    det = get_detector(DET)
    feats = det(torch.from_numpy(np.load(real)['arr_0']).permute(0, 3, 1, 2))['pool'].numpy().astype(np.float64)
    mu, sigma = feats.mean(0), np.cov(feats, rowvar=False)
    ours = str(tmp_path / 'ref.npz')
    save_reference(ours, mu=mu, sigma=sigma, features=feats, meta=dict(det.protocol, num_images=len(feats)))
    ref = load_reference(ours)
    assert ref['format'] == 'kdm' and ref['num_images'] == len(feats) and ref['meta']['detector'].startswith('Digits')
    samples = make_samples()
    via_ref = run_metrics([FID(detector=DET, ref=ours, name='FD'), KID(detector=DET, ref=ours, subset_size=20)],
                          samples)
    via_img = run_metrics([FID(detector=DET, real=real, name='FD'), KID(detector=DET, real=real, subset_size=20)],
                          samples)
    assert via_ref == pytest.approx(via_img, rel=1e-6)
    # ADM-style batch: arr_0 images only -> statistics are computed from them
    assert run_metrics([FID(detector=DET, ref=real, name='FD')], samples)['FD'] == pytest.approx(via_img['FD'],
                                                                                                rel=1e-6)
    # EDM-style npz (mu, sigma, no protocol) is assumed to be Inception statistics: refused for another detector
    edm = str(tmp_path / 'edm.npz')
    np.savez(edm, mu=mu, sigma=sigma)
    assert load_reference(edm)['format'] == 'edm'
    with pytest.raises(ValueError, match='Inception statistics'):
        run_metrics([FID(detector=DET, ref=edm)], samples)
    # a reference of another dimension is a clear error
    other = str(tmp_path / 'other.npz')
    save_reference(other, mu=np.zeros(3), sigma=np.eye(3), meta=dict(det.protocol))
    with pytest.raises(ValueError, match='64-d but the reference statistics are 3-d'):
        run_metrics([FID(detector=DET, ref=other)], samples)
    # KID/PRDC need features: a statistics-only file says so
    with pytest.raises(ValueError, match='--features'):
        run_metrics([PRDC(detector=DET, ref=other)], samples)
    with pytest.raises(FileNotFoundError, match='fid_ref.py'):
        load_reference(str(tmp_path / 'missing.npz'))


def test_sfid_uses_spatial_statistics(tmp_path):
    # a tiny detector with a 'spatial' output, registered for the test
    from kdm.registry import MODELS

    @MODELS.register_module(force=True)
    class _TinySpatial(torch.nn.Module):
        feature_dims = dict(pool=4, spatial=6)
        input_channels = (1, 3)
        protocol = dict(detector='FIDInceptionV3 (test stand-in)', weights='random', weights_sha256='random')

        def forward(self, images, features=('pool', 'spatial')):
            x = images.float().flatten(1)
            return {'pool': x[:, :4], 'spatial': x[:, 4:10]}

    samples = make_samples(n=30)
    x = torch.stack([s['fake'] for s in samples]).float().flatten(1).numpy()
    ref = str(tmp_path / 'adm.npz')
    rs = np.random.RandomState(0)
    np.savez(ref, mu=np.zeros(4), sigma=np.eye(4), mu_s=rs.rand(6), sigma_s=np.eye(6) * 2)
    out = run_metrics([SFID(detector=dict(type='_TinySpatial'), ref=ref)], samples)
    from kdm.evaluation.fid import frechet_distance
    expect = frechet_distance(x[:, 4:10].mean(0), np.cov(x[:, 4:10], rowvar=False), np.load(ref)['mu_s'],
                              np.load(ref)['sigma_s'])
    assert out['sFID'] == pytest.approx(expect, rel=1e-6)


def test_bad_samples_and_padding(tmp_path):
    real = make_real(tmp_path)
    fid = FID(detector=DET, real=real)
    with pytest.raises(TypeError, match='uint8'):
        fid.process(None, [dict(fake=torch.rand(1, 16, 16) * 2 - 1, seed=0, label=-1)])
    with pytest.raises(KeyError, match='no "fake" image'):
        fid.process(None, [dict(img=torch.zeros(1, 16, 16, dtype=torch.uint8))])
    samples = make_samples(n=12)
    with pytest.raises(RuntimeError, match='round_up=False'):
        run_metrics([FID(detector=DET, real=real)], samples + samples[:2], size=12)  # padded to 14
    with pytest.raises(ValueError, match='label >= 0'):
        ClassifierAccuracy(detector=DET).process(None, make_samples(n=4, labelled=False))
    with pytest.raises(ValueError, match='subset_size=1000'):
        run_metrics([KID(detector=DET, real=real)], samples)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='no images'):
        run_metrics([FID(detector=DET, real=str(empty))], samples)


def test_edm2_pickle_reference(tmp_path):
    """EDM2 ``dataset-refs/*.pkl`` (``{'num_images', 'fid': {'mu', 'sigma'}, 'fd_dinov2': ...}``) through the
    restricted unpickler: FID against it equals the Fréchet distance to its statistics; a pickle without FID
    statistics is a clear error."""
    import pickle

    from kdm.evaluation.fid import frechet_distance
    from kdm.registry import MODELS

    @MODELS.register_module(force=True)
    class _TinyPool(torch.nn.Module):
        feature_dims = dict(pool=5)
        input_channels = (1, 3)
        protocol = dict(detector='FIDInceptionV3 (test stand-in)', weights='random', weights_sha256='random')

        def forward(self, images, features=('pool', )):
            return {'pool': images.float().flatten(1)[:, :5]}

    rs = np.random.RandomState(0)
    a = rs.randn(5, 5)
    stats = dict(num_images=50000, fid=dict(mu=rs.randn(5), sigma=a @ a.T), fd_dinov2=dict(mu=np.zeros(3),
                                                                                            sigma=np.eye(3)))
    path = tmp_path / 'img512.pkl'
    path.write_bytes(pickle.dumps(stats, protocol=4))
    ref = load_reference(str(path))
    assert ref['format'] == 'edm2-pkl' and ref['num_images'] == 50000 and ref['mu'].dtype == np.float64
    samples = make_samples(n=30)
    out = run_metrics([FID(detector=dict(type='_TinyPool'), ref=str(path))], samples)
    x = torch.stack([s['fake'] for s in samples]).float().flatten(1)[:, :5].numpy().astype(np.float64)
    expect = frechet_distance(x.mean(0), np.cov(x, rowvar=False), stats['fid']['mu'], stats['fid']['sigma'])
    assert out['FID'] == pytest.approx(expect, rel=1e-9)
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(pickle.dumps(dict(fd_dinov2=stats['fd_dinov2'])))
    with pytest.raises(ValueError, match='no FID statistics'):
        load_reference(str(bad))


def test_gathered_metrics_drop_padded_duplicates(tmp_path):
    """A padded sampler (round_up=True) repeats samples on the last rank; gathered metrics keep each seed once, so
    their values equal those of the exact sample set."""
    real = make_real(tmp_path)
    samples = make_samples(n=12)

    def build():
        return [InceptionScore(detector=DET, splits=3), PRDC(detector=DET, real=real, nearest_k=3),
                KID(detector=DET, real=real, subset_size=10, num_subsets=2)]

    exact = run_metrics(build(), samples)
    padded = run_metrics(build(), samples + samples[:2], size=12)
    assert padded == pytest.approx(exact, rel=1e-12)
