"""BaseGenerativeModel / BaseDistiller contracts: frozen hidden teacher, EMAs, seeded generation."""
import pytest
import torch
from torch import nn

from kdm.diffusion.denoiser import Denoiser
from kdm.engine.optimizers import MultiNetOptimWrapperConstructor
from kdm.models.base import BaseDistiller, build_emas, seeded_noise, to_uint8


class HalfDenoiser(Denoiser):
    """D(x, sigma) = w * x with a dropout layer, to see that the teacher stays in eval mode."""

    def __init__(self):
        super().__init__(img_channels=1, img_resolution=4, label_dim=3)
        self.w = nn.Parameter(torch.tensor(0.5))
        self.drop = nn.Dropout(0.9)

    def denoise(self, x, sigma, cond):
        return self.drop(self.w * x)


class TinyDistiller(BaseDistiller):

    def __init__(self, teacher, ema=dict(type='ConstantEMA', momentum=0.5)):
        super().__init__(teacher=teacher)
        self.student = nn.Conv2d(1, 1, 1)
        self.emas = build_emas(ema, self.student)
        self.img_shape, self.label_dim = (1, 4, 4), 3

    def train_step(self, data, optim_wrapper):
        x = data['img']
        with torch.no_grad():
            target = self.teacher(x, 1.0)
        loss = ((self.student(x) - target)**2).mean()
        optim_wrapper['student'].update_params(loss)
        self.update_emas()
        return dict(loss=loss)

    def sample(self, noise, cond=None, ema='ema', randn_like=None):
        return self.get_net(ema)(noise).tanh()


def test_teacher_is_frozen_hidden_and_moves_with_the_model():
    model = TinyDistiller(HalfDenoiser())
    assert all(not k.startswith('teacher') for k in model.state_dict())
    assert not any(p is model.teacher.w for p in model.parameters())
    model.train()
    assert not model.teacher.training and not model.teacher.w.requires_grad
    model.to(torch.float64)
    assert model.teacher.w.dtype == torch.float64 and model.student.weight.dtype == torch.float64
    model.to(torch.float32)
    wrapper = MultiNetOptimWrapperConstructor(dict(student=dict(optimizer=dict(type='SGD', lr=0.1))))(model)
    before = model.teacher.w.detach().clone()
    out = model.train_step(dict(img=torch.randn(2, 1, 4, 4)), wrapper)
    assert torch.isfinite(out['loss']) and model.teacher.w.grad is None and torch.equal(model.teacher.w, before)
    assert int(model.emas['ema'].steps) == 1


def test_unknown_optimizer_key_names_valid_networks():
    model = TinyDistiller(HalfDenoiser())
    with pytest.raises(KeyError, match=r"no trainable sub-network 'generator'.*\['student'\]"):
        MultiNetOptimWrapperConstructor(dict(generator=dict(optimizer=dict(type='SGD', lr=0.1))))(model)
    with pytest.raises(ValueError, match="'optimizer' key"):
        MultiNetOptimWrapperConstructor(dict(student=dict(lr=0.1)))


def test_seeded_noise_does_not_depend_on_batch_composition():
    a, la = seeded_noise([3, 4, 5], (1, 4, 4), label_dim=10)
    b, lb = seeded_noise([5], (1, 4, 4), label_dim=10)
    assert torch.equal(a[2], b[0]) and la[2] == lb[0]
    c, lc = seeded_noise([5], (1, 4, 4), label_dim=10, labels=torch.tensor([7]))
    assert torch.equal(c[0], b[0]) and int(lc[0]) == 7
    _, lu = seeded_noise([5], (1, 4, 4), label_dim=0)
    assert int(lu[0]) == -1


def test_generate_returns_uint8_per_seed_and_restores_mode():
    model = TinyDistiller(HalfDenoiser())
    model.train()
    out = model.test_step(dict(seed=torch.tensor([0, 1]), label=torch.tensor([-1, 2])))
    assert model.training  # restored after sampling in eval mode
    assert [o['seed'] for o in out] == [0, 1] and out[1]['label'] == 2 and 0 <= out[0]['label'] < 3
    assert out[0]['fake'].dtype == torch.uint8 and out[0]['fake'].shape == (1, 4, 4)
    single = model.test_step(dict(seed=torch.tensor([1]), label=torch.tensor([2])))
    assert torch.equal(single[0]['fake'], out[1]['fake'])
    assert to_uint8(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    with pytest.raises(KeyError, match="unknown EMA 'ema_9999'"):
        model.get_net('ema_9999')


def test_several_named_emas():
    model = TinyDistiller(HalfDenoiser(), ema=dict(fast=dict(type='ConstantEMA', momentum=0.5),
                                                  slow=dict(type='ConstantEMA', momentum=0.01)))
    assert set(model.emas) == {'fast', 'slow'}
    with pytest.raises(TypeError, match="'type' key"):
        build_emas(dict(fast=dict(momentum=0.5)), nn.Linear(1, 1))
