# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Every config under configs/_base_/datasets/ loads, builds its datasets through kdm's registry, and its
dataloaders build (sampler, collate) and yield a batch of the documented item format."""
import glob
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from kdm.datasets import save_npz_batch
from kdm.registry import DATASETS

CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', '_base_', 'datasets')
CONFIGS = sorted(glob.glob(os.path.join(CONFIG_DIR, '*.py')))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def write_fake_cifar(root):
    folder = os.path.join(root, 'cifar-10-batches-py')
    os.makedirs(folder, exist_ok=True)
    for name in [f'data_batch_{k}' for k in range(1, 6)] + ['test_batch']:
        entry = {b'batch_label': name.encode(), b'labels': [1, 2],
                 b'data': np.random.default_rng(0).integers(0, 256, (2, 3072), dtype=np.uint8)}
        with open(os.path.join(folder, name), 'wb') as f:
            pickle.dump(entry, f, protocol=2)
    return root


def point_at_fixture(ds_cfg, tmp_path):
    """Redirect a dataset config that reads files to a tiny fixture; generated datasets are left as they are."""
    kind = ds_cfg['type']
    if kind == 'CIFAR10Dataset':
        ds_cfg['data_root'] = write_fake_cifar(str(tmp_path / 'cifar'))
    elif kind == 'NpzDataset':
        path = str(tmp_path / 'batch.npz')
        save_npz_batch(path, np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8),
                       labels=np.arange(3))
        ds_cfg['path'] = path
    elif kind in ('ImageFolderDataset', 'EDMZipDataset', 'MixedDataset', 'SyntheticPairDataset'):
        pytest.fail(f'add a fixture for {kind} to this test')


def test_there_are_dataset_configs():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {'cifar10.py', 'digits.py', 'celeba64.py', 'imagenet32.py', 'toy2d.py', 'generation.py'} <= names


@pytest.mark.parametrize('cfg_path', CONFIGS, ids=os.path.basename)
def test_dataset_config_builds(cfg_path, tmp_path):
    cfg = Config.fromfile(cfg_path)
    loaders = [k for k in LOADERS if k in cfg]
    assert loaders, f'{cfg_path} defines no dataloader'
    with DefaultScope.overwrite_default_scope('kdm'):
        for key in loaders:
            loader_cfg = cfg[key]
            assert loader_cfg['collate_fn'] == dict(type='default_collate')
            point_at_fixture(loader_cfg['dataset'], tmp_path)
            dataset = DATASETS.build(loader_cfg['dataset'])
            assert len(dataset) > 0 and isinstance(dataset.metainfo, dict)
            loader_cfg.update(num_workers=0, persistent_workers=False, batch_size=2)
            batch = next(iter(Runner.build_dataloader(loader_cfg.to_dict(), seed=0)))
            if key == 'train_dataloader':
                assert loader_cfg['sampler']['type'] == 'ResumableInfiniteSampler'
                assert batch['img'].dtype == torch.float32 and batch['img'].shape[0] == 2
                assert batch['img'].min() >= -1 and batch['img'].max() <= 1
                assert batch['label'].dtype == torch.int64 and batch['label'].shape == (2,)
            else:
                assert loader_cfg['sampler'] == dict(type='DefaultSampler', shuffle=False, round_up=False)
                assert batch['seed'].tolist() == [0, 1] and batch['label'].dtype == torch.int64


def test_digits_config_builds_the_real_digits():
    cfg = Config.fromfile(os.path.join(CONFIG_DIR, 'digits.py'))
    train = DATASETS.build(cfg.train_dataloader.dataset)
    test = DATASETS.build(cfg.digits_test)
    assert (len(train), len(test)) == (1438, 359)
    assert train.metainfo['resolution'] == 16 and train[0]['img'].shape == (1, 16, 16)
    assert cfg.train_dataloader.batch_size == 64 and cfg.train_dataloader.num_workers == 0
