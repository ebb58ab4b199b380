# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
import pytest
import torch

from kdm.registry import MODELS


@pytest.mark.parametrize('res', [8, 16])
def test_toy_unet_shapes_conditioning_and_size(res):
    torch.manual_seed(0)
    net = MODELS.build(dict(type='ToyUNet', img_resolution=res, in_channels=1, out_channels=1, label_dim=10))
    assert 1_000 < sum(p.numel() for p in net.parameters()) < 10_000
    x, sigma = torch.randn(4, 1, res, res), torch.rand(4)
    onehot = torch.eye(10)[[0, 1, 2, 3]]
    out = net(x, sigma, onehot)
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, sigma, torch.eye(10)[[4, 5, 6, 7]]))  # labels matter
    assert not torch.allclose(out, net(x, sigma + 1, onehot))  # noise level matters
    torch.testing.assert_close(net(x, torch.tensor(0.5), onehot), net(x, torch.full((4, ), 0.5), onehot))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_toy_unet_rejects_bad_resolution_and_builds_unconditional():
    with pytest.raises(ValueError, match='divisible'):
        MODELS.build(dict(type='ToyUNet', img_resolution=10, in_channels=3, out_channels=3, channel_mult=(1, 2, 2)))
    net = MODELS.build(dict(type='ToyUNet', img_resolution=16, in_channels=3, out_channels=6, augment_dim=9,
                            model_channels=8, channel_mult=(1, 2, 2), num_blocks=2))
    x = torch.randn(2, 3, 16, 16)
    assert net(x, torch.rand(2), None, torch.randn(2, 9)).shape == (2, 6, 16, 16)


def test_toy_mlp():
    torch.manual_seed(0)
    net = MODELS.build(dict(type='ToyMLP', in_channels=2, label_dim=3, hidden_channels=32, num_layers=2))
    x = torch.randn(16, 2)
    out = net(x, torch.rand(16), torch.eye(3)[torch.randint(3, (16, ))])
    assert out.shape == (16, 2)
    # the image interface (img_resolution, out_channels) is accepted
    net = MODELS.build(dict(type='ToyMLP', img_resolution=None, in_channels=5, out_channels=5))
    assert net(torch.randn(3, 5), torch.tensor(1.0)).shape == (3, 5)
