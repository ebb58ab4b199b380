"""Teacher trainers (EDM, DDPM/ADM, 1-RF): toy configs train under tools/train.py; losses go down on a fixed batch."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from kdm.datasets import DigitsDataset
from kdm.engine import load_kdm_checkpoint
from kdm.engine.optimizers import MultiNetOptimWrapperConstructor
from kdm.registry import MODELS, TEACHERS
from tests.conftest import ROOT, run_tool

TOYS = ['edm/toy_digits.py', 'ddpm/toy_digits.py', 'rectified_flow/toy_digits.py']
SMALL = {  # shrink the toy networks further so CI stays fast
    'edm/toy_digits.py': ['model.net.model.model_channels=8', 'model.num_steps=3'],
    'ddpm/toy_digits.py': ['model.net.channel_mult=(1,2)', 'model.sample_steps=3'],
    'rectified_flow/toy_digits.py': ['model.net.model_channels=8', 'model.num_steps=3'],
}


@pytest.mark.parametrize('name', TOYS)
def test_toy_config_trains_and_teaches(name, tmp_path):
    wd = tmp_path / 'wd'
    run_tool([ROOT / 'tools' / 'train.py', ROOT / 'configs' / 'methods' / name, '--work-dir', wd, '--cfg-options',
              'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2', 'custom_hooks.0.interval=2',
              'custom_hooks.0.num_samples=4',
              'train_dataloader.batch_size=8', *SMALL[name]],
             cwd=tmp_path)
    ckpt = wd / 'iter_2.pth'
    assert 'emas.ema.steps' in load_kdm_checkpoint(str(ckpt))['state_dict']
    assert list(wd.rglob('samples_2.png'))
    # the trained model can teach the next student through the `kdm` teacher loader
    teacher = TEACHERS.build(dict(type='kdm', path=str(ckpt)))
    x = torch.randn(2, 1, 16, 16)
    out = teacher(x, torch.tensor([1.0, 2.0]))
    assert out.shape == x.shape and torch.isfinite(out).all() and not teacher.training


def _fixed_batch_losses(cfg_name, options, steps, lr):
    init_default_scope('kdm')
    cfg = Config.fromfile(str(ROOT / 'configs' / 'methods' / cfg_name))
    cfg.merge_from_dict(options)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ow = MultiNetOptimWrapperConstructor(dict(net=dict(optimizer=dict(type='Adam', lr=lr))))(model)
    digits = DigitsDataset(split='train', resolution=16)
    batch = dict(img=torch.stack([digits[i]['img'] for i in range(8)]), label=torch.arange(8) % 10)
    losses = []
    for _ in range(steps):
        torch.manual_seed(1)  # the same sigma/t and noise every step: a fixed objective on a fixed batch
        losses.append(float(model.train_step(batch, ow)['loss']))
    return losses


@pytest.mark.parametrize('name,options', [
    ('edm/toy_digits.py', {'model.net.model.model_channels': 8}),
    ('ddpm/toy_digits.py', {'model.net.channel_mult': (1, ), 'model.net.attention_resolutions': ()}),
    ('rectified_flow/toy_digits.py', {'model.net.model_channels': 8}),
])
def test_loss_decreases_on_a_fixed_batch(name, options):
    losses = _fixed_batch_losses(name, options, steps=30, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0], losses[::8]
