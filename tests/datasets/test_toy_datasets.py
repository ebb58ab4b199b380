# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""scikit-learn digits and the 2-D toy distributions."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from kdm.datasets import DigitsDataset, Toy2DDataset


def test_digits_split_sizes_disjoint_deterministic():
    train, test, full = DigitsDataset('train'), DigitsDataset('test'), DigitsDataset('all')
    assert (len(train), len(test), len(full)) == (1438, 359, 1797)
    assert set(train.indices).isdisjoint(test.indices)
    assert sorted(np.concatenate([train.indices, test.indices]).tolist()) == list(range(1797))
    # stratified: every class keeps about a fifth of its images for test
    counts = np.bincount(test.labels.numpy(), minlength=10)
    all_counts = np.bincount(full.labels.numpy(), minlength=10)
    assert np.all(np.abs(counts - 0.2 * all_counts) <= 0.5)
    again = DigitsDataset('test')
    assert np.array_equal(again.indices, test.indices) and torch.equal(again.images, test.images)
    other = DigitsDataset('test', split_seed=1)
    assert not np.array_equal(other.indices, test.indices) and len(other) == 359
    assert len(DigitsDataset('test', test_fraction=0.5)) == sum(round(0.5 * c) for c in all_counts)


def test_digits_items_and_values():
    ds = DigitsDataset('all', resolution=16)
    assert ds.metainfo == dict(name='digits', split='all', num_images=1797, resolution=16, channels=1,
                               num_classes=10, test_fraction=0.2, split_seed=0)
    item = ds[5]
    assert item['img'].dtype == torch.float32 and item['img'].shape == (1, 16, 16)
    assert ds.images.min() == -1 and ds.images.max() == 1
    assert item['label'].dtype == torch.int64 and item['label'].ndim == 0
    ref = load_digits()
    assert int(item['label']) == ref.target[5]
    # resolution 8 is the original pixels: v / 8 - 1
    small = DigitsDataset('all', resolution=8)
    torch.testing.assert_close(small[5]['img'][0], torch.tensor(ref.images[5] / 8 - 1, dtype=torch.float32))
    # bilinear 8 -> 16 with align_corners=False: output pixel 1 samples input coordinate 0.25 (= (1 + 0.5) / 2 - 0.5)
    x = torch.tensor(ref.images[5] / 8 - 1, dtype=torch.float32)
    expected = 0.75 * 0.75 * x[0, 0] + 0.75 * 0.25 * (x[0, 1] + x[1, 0]) + 0.25 * 0.25 * x[1, 1]
    torch.testing.assert_close(item['img'][0, 1, 1], expected)
    torch.testing.assert_close(item['img'][0, 0, 0], x[0, 0])  # the border clamps
    u = ds.get_uint8(5)
    assert u.dtype == torch.uint8 and u.shape == (1, 16, 16)
    assert torch.equal(u, (ds[5]['img'] * 127.5 + 128).clamp(0, 255).to(torch.uint8))
    assert DigitsDataset('train', resolution=32)[0]['img'].shape == (1, 32, 32)


def test_digits_bad_args():
    with pytest.raises(ValueError, match='split'):
        DigitsDataset('val')
    with pytest.raises(ValueError, match='test_fraction'):
        DigitsDataset(test_fraction=1.0)


@pytest.mark.parametrize('name', ['moons', '8gaussians', 'checkerboard', 'circles'])
def test_toy2d(name):
    ds = Toy2DDataset(name, num_samples=2000, seed=3)
    assert len(ds) == 2000 and ds.metainfo['dim'] == 2 and ds.metainfo['num_classes'] == 0
    item = ds[7]
    assert item['img'].dtype == torch.float32 and item['img'].shape == (2,)
    assert item['label'].dtype == torch.int64 and int(item['label']) == -1
    assert ds.points.abs().max() < 1.3 and ds.points.abs().max() > 0.5  # roughly [-1, 1]
    assert torch.equal(Toy2DDataset(name, num_samples=2000, seed=3).points, ds.points)
    assert not torch.equal(Toy2DDataset(name, num_samples=2000, seed=4).points, ds.points)
    with pytest.raises(TypeError, match='not images'):
        ds.get_uint8(0)


def test_toy2d_shapes_of_distributions():
    g = Toy2DDataset('8gaussians', num_samples=4000, noise=0.0).points
    assert torch.allclose(g.norm(dim=1), torch.full((4000,), 0.8))
    assert len(torch.unique(torch.round(torch.atan2(g[:, 1], g[:, 0]) / (np.pi / 4)))) == 8
    c = Toy2DDataset('checkerboard', num_samples=4000).points
    cell = torch.floor((c + 1) * 2).long()
    assert torch.all((cell.sum(1) % 2) == 0)  # only the filled squares
    r = Toy2DDataset('circles', num_samples=1000, noise=0.0).points.norm(dim=1)
    assert torch.all(torch.isclose(r, torch.tensor(0.9)) | torch.isclose(r, torch.tensor(0.45)))
    with pytest.raises(ValueError, match='unknown toy distribution'):
        Toy2DDataset('spirals')
