# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Reflow pair files and DKDM's data-limited mixing."""
import os
import pickle

import numpy as np
import pytest
import torch

from kdm.datasets import MixedDataset, NpzDataset, SyntheticPairDataset, save_npz_batch, save_pairs
from kdm.registry import DATASETS


def make_pairs(n=5, shape=(3, 4, 4), labelled=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, *shape, generator=g)
    sample = torch.tanh(noise * 2)
    label = torch.arange(n) % 3 if labelled else None
    return noise, sample, label


@pytest.mark.parametrize('suffix', ['.pt', '.npz'])
def test_pairs_roundtrip(tmp_path, suffix):
    noise, sample, label = make_pairs()
    path = str(tmp_path / f'pairs{suffix}')
    save_pairs(path, noise, sample, label)
    assert os.listdir(tmp_path) == [f'pairs{suffix}']  # the temporary file was renamed
    ds = SyntheticPairDataset(path)
    assert len(ds) == 5
    assert ds.metainfo['resolution'] == 4 and ds.metainfo['channels'] == 3 and ds.metainfo['num_classes'] == 3
    item = ds[4]
    assert item['img'].dtype == torch.float32 and item['noise'].dtype == torch.float32
    torch.testing.assert_close(item['img'], sample[4])
    torch.testing.assert_close(item['noise'], noise[4])
    assert item['label'].dtype == torch.int64 and int(item['label']) == 1
    u = ds.get_uint8(4)
    assert u.dtype == torch.uint8 and torch.equal(u, (sample[4] * 127.5 + 128).clamp(0, 255).to(torch.uint8))
    ds2 = pickle.loads(pickle.dumps(ds))  # lazily reopened in a new process
    assert ds2._data is None and torch.equal(ds2[2]['noise'], ds[2]['noise'])


def test_pt_pairs_load_with_weights_only(tmp_path):
    noise, sample, _ = make_pairs(labelled=False)
    path = tmp_path / 'evil.pt'

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))

    torch.save(dict(noise=noise, sample=sample, extra=Evil()), path)
    with pytest.raises(pickle.UnpicklingError):
        SyntheticPairDataset(str(path))


def test_pair_directory_shards_and_toy_pairs(tmp_path):
    # two kdm shards (2-D toy pairs, float16) and a RectifiedFlow/SlimFlow seed folder
    n1, s1, _ = make_pairs(3, (2,), labelled=False, seed=1)
    n2, s2, _ = make_pairs(4, (2,), labelled=False, seed=2)
    save_pairs(str(tmp_path / 'a.pt'), n1.half(), s1.half())
    save_pairs(str(tmp_path / 'b.npz'), n2, s2)
    n3, s3, _ = make_pairs(2, (2,), labelled=False, seed=3)
    os.makedirs(tmp_path / 'seed7')
    np.save(tmp_path / 'seed7' / 'z0.npy', n3.numpy())
    np.save(tmp_path / 'seed7' / 'z1.npy', s3.numpy())
    ds = SyntheticPairDataset(str(tmp_path))
    assert len(ds) == 9 and ds.metainfo['resolution'] is None and ds.metainfo['num_classes'] == 0
    torch.testing.assert_close(ds[0]['img'], s1[0].half().float())
    torch.testing.assert_close(ds[3]['noise'], n2[0])
    torch.testing.assert_close(ds[8]['img'], s3[1])
    assert ds[-1]['label'] == -1 and ds[8]['img'].shape == (2,)
    with pytest.raises(IndexError):
        ds[9]
    with pytest.raises(TypeError, match='not images'):
        ds.get_uint8(0)


def test_pair_errors(tmp_path):
    noise, sample, label = make_pairs()
    with pytest.raises(ValueError, match='same shape'):
        save_pairs(str(tmp_path / 'x.pt'), noise, sample[:, :2])
    with pytest.raises(ValueError, match='float'):
        save_pairs(str(tmp_path / 'x.pt'), noise, (sample * 100).to(torch.uint8))
    with pytest.raises(ValueError, match='label must be integers'):
        save_pairs(str(tmp_path / 'x.pt'), noise, sample, label.float())
    with pytest.raises(ValueError, match='.pt or .npz'):
        save_pairs(str(tmp_path / 'x.pkl'), noise, sample)
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError, match='does not exist'):
        SyntheticPairDataset(str(tmp_path / 'missing.pt'))
    with pytest.raises(ValueError, match='no pair files'):
        SyntheticPairDataset(str(tmp_path))
    torch.save(dict(z=noise), tmp_path / 'wrong.pt')
    with pytest.raises(ValueError, match="'noise' and 'sample'"):
        SyntheticPairDataset(str(tmp_path / 'wrong.pt'))


def test_mixed_dataset_counts_and_reference_rng(tmp_path):
    L = 20
    real = np.full((L, 4, 4, 3), 10, np.uint8)
    real[:, 0, 0, 0] = np.arange(L)  # image i carries its index
    syn = real.copy()
    syn[..., 1] = 200  # synthetic images are marked in channel 1
    save_npz_batch(str(tmp_path / 'real.npz'), real)
    save_npz_batch(str(tmp_path / 'syn.npz'), syn)
    real_ds, syn_ds = NpzDataset(str(tmp_path / 'real.npz')), NpzDataset(str(tmp_path / 'syn.npz'))
    for r, n_real in [(0.0, 0), (0.05, 1), (0.15, 3), (0.2, 4), (1.0, 20)]:
        mixed = MixedDataset(real_ds, syn_ds, real_fraction=r)
        assert len(mixed) == L and mixed.metainfo['num_real'] == n_real
        assert mixed.metainfo['num_synthetic'] == L - n_real
        marks = [int(mixed.get_uint8(i)[1, 0, 0]) for i in range(L)]
        assert marks == [10] * n_real + [200] * (L - n_real)  # real first, as mix.py concatenates
        # the same draws as DKDM's datasets/mix.py with np.random.seed(0)
        np.random.seed(0)
        exp_real = np.random.choice(list(range(L)), n_real, replace=False)
        exp_syn = np.random.choice(list(range(L)), L - n_real, replace=False)
        got = [int(mixed.get_uint8(i)[0, 0, 0]) for i in range(L)]
        assert got == list(exp_real) + list(exp_syn)
        assert len(set(got[:n_real])) == n_real and len(set(got[n_real:])) == L - n_real  # no replacement
        assert mixed[0]['img'].shape == (3, 4, 4) and mixed.get_label(0) == -1
    built = DATASETS.build(dict(type='MixedDataset', real_fraction=0.1,
                                real=dict(type='NpzDataset', path=str(tmp_path / 'real.npz')),
                                synthetic=dict(type='NpzDataset', path=str(tmp_path / 'syn.npz'))))
    assert built.metainfo['num_real'] == 2


def test_mixed_dataset_errors(tmp_path):
    save_npz_batch(str(tmp_path / 'a.npz'), np.zeros((4, 4, 4, 3), np.uint8))
    save_npz_batch(str(tmp_path / 'b.npz'), np.zeros((6, 4, 4, 3), np.uint8))
    save_npz_batch(str(tmp_path / 'c.npz'), np.zeros((4, 8, 8, 3), np.uint8))
    a, b, c = (NpzDataset(str(tmp_path / f'{k}.npz')) for k in 'abc')
    with pytest.raises(ValueError, match='same length'):
        MixedDataset(a, b, 0.5)
    assert len(MixedDataset(a, b, 0.5, length=4)) == 4
    with pytest.raises(ValueError, match='real_fraction'):
        MixedDataset(a, a, 1.5)
    with pytest.raises(ValueError, match='resolution'):
        MixedDataset(a, c, 0.5)
