# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The Inception port (key layout, outputs, preprocessing), weight-file handling and the NVIDIA converter."""
import os

import pytest
import torch
import torch.nn.functional as F

from kdm.evaluation.detectors import DigitsClassifier, FIDInceptionV3, tf1_bilinear_resize
from kdm.evaluation.detectors.inception import check_uint8_images
from kdm.evaluation.detectors.nvidia import load_torchscript_detector, tf_to_torch_names


@pytest.fixture(scope='module')
def inception():
    return FIDInceptionV3(random_init=True, seed=0)


@pytest.fixture(scope='module')
def pytorch_fid_state_dict(tmp_path_factory):
    """A random state dict in the layout of pt_inception-2015-12-05-6726825d.pth (torchvision Inception3 with
    num_classes=1008, aux_logits=False), saved as a .pth file."""
    import torchvision
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    gen = torch.Generator().manual_seed(1)
    sd = {}
    for k, v in net.state_dict().items():
        if k.endswith('running_var'):
            sd[k] = torch.rand(v.shape, generator=gen) + 0.5
        elif v.is_floating_point():
            sd[k] = torch.randn(v.shape, generator=gen) * 0.05
        else:
            sd[k] = v.clone()
    path = tmp_path_factory.mktemp('weights') / 'pt_inception-2015-12-05-6726825d.pth'
    torch.save(sd, path)
    return sd, str(path)


def test_architecture_matches_pytorch_fid_layout(inception, pytorch_fid_state_dict):
    sd, _ = pytorch_fid_state_dict
    ours = inception.state_dict()
    assert set(ours) == set(sd) and len(ours) == 566
    assert all(ours[k].shape == sd[k].shape for k in sd)
    assert sum(p.numel() for p in inception.parameters()) == 23_850_960
    assert len([k for k in ours if not k.endswith('num_batches_tracked')]) == 472


def test_pth_loads_strict_and_outputs(pytorch_fid_state_dict):
    sd, path = pytorch_fid_state_dict
    net = FIDInceptionV3(weights=path)  # torch.load(weights_only=True), load_state_dict(strict=True)
    assert torch.equal(net.fc.weight, sd['fc.weight'])
    assert net.protocol['weights_sha256'] and net.protocol['weights'] == path
    # TF conversions without num_batches_tracked load strictly too
    FIDInceptionV3(random_init=True).load_state_dict(
        {k: v for k, v in sd.items() if not k.endswith('num_batches_tracked')}, strict=True)
    imgs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = net(imgs)
    assert out['pool'].shape == (2, 2048) and out['logits'].shape == (2, 1008) and out['spatial'].shape == (2, 2023)
    assert torch.allclose(out['logits'], out['pool'] @ sd['fc.weight'].t(), atol=1e-4)  # no bias
    assert (out['pool'] >= 0).all()  # average of ReLU outputs
    # batch independence (chunked forward) and grey input == the same image repeated x3
    net.batch_size = 1
    assert torch.allclose(net(imgs, features=('pool',))['pool'], out['pool'], rtol=1e-4, atol=1e-5)
    grey = imgs[:1, :1]
    assert torch.allclose(net(grey, ('pool',))['pool'], net(grey.expand(-1, 3, -1, -1), ('pool',))['pool'])


def test_tf1_resize_golden_values():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])[None, None]
    expect = torch.tensor([[0, .5, 1, 1], [1, 1.5, 2, 2], [2, 2.5, 3, 3], [2, 2.5, 3, 3]], dtype=torch.float32)
    assert torch.allclose(tf1_bilinear_resize(x, 4)[0, 0], expect)
    # PyTorch's half-pixel bilinear is a different protocol
    assert not torch.allclose(F.interpolate(x, size=4, mode='bilinear', align_corners=False)[0, 0], expect)


def test_resize_equals_nvidia_affine_grid_and_value_range():
    gen = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=gen)
    x = imgs.float()
    # NVIDIA detector: theta shifted by 1/W - 1/299, affine_grid + grid_sample(border, align_corners=False)
    theta = torch.eye(2, 3)[None].repeat(2, 1, 1)
    theta[:, 0, 2] += 1 / 32 - 1 / 299
    theta[:, 1, 2] += 1 / 32 - 1 / 299
    grid = F.affine_grid(theta, (2, 3, 299, 299), align_corners=False)
    ref = F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
    ours = tf1_bilinear_resize(x, 299)
    assert ours.shape == (2, 3, 299, 299)
    assert (ours - ref).abs().max() < 2e-3  # spec: 1.1e-4 at 32 px on a 0-255 scale (grid rounding)
    pre = FIDInceptionV3.preprocess(imgs)
    assert pre.shape == (2, 3, 299, 299)
    assert torch.allclose(pre, (ours - 128) / 128, atol=1e-6)
    ext = FIDInceptionV3.preprocess(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 299, 2)
                                    .contiguous())
    assert ext.min() == -1.0 and ext.max() == pytest.approx(127 / 128)  # (x - 128) / 128
    same = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8)
    assert torch.equal(FIDInceptionV3.preprocess(same), (same.float() - 128) / 128)  # no resize at 299


def test_bad_images_are_clear_errors(inception):
    with pytest.raises(TypeError, match=r'\[-1, 1\].*to_uint8'):
        inception(torch.rand(2, 3, 8, 8) * 2 - 1)
    with pytest.raises(TypeError, match=r'\[0, 1\] images'):
        inception(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match='NHWC'):
        check_uint8_images(torch.zeros(2, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match='4-D'):
        check_uint8_images(torch.zeros(3, 8, 8, dtype=torch.uint8))


def test_missing_weights_message(monkeypatch, tmp_path):
    monkeypatch.delenv('KDM_INCEPTION', raising=False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        FIDInceptionV3(weights=str(tmp_path / 'nope.pth'))
    msg = str(e.value)
    for part in ('nope.pth', 'pt_inception-2015-12-05-6726825d.pth', '6726825d', 'github.com/mseitzer/pytorch-fid',
                 'KDM_INCEPTION', 'never downloads', 'inception-2015-12-05.pkl', 'api.ngc.nvidia.com'):
        assert part in msg


def test_env_variable_is_used(monkeypatch, pytorch_fid_state_dict):
    _, path = pytorch_fid_state_dict
    monkeypatch.setenv('KDM_INCEPTION', path)
    assert FIDInceptionV3().weights_path == path


class _Leaf(torch.nn.Module):
    def __init__(self, tensors):
        super().__init__()
        for k, v in tensors.items():
            self.register_buffer(k, v)

    def forward(self, x):
        return x


class _Root(torch.nn.Module):
    def forward(self, x):
        return x


def _tf_layout_module(inception):
    """A module tree with NVIDIA's TF layer names (``layers.mixed_3.tower.conv_1.conv`` ...) holding the weights of
    ``inception`` (conv weights, TF batch-norm names, the ``output`` layer)."""
    sd = inception.state_dict()
    root = _Root()
    layers = torch.nn.Module()
    root.add_module('layers', layers)
    for tf_path, pt in tf_to_torch_names():
        parent = layers
        for part in tf_path.split('.'):
            if not hasattr(parent, part):
                parent.add_module(part, torch.nn.Module())
            parent = getattr(parent, part)
        parent.add_module('conv', _Leaf({'weight': sd[f'{pt}.conv.weight']}))
        parent.add_module('batchnorm', _Leaf({'beta': sd[f'{pt}.bn.bias'], 'moving_mean': sd[f'{pt}.bn.running_mean'],
                                               'moving_variance': sd[f'{pt}.bn.running_var']}))
    layers.add_module('output', _Leaf({'weight': sd['fc.weight'].t().contiguous(), 'bias': sd['fc.bias']}))
    return root


def test_nvidia_torchscript_conversion_round_trip(inception, tmp_path):
    """A TorchScript archive with TF-named layers (NVIDIA's layout, TF batch-norm names) converts back to the same
    network, without executing the archive's code."""
    sd = inception.state_dict()
    path = str(tmp_path / 'inception-2015-12-05.pt')
    torch.jit.trace(_tf_layout_module(inception), torch.zeros(1)).save(path)
    converted = load_torchscript_detector(path)
    for k, v in converted.items():  # random init has gamma = 1, which TF's graph also has (no scale)
        assert torch.equal(v, sd[k].float()), k
    net = FIDInceptionV3(weights=path)
    imgs = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    assert torch.allclose(net(imgs, ('pool',))['pool'], inception(imgs, ('pool',))['pool'])


class _Payload:
    """An object whose unpickling would run code (creates a folder); the restricted unpickler must not."""

    def __init__(self, folder):
        self.folder = folder

    def __reduce__(self):
        return os.makedirs, (self.folder, )


def test_nvidia_pickle_detector_loads_without_running_code(inception, tmp_path):
    """EDM's ``inception-2015-12-05.pkl`` form: a plain pickle of a module tree (classes kdm does not have, tensors
    pickled through ``torch.storage._load_from_bytes``) converts to the same network; nothing in it is executed."""
    import pickle
    root = _tf_layout_module(inception)
    marker = tmp_path / 'code_ran'
    root.payload = _Payload(str(marker))  # a plain attribute, pickled with the tree
    path = tmp_path / 'inception-2015-12-05.pkl'
    path.write_bytes(pickle.dumps(dict(detector=root, embedded_source='raise SystemExit')))
    net = FIDInceptionV3(weights=str(path))
    assert not marker.exists()
    sd = inception.state_dict()
    for k, v in net.state_dict().items():
        if not k.endswith('num_batches_tracked'):
            assert torch.equal(v, sd[k].float()), k
    imgs = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    assert torch.allclose(net(imgs, ('pool',))['pool'], inception(imgs, ('pool',))['pool'])
    assert net.protocol['weights'] == str(path) and len(net.protocol['weights_sha256']) == 64


def test_unknown_torchscript_layout_is_a_clear_error(tmp_path):
    root = _Root()
    root.add_module('layers', _Leaf({'weight': torch.zeros(2, 2)}))
    path = str(tmp_path / 'other.pt')
    torch.jit.trace(root, torch.zeros(1)).save(path)
    with pytest.raises(ValueError, match='unrecognised Inception layout.*pt_inception'):
        FIDInceptionV3(weights=path)


def test_digits_classifier(tmp_path, monkeypatch):
    net = DigitsClassifier(random_init=True, seed=0)
    out = net(torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8))
    assert out['pool'].shape == (5, 64) and out['logits'].shape == (5, 10)
    out8 = net(torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8))  # RGB and other sizes are adapted
    assert out8['pool'].shape == (2, 64)
    path = tmp_path / 'clf.pth'
    torch.save(dict(state_dict=net.state_dict(), meta=dict(resolution=16, num_classes=10, feature_dim=64)), path)
    again = DigitsClassifier(weights=str(path))
    assert again.protocol['weights_sha256'] != 'random'
    monkeypatch.delenv('KDM_DIGITS_CLASSIFIER', raising=False)
    with pytest.raises(FileNotFoundError, match='tools/train_detector.py'):
        DigitsClassifier()
    assert os.path.exists(path)
