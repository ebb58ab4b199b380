# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""CIFAR-10 pickles, image folders, EDM zips and npz batches, on tiny fixtures written in tmp_path."""
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from kdm.datasets import CIFAR10Dataset, EDMZipDataset, ImageFolderDataset, NpzDataset, load_array, save_npz_batch


def check_item(item, channels, res, label=None):
    img = item['img']
    assert img.dtype == torch.float32 and img.shape == (channels, res, res)
    assert img.min() >= -1 and img.max() <= 1
    assert item['label'].dtype == torch.int64 and item['label'].ndim == 0
    if label is not None:
        assert int(item['label']) == label


def check_uint8_roundtrip(ds, idx):
    u = ds.get_uint8(idx)
    assert u.dtype == torch.uint8 and u.ndim == 3
    torch.testing.assert_close(ds[idx]['img'], u.float() / 127.5 - 1)
    return u


# ---------------------------------------------------------------- CIFAR-10
def write_cifar(root, n_per_batch=4, protocol=2):
    """Fake batches in the official layout: dict(b'batch_label', b'labels', b'data' uint8 (N, 3072), b'filenames')."""
    folder = os.path.join(root, 'cifar-10-batches-py')
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    batches = {}
    for i, name in enumerate([f'data_batch_{k}' for k in range(1, 6)] + ['test_batch']):
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(n_per_batch)]
        entry = {b'batch_label': name.encode(), b'labels': labels, b'data': data,
                 b'filenames': [f'{name}_{j}.png'.encode() for j in range(n_per_batch)]}
        with open(os.path.join(folder, name), 'wb') as f:
            pickle.dump(entry, f, protocol=protocol)
        batches[name] = (data, labels)
    return folder, batches


@pytest.mark.parametrize('protocol', [2, 5])
def test_cifar10_reads_official_layout(tmp_path, protocol):
    folder, batches = write_cifar(str(tmp_path), protocol=protocol)
    train = CIFAR10Dataset(str(tmp_path), split='train')  # the parent folder
    test = CIFAR10Dataset(folder, split='test')  # the batches folder itself
    assert len(train) == 20 and len(test) == 4
    assert train.metainfo['num_images'] == 20 and train.metainfo['num_classes'] == 10
    assert train.metainfo['resolution'] == 32 and train.metainfo['channels'] == 3
    data, labels = batches['data_batch_2']
    u = check_uint8_roundtrip(train, 5)  # first image of data_batch_2
    # a row is 1024 R, 1024 G, 1024 B of a row-major 32x32 image
    assert torch.equal(u[0, 0, :], torch.from_numpy(data[1, :32]))
    assert torch.equal(u[1, 0, 0], torch.tensor(data[1, 1024]))
    assert torch.equal(u[2, 31, 31], torch.tensor(data[1, 3071]))
    check_item(train[5], 3, 32, label=labels[1])
    check_item(test[0], 3, 32, label=batches['test_batch'][1][0])


def test_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'cifar-10-python\.tar\.gz.*cs\.toronto\.edu'):
        CIFAR10Dataset(str(tmp_path / 'nowhere'))
    folder, _ = write_cifar(str(tmp_path))
    with pytest.raises(ValueError, match='split'):
        CIFAR10Dataset(folder, split='val')
    os.remove(os.path.join(folder, 'data_batch_3'))
    with pytest.raises(FileNotFoundError, match='data_batch_3'):
        CIFAR10Dataset(folder)


def test_cifar10_refuses_code_in_pickles(tmp_path):
    folder, _ = write_cifar(str(tmp_path))
    with open(os.path.join(folder, 'test_batch'), 'wb') as f:
        pickle.dump({b'data': os.system, b'labels': []}, f)
    with pytest.raises(ValueError, match='posix.system|os.system|nt.system'):
        CIFAR10Dataset(folder, split='test')


# ---------------------------------------------------------------- image folders and EDM zips
def make_images(n, res=8, mode='RGB', seed=0):
    rng = np.random.default_rng(seed)
    shape = (res, res, 3) if mode == 'RGB' else (res, res)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def test_image_folder_recursive_sorted_with_labels(tmp_path):
    imgs = make_images(3)
    names = ['b/img1.png', 'a/img0.png', 'c.jpg']
    for arr, name in zip(imgs, names):
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        Image.fromarray(arr).save(tmp_path / name, quality=100)
    (tmp_path / 'notes.txt').write_text('not an image')
    (tmp_path / 'dataset.json').write_text(json.dumps({'labels': [[n, i + 3] for i, n in enumerate(names)]}))
    ds = ImageFolderDataset(str(tmp_path))
    assert ds.fnames == ['a/img0.png', 'b/img1.png', 'c.jpg']
    assert ds.metainfo['num_images'] == 3 and ds.metainfo['num_classes'] == 6
    assert ds.metainfo['resolution'] == 8 and ds.metainfo['channels'] == 3
    assert torch.equal(check_uint8_roundtrip(ds, 0), torch.from_numpy(imgs[1]).permute(2, 0, 1))  # PNG is exact
    check_item(ds[0], 3, 8, label=4)
    check_item(ds[2], 3, 8, label=5)
    assert ImageFolderDataset(str(tmp_path), labels=False)[0]['label'] == -1
    resized = ImageFolderDataset(str(tmp_path), resolution=4, resample='bilinear')
    check_item(resized[1], 3, 4)
    assert resized.metainfo['resolution'] == 4


def test_image_folder_grey_and_errors(tmp_path):
    for i, arr in enumerate(make_images(2, mode='L')):
        Image.fromarray(arr).save(tmp_path / f'{i}.png')
    ds = ImageFolderDataset(str(tmp_path))
    assert ds.metainfo['channels'] == 1 and ds.get_uint8(1).shape == (1, 8, 8)
    check_item(ds[1], 1, 8, label=-1)
    assert ImageFolderDataset(str(tmp_path), channels=3).get_uint8(0).shape == (3, 8, 8)
    Image.fromarray(make_images(1, res=6, mode='L')[0]).save(tmp_path / '9.png')
    with pytest.raises(ValueError, match='9.png is 6x6'):
        ImageFolderDataset(str(tmp_path))[2]
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ImageFolderDataset(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no images'):
        ImageFolderDataset(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match='no dataset.json'):
        ImageFolderDataset(str(tmp_path), labels=True)


def write_edm_zip(path, imgs, labels=None):
    """The layout of EDM's dataset_tool.py: 00000/img00000000.png, ... + dataset.json."""
    names = [f'{i // 1000:05d}/img{i:08d}.png' for i in range(len(imgs))]
    with zipfile.ZipFile(path, 'w') as zf:
        for name, arr in zip(names, imgs):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format='png')
            zf.writestr(name, buf.getvalue())
        zf.writestr('dataset.json', json.dumps({'labels': None if labels is None else
                                                [[n, int(c)] for n, c in zip(names, labels)]}))
    return names


def test_edm_zip(tmp_path):
    imgs = make_images(5)
    write_edm_zip(tmp_path / 'd.zip', imgs, labels=[1, 0, 2, 2, 1])
    ds = EDMZipDataset(str(tmp_path / 'd.zip'))
    assert len(ds) == 5 and ds.metainfo['num_classes'] == 3 and ds.metainfo['resolution'] == 8
    assert torch.equal(check_uint8_roundtrip(ds, 3), torch.from_numpy(imgs[3]).permute(2, 0, 1))
    check_item(ds[2], 3, 8, label=2)
    # lazily opened: pickling (spawned workers) drops the handle, the copy reopens it
    ds2 = pickle.loads(pickle.dumps(ds))
    assert ds2._zip is None and torch.equal(ds2.get_uint8(4), ds.get_uint8(4))
    ds.close()
    # labels: null -> unlabelled
    write_edm_zip(tmp_path / 'u.zip', make_images(2, mode='L'))
    u = EDMZipDataset(str(tmp_path / 'u.zip'))
    assert u.metainfo['num_classes'] == 0 and u.metainfo['channels'] == 1
    check_item(u[0], 1, 8, label=-1)


def test_edm_zip_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='dataset_tool'):
        EDMZipDataset(str(tmp_path / 'missing.zip'))
    (tmp_path / 'bad.zip').write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='not a zip'):
        EDMZipDataset(str(tmp_path / 'bad.zip'))
    with zipfile.ZipFile(tmp_path / 'empty.zip', 'w') as zf:
        zf.writestr('dataset.json', '{"labels": null}')
    with pytest.raises(ValueError, match='no images'):
        EDMZipDataset(str(tmp_path / 'empty.zip'))
    names = write_edm_zip(tmp_path / 'l.zip', make_images(2), labels=[0, 1])
    with zipfile.ZipFile(tmp_path / 'l.zip', 'a') as zf:
        zf.writestr('extra.png', zf.read(names[0]))
    with pytest.raises(ValueError, match='no label for image extra.png'):
        EDMZipDataset(str(tmp_path / 'l.zip'))


# ---------------------------------------------------------------- npz batches
@pytest.mark.parametrize('compressed', [False, True])
def test_npz_dataset(tmp_path, compressed):
    imgs = np.stack(make_images(6))
    labels = np.arange(6) % 4
    path = str(tmp_path / 'samples_6x8x8x3.npz')
    (np.savez_compressed if compressed else np.savez)(path, imgs, labels)  # ADM's arr_0 / arr_1
    ds = NpzDataset(path, label_key='arr_1')
    assert isinstance(ds._images, np.memmap) != compressed  # mapped in place unless compressed
    assert len(ds) == 6 and ds.metainfo['num_classes'] == 4 and ds.metainfo['channels'] == 3
    assert torch.equal(check_uint8_roundtrip(ds, 5), torch.from_numpy(imgs[5]).permute(2, 0, 1))
    check_item(ds[5], 3, 8, label=1)
    assert NpzDataset(path)[0]['label'] == -1
    ds2 = pickle.loads(pickle.dumps(ds))
    assert torch.equal(ds2.get_uint8(2), ds.get_uint8(2))


def test_save_npz_batch_and_npy(tmp_path):
    imgs = np.stack(make_images(3, mode='L'))[..., None]
    save_npz_batch(str(tmp_path / 'b.npz'), torch.from_numpy(imgs), labels=torch.tensor([7, 8, 9]))
    assert sorted(os.listdir(tmp_path)) == ['b.npz']  # no temporary file left behind
    ds = NpzDataset(str(tmp_path / 'b.npz'), label_key='arr_1')
    assert isinstance(ds._images, np.memmap)
    check_item(ds[2], 1, 8, label=9)
    np.save(tmp_path / 'a.npy', imgs)
    assert isinstance(load_array(str(tmp_path / 'a.npy')), np.memmap)
    assert NpzDataset(str(tmp_path / 'a.npy')).get_uint8(1).shape == (1, 8, 8)


def test_npz_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        NpzDataset(str(tmp_path / 'missing.npz'))
    np.savez(tmp_path / 'f.npz', images=np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(KeyError, match=r"no array 'arr_0'.*images"):
        NpzDataset(str(tmp_path / 'f.npz'))
    with pytest.raises(ValueError, match='uint8'):
        NpzDataset(str(tmp_path / 'f.npz'), key='images')
    np.savez(tmp_path / 'c.npz', np.zeros((2, 3, 8, 8), np.uint8), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match='NCHW'):
        NpzDataset(str(tmp_path / 'c.npz'))
    np.savez(tmp_path / 'l.npz', np.zeros((2, 8, 8, 3), np.uint8), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r'labels must be integers of shape \(2,\)'):
        NpzDataset(str(tmp_path / 'l.npz'), label_key='arr_1')
    with pytest.raises(ValueError, match='uint8'):
        save_npz_batch(str(tmp_path / 'x.npz'), np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match='NCHW'):
        save_npz_batch(str(tmp_path / 'x.npz'), np.zeros((2, 3, 8, 8), np.uint8))
    assert not (tmp_path / 'x.npz').exists()


def test_zip_and_npz_in_worker_processes(tmp_path):
    """Each worker opens its own zip handle / memory map (the parent's handle is already open)."""
    imgs = make_images(6)
    write_edm_zip(tmp_path / 'd.zip', imgs, labels=list(range(6)))
    save_npz_batch(str(tmp_path / 'd.npz'), np.stack(imgs), labels=np.arange(6))
    for ds in (EDMZipDataset(str(tmp_path / 'd.zip')), NpzDataset(str(tmp_path / 'd.npz'), label_key='arr_1')):
        ds.get_uint8(0)  # open in the parent first
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
        batches = list(loader)
        assert torch.equal(torch.cat([b['label'] for b in batches]), torch.arange(6))
        torch.testing.assert_close(batches[1]['img'][2], ds[5]['img'])
