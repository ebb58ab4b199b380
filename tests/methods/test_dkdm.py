"""DKDM (kdm/models/distillers/dkdm.py): the pool, its variants and cache, the objective, frozen teacher, exact
resume (one process and two gloo processes) and every config of configs/methods/dkdm/."""
import glob
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn

import tests.methods.dkdm_teacher  # noqa: F401 - registers the random test teacher
from kdm.diffusion.ddpm import GaussianDiffusion, create_diffusion
from kdm.diffusion.denoiser import DiscreteDenoiser
from kdm.engine import load_kdm_checkpoint
from kdm.models.distillers.dkdm import (DKDM, check_pool_cache, dkdm_loss, load_pool_cache, pool_size,
                                        save_pool_cache, shuffle_denoise)
from kdm.registry import MODELS
from tests.conftest import ROOT, free_port, run_tool, tool_env

TRAIN = ROOT / 'tools' / 'train.py'
PREPARE = ROOT / 'tools' / 'dkdm_prepare.py'
TINY = ROOT / 'tests' / 'methods' / 'configs' / 'dkdm_tiny.py'
NET = dict(type='ADMUNet', image_size=8, in_channels=1, model_channels=32, out_channels=2, num_res_blocks=1,
           attention_resolutions=(), channel_mult=(1, ), num_head_channels=32, use_scale_shift_norm=True,
           resblock_updown=True, use_new_attention_order=True)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny networks run fastest on one thread (and do not crawl on a loaded CI machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(variant='dynamic', steps=6, rho=0.5, batch_size=3, **kw):
    teacher = dict(type='dkdm_random_adm', network=NET, diffusion=dict(schedule='cosine', steps=steps,
                                                                       learn_sigma=True))
    return DKDM(teacher=teacher, student=dict(NET, dropout=0.0), rho=rho, variant=variant, batch_size=batch_size,
                prepare_batch_size=4, sample_steps=None, ema=dict(type='ConstantEMA', momentum=0.5), **kw)


def optim(model, lr=1e-3):
    return OptimWrapperDict(student=OptimWrapper(torch.optim.Adam(model.student.parameters(), lr=lr)))


def batch(model):
    return dict(index=torch.arange(model.batch_size))


# ----------------------------------------------------------------------------------------------------------- the pool


def test_pool_size():
    assert pool_size(0.4, 1000, 128) == 51_200  # spec 3.2 table
    assert [pool_size(r, 1000, 128) for r in (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3)] == [
        1280, 2560, 3840, 6400, 12800, 25600, 38400]
    assert pool_size(0.4, 1000, 128, 'shuffled') == pool_size(0.4, 1000, 128, 'shffled_iterative_distillation') == 128
    assert pool_size(0.4, 1000, 128, 'iterative') == 128
    with pytest.raises(ValueError, match='at least one batch'):
        pool_size(1e-4, 1000, 128)
    with pytest.raises(ValueError, match='unknown DKDM variant'):
        pool_size(0.4, 1000, 128, 'dynamc')
    assert 51_200 * 3 * 32 * 32 * 4 == 629_145_600  # the documented 0.63 GB of the CIFAR-10 pool
    m = tiny()
    assert m.pool_t.shape == (round(0.5 * 6) * 3, ) and m.pool_x.shape == (9, 1, 8, 8)
    assert {'pool_t', 'pool_x', 'pool_ready'} <= set(m.state_dict())


def test_dynamic_pool_update_invariants():
    torch.manual_seed(0)
    m = tiny('dynamic', steps=5, rho=0.4, batch_size=3)  # T = 5, pool 2 * 3 = 6 entries
    ow = optim(m)
    m.train_step(batch(m), ow)  # prepares the pool (and runs one iteration)
    assert int(m.pool_ready) == 1 and m.pool_t.min() >= 0 and m.pool_t.max() <= 4
    resets, drawn_total = 0, []
    for _ in range(25):
        t_old, x_old = m.pool_t.clone(), m.pool_x.clone()
        state = torch.random.get_rng_state()
        import random
        py_state = random.getstate()
        rows = m.draw_rows()
        random.setstate(py_state)
        torch.random.set_rng_state(state)
        m.train_step(batch(m), ow)
        assert rows.unique().numel() == m.batch_size  # distinct rows within the step
        drawn_total += rows.tolist()
        untouched = torch.ones(m.pool_t.numel(), dtype=torch.bool)
        untouched[rows] = False
        assert torch.equal(m.pool_t[untouched], t_old[untouched])
        assert torch.equal(m.pool_x[untouched], x_old[untouched])
        expected = torch.where(t_old[rows] == 0, torch.full_like(t_old[rows], 5), t_old[rows]) - 1
        assert torch.equal(m.pool_t[rows], expected)  # one step down per use, T again after 0
        resets += int((t_old[rows] == 0).sum())
        assert int(m.pool_t.max()) <= 4 and int(m.pool_t.min()) >= 0
    assert resets > 0 and set(drawn_total) == set(range(6))


def test_teacher_step_at_t0_is_the_clipped_mean():
    torch.manual_seed(0)
    m = tiny('iterative', steps=3, batch_size=2)
    ow = optim(m)
    for _ in range(2):
        m.train_step(batch(m), ow)
    x_in = m.pool_x.clone()
    t, x, out = m.advance(torch.arange(2))
    assert (t == 0).all() and torch.equal(x, x_in)
    assert torch.equal(out['sample'], out['mean'])  # no noise at t = 0
    assert out['pred_xstart'].abs().max() <= 1  # teacher mean from the clipped x0


def test_iterative_and_shuffled_semantics():
    T = 4
    torch.manual_seed(0)
    it = tiny('iterative', steps=T, batch_size=3)
    ow = optim(it)
    it.train_step(batch(it), ow)
    assert it.pool_t.shape == (3, ) and (it.pool_t == T - 1).all()  # fresh noises walk together from T-1
    for k in range(2, 2 * T + 2):
        before = it.pool_x.clone()
        it.train_step(batch(it), ow)
        assert (it.pool_t == (T - k) % T).all(), k  # a single timestep per batch, restart after 0
        if (T - k) % T == T - 1:
            assert not torch.allclose(it.pool_x, before)

    torch.manual_seed(1)
    sh = tiny('shffled_iterative_distillation', steps=50, batch_size=4)  # the reference's spelling is accepted
    assert sh.variant == 'shuffled' and sh.pool_t.shape == (4, )
    ow = optim(sh)
    sh.train_step(batch(sh), ow)
    assert len(set(sh.pool_t.tolist())) > 1  # prepared: individual uniform timesteps
    for _ in range(5):
        t_old = sh.pool_t.clone()
        assert torch.equal(sh.draw_rows(), torch.arange(4))  # every entry advances every iteration
        sh.train_step(batch(sh), ow)
        assert torch.equal(sh.pool_t, torch.where(t_old == 0, torch.full_like(t_old, 50), t_old) - 1)


def test_shuffle_denoise_reaches_uniform_targets():
    torch.manual_seed(0)
    teacher = tiny().teacher
    calls = []
    net = teacher.net
    forward = net.forward

    def counting(x, t, *a, **k):
        calls.append(x.shape[0])
        return forward(x, t, *a, **k)

    net.forward = counting
    t, x = shuffle_denoise(net, teacher.diffusion, 40, (1, 8, 8), batch_size=16)
    assert t.min() >= 1 and t.max() <= 5 and len(set(t.tolist())) > 2  # t_end uniform on 1..T-1
    assert sum(calls) == int((6 - t).sum()) and max(calls) <= 16  # exactly T - t_end teacher steps per entry
    assert torch.isfinite(x).all()


def test_respaced_teacher_chain():
    """timestep_respacing (the reference's teacher respacing, quirk 9): the pool lives in the respaced index
    space, rho * T uses the respaced T, and the networks see the original timesteps."""
    torch.manual_seed(0)
    m = tiny('dynamic', steps=10, rho=0.5, batch_size=2, timestep_respacing='4')
    assert m.num_timesteps == 4 and m.pool_t.shape == (2 * 2, )
    seen = []
    forward = m.student.forward
    m.student.forward = lambda x, t: (seen.append(t.clone()), forward(x, t))[1]
    ow = optim(m)
    for _ in range(6):
        m.train_step(batch(m), ow)
    assert m.pool_t.max() <= 3
    assert set(torch.cat(seen).tolist()) <= {0, 3, 6, 9}  # space_timesteps(10, 4)
    assert m.sample(torch.randn(2, 1, 8, 8)).shape == (2, 1, 8, 8)


# ------------------------------------------------------------------------------------------------------- the loss


class _Linear(nn.Module):
    """A tiny deterministic 'network' net(x, t) -> [eps, v]."""

    def __init__(self, a, b, c, d):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([a, b, c, d], dtype=torch.float64))
        self.in_channels, self.image_size, self.out_channels = 1, 2, 2

    def forward(self, x, t):
        t = t.to(x.dtype).reshape(-1, 1, 1, 1)
        eps = self.w[0] * x + self.w[1] * (t + 1)
        v = torch.tanh(self.w[2] * x + self.w[3] * t)
        return torch.cat([eps, v], dim=1)


def _hand_loss(betas, teacher, student, x, t, student_clip=False):
    """spec 3.1 written out with the closed-form posterior of a 2-step chain, float64 numpy."""
    b = np.asarray(betas, np.float64)
    abar = np.cumprod(1 - b)
    abar_prev = np.append(1.0, abar[:-1])
    post = b * (1 - abar_prev) / (1 - abar)
    log_post = np.log(np.append(post[1], post[1:]))
    c1 = b * np.sqrt(abar_prev) / (1 - abar)
    c2 = (1 - abar_prev) * np.sqrt(1 - b) / (1 - abar)
    x = x.detach().numpy()
    total = []
    for i in range(x.shape[0]):
        k = int(t[i])

        def reverse(net, clip):
            out = net(torch.from_numpy(x[i:i + 1]), torch.tensor([k])).detach().numpy()[0]
            eps, v = out[:1], out[1:]
            x0 = np.sqrt(1 / abar[k]) * x[i] - np.sqrt(1 / abar[k] - 1) * eps
            if clip:
                x0 = np.clip(x0, -1, 1)
            frac = (v + 1) / 2
            return eps, c1[k] * x0 + c2[k] * x[i], frac * np.log(b[k]) + (1 - frac) * log_post[k]

        eps_t, mu_t, lv_t = reverse(teacher, True)
        eps_s, mu_s, lv_s = reverse(student, student_clip)
        mse = np.mean((eps_t - eps_s)**2)
        kl = 0.5 * (-1 + lv_s - lv_t + np.exp(lv_t - lv_s) + (mu_t - mu_s)**2 * np.exp(-lv_s))
        total.append(mse + np.mean(kl) / math.log(2))
    return float(np.mean(total))


def test_loss_equals_hand_computation_on_a_two_step_diffusion():
    torch.manual_seed(0)
    betas = [0.3, 0.6]
    diffusion = GaussianDiffusion(np.array(betas), learn_sigma=True)
    t_net, s_net = _Linear(0.8, 0.3, 1.5, -0.4), _Linear(0.5, -0.2, 0.7, 0.9)
    teacher = DiscreteDenoiser(t_net, diffusion, img_channels=1, img_resolution=2)
    assert teacher.diffusion is diffusion
    x = torch.randn(3, 1, 2, 2, dtype=torch.float64) * 1.5  # large enough that the teacher's x0 gets clipped
    for k in (0, 1):
        t = torch.full((3, ), k)
        t_out = teacher.diffusion.p_sample(t_net(x, t).detach(), x, t, clip_denoised=True)
        assert (t_out['pred_xstart_unclipped'].abs() > 1).any()
        for clip in (False, True):  # the reference (quirk 6) and student_clip_denoised=True
            terms = dkdm_loss(s_net(x, t), t_out, x, t, diffusion, student_clip_denoised=clip)
            expected = _hand_loss(betas, t_net, s_net, x, t, student_clip=clip)
            assert terms['loss'].mean().item() == pytest.approx(expected, rel=1e-10)
    # a student identical to the teacher: zero KL only when both means come from the clipped x0
    t = torch.ones(3, dtype=torch.long)
    t_out = diffusion.p_sample(t_net(x, t).detach(), x, t, clip_denoised=True)
    assert dkdm_loss(t_net(x, t), t_out, x, t, diffusion, True)['vb'].abs().max() < 1e-12
    assert dkdm_loss(t_net(x, t), t_out, x, t, diffusion, False)['vb'].max() > 0
    # the KL term trains only the variance head (stop-gradient on the student mean)
    out = s_net(x, torch.ones(3, dtype=torch.long)).detach().requires_grad_(True)
    t_out = diffusion.p_sample(t_net(x, torch.ones(3, dtype=torch.long)).detach(), x, torch.ones(3, dtype=torch.long))
    dkdm_loss(out, t_out, x, torch.ones(3, dtype=torch.long), diffusion)['vb'].sum().backward()
    assert out.grad[:, :1].abs().max() == 0 and out.grad[:, 1:].abs().max() > 0


def test_train_step_loss_is_the_objective_on_the_pool_state():
    """The loss train_step reports is dkdm_loss on the pool's (t, x), computed before the student update."""
    torch.manual_seed(0)
    m = tiny('iterative', steps=4, batch_size=2)
    ow = optim(m)
    m.train_step(batch(m), ow)
    m.eval()  # no dropout anyway (dropout=0); eval keeps the comparison exact
    for _ in range(3):  # t = 2, 1, 0 (no restart, whose fresh noise the test cannot see)
        t = torch.where(m.pool_t == 0, torch.full_like(m.pool_t, 4), m.pool_t) - 1
        x = m.pool_x.clone()
        with torch.no_grad():
            t_out = m.teacher.diffusion.p_sample(m.teacher.net(x, t), x, t)
            expected = dkdm_loss(m.student(x, t), t_out, x, t, m.diffusion)
        reported = m.train_step(batch(m), ow)
        for key in ('mse', 'vb'):
            assert reported[f'loss_{key}'].item() == pytest.approx(expected[key].mean().item(), rel=1e-5)


# -------------------------------------------------------------------------------------------- teacher and checkpoint


def test_teacher_frozen_and_outside_the_checkpoint():
    torch.manual_seed(0)
    m = tiny()
    before = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    ow = optim(m, lr=1e-2)
    for _ in range(2):
        m.train_step(batch(m), ow)
    assert all(p.grad is None and not p.requires_grad for p in m.teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.teacher.state_dict().items())
    assert not m.teacher.training
    assert not any('teacher' in k for k in m.state_dict())
    assert not any(p is q for p in m.parameters() for q in m.teacher.parameters())
    assert m.get_net('teacher') is m.teacher.net and isinstance(m.as_denoiser('ema'), DiscreteDenoiser)


def test_teacher_samples_configs_load_a_converted_teacher():
    """tools/convert.py stores an ADM teacher as its DiscreteDenoiser's state dict (``net.*``); the
    *_teacher_samples.py configs (a DDPMTrainer without EMA) load exactly that layout."""
    torch.manual_seed(0)
    teacher = tests.methods.dkdm_teacher.random_adm_teacher(NET, dict(schedule='cosine', steps=6, learn_sigma=True))
    cfg = Config.fromfile(str(ROOT / 'configs' / 'methods' / 'dkdm' / 'cifar10_teacher_samples.py')).model
    sampler = MODELS.build(dict(cfg, net=NET, diffusion=dict(schedule='cosine', steps=6, learn_sigma=True),
                                sample_steps=None, img_shape=(1, 8, 8)))
    sampler.load_state_dict(teacher.state_dict(), strict=True)
    assert sampler.sample_ema is None and torch.equal(sampler.get_net(None).out[2].weight, teacher.net.out[2].weight)


def test_batch_size_must_match_the_dataloader():
    m = tiny(batch_size=3)
    with pytest.raises(ValueError, match='model.batch_size'):
        m.train_step(dict(index=torch.arange(2)), optim(m))


def test_bad_teachers_and_students_are_refused():
    with pytest.raises(ValueError, match='2 \\* 1 channels'):
        DKDM(teacher=dict(type='dkdm_random_adm', network=NET, diffusion=dict(schedule='cosine', steps=4)),
             student=dict(NET, out_channels=1), batch_size=2)
    with pytest.raises(ValueError, match='differs from the teacher'):
        DKDM(teacher=dict(type='dkdm_random_adm', network=NET, diffusion=dict(schedule='cosine', steps=4)),
             student=NET, batch_size=2, diffusion=dict(schedule='cosine', steps=5))


# --------------------------------------------------------------------------------------------------- the pool cache


def _prepare_main(argv):
    """tools/dkdm_prepare.py's main(), in this process (the tools are scripts, not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('dkdm_prepare', PREPARE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_pool_cache_roundtrip_and_mismatch_refused(tmp_path):
    cache = tmp_path / 'pool.pt'
    assert _prepare_main([str(TINY), '--out', str(cache), '--world-size', '2']) == 0
    data = load_pool_cache(str(cache))
    meta = data['meta']
    assert meta['num_entries'] == 2 * 8 and meta['rho'] == 0.1 and meta['batch_size'] == 4
    assert meta['world_size'] == 2 and meta['num_timesteps'] == 20 and tuple(meta['img_shape']) == (1, 8, 8)
    assert data['pool_t'].min() >= 1 and data['pool_t'].max() <= 19

    cfg = Config.fromfile(str(TINY)).model
    # the same global batch on one process (batch 8) is accepted; the pool is the cache
    m = MODELS.build(dict(cfg, batch_size=8, pool_cache=str(cache)))
    m.train_step(dict(index=torch.arange(8)), optim(m))
    assert m.pool_x.shape == data['pool_x'].shape
    assert int((m.pool_t != data['pool_t']).sum()) <= 8  # only the 8 rows of one step moved away from the cache
    # shuffled reuses a dynamic cache: its first batch x world-size rows
    sh = MODELS.build(dict(cfg, variant='shuffled', pool_cache=str(cache)))
    sh.init_pool()
    assert torch.equal(sh.pool_t, data['pool_t'][:4]) and torch.equal(sh.pool_x, data['pool_x'][:4])

    with pytest.raises(ValueError) as err:
        MODELS.build(dict(cfg, rho=0.2, batch_size=2, pool_cache=str(cache)))
    assert 'rho: cache 0.1, config 0.2' in str(err.value) and 'batch: cache 4 per rank x world size 2' in str(err.value)
    with pytest.raises(ValueError, match='num_timesteps: cache 20, config 10'):
        MODELS.build(dict(cfg, batch_size=8, pool_cache=str(cache),
                          teacher=dict(cfg.teacher, diffusion=dict(schedule='cosine', steps=10))))
    with pytest.raises(ValueError, match='iterative variant'):
        MODELS.build(dict(cfg, variant='iterative', pool_cache=str(cache)))
    with pytest.raises(FileNotFoundError, match='dkdm_prepare'):
        MODELS.build(dict(cfg, pool_cache=str(tmp_path / 'missing.pt')))
    bad = tmp_path / 'bad.pt'
    torch.save({'total_t': torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match='not a DKDM pool cache'):
        load_pool_cache(str(bad))
    assert check_pool_cache(meta, rho=0.1, batch_size=1, world_size=8, num_timesteps=20, img_shape=(1, 8, 8),
                            variant='dynamic') == []
    save_pool_cache(str(tmp_path / 'copy.pt'), data['pool_t'], data['pool_x'], dict(meta))
    assert torch.equal(load_pool_cache(str(tmp_path / 'copy.pt'))['pool_x'], data['pool_x'])


# ------------------------------------------------------------------------------------ training through tools/train.py


def _state(path):
    ckpt = load_kdm_checkpoint(str(path))
    opt = ckpt['optimizer']['student']['state']
    return ckpt['state_dict'], {(i, k): torch.as_tensor(v) for i, s in opt.items() for k, v in s.items()}


def _assert_equal(a, b):
    (sa, oa), (sb, ob) = _state(a), _state(b)
    assert sa.keys() == sb.keys() and oa.keys() == ob.keys() and len(oa) > 0
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for k in oa:
        assert torch.equal(oa[k], ob[k]), k
    return sa


def test_resume_restores_the_pool_exactly(tmp_path):
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    run_tool([TRAIN, TINY, '--work-dir', straight], cwd=ROOT)  # 4 iterations, checkpoints at 2 and 4
    proc = run_tool([TRAIN, TINY, '--work-dir', resumed, '--resume', straight / 'iter_2.pth'], cwd=ROOT)
    assert 'preparing' not in proc.stdout + proc.stderr  # the pool came from the checkpoint
    sd = _assert_equal(straight / 'iter_4.pth', resumed / 'iter_4.pth')
    assert not any(k.startswith('teacher') for k in sd) and int(sd['pool_ready']) == 1
    assert sd['pool_x'].shape == (8, 1, 8, 8) and 'emas.ema.steps' in sd
    mid = load_kdm_checkpoint(str(straight / 'iter_2.pth'))['state_dict']
    assert not torch.equal(mid['pool_x'], sd['pool_x'])  # the pool moved between the checkpoints


def test_two_gloo_processes_and_their_resume(tmp_path):
    def dist(work_dir, *extra, port):
        cmd = ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(TINY), '2', '--work-dir', str(work_dir), *extra]
        proc = subprocess.run(cmd, cwd=ROOT, env=tool_env(PYTHON=sys.executable, PORT=str(port)),
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-4000:]

    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    dist(straight, port=free_port())
    dist(resumed, '--resume', str(straight / 'iter_2.pth'), port=free_port())
    sd = _assert_equal(straight / 'iter_4.pth', resumed / 'iter_4.pth')
    assert sd['pool_x'].shape == (2 * 8, 1, 8, 8)  # every rank's slice is in the checkpoint
    mid = load_kdm_checkpoint(str(straight / 'iter_2.pth'))['state_dict']
    for r in range(2):  # both ranks' trajectories advanced (rank 1's rows reach rank 0 through the all-gather)
        rows = slice(8 * r, 8 * (r + 1))
        assert not torch.equal(mid['pool_t'][rows], sd['pool_t'][rows]), r


# --------------------------------------------------------------------------------------------------- the configs

PARAMS = dict(adm_57m=57_094_662, adm_44m=44_177_286, adm_32m=32_136_582, adm_24m=24_866_214, adm_14m=14_301_446,
              adm_57m_celeba=57_213_606, adm_295m=295_136_454)
CONFIGS = sorted(glob.glob(str(ROOT / 'configs' / 'methods' / 'dkdm' / '*.py')))
_BUILT = {}  # networks and EMAs built on the meta device, memoised across the config tests


def _count(net):
    return sum(p.numel() for p in net.parameters())


@pytest.fixture
def memo_build(monkeypatch):
    """Build on the meta device; each distinct network (and its EMA) is constructed once and reused, so checking
    40-odd configs of seven architectures stays fast. Everything else of each config is built for real."""
    build = MODELS.build

    def memo(cfg, *args, default_args=None, **kwargs):
        key = repr(sorted(dict(cfg).items()))
        if cfg.get('type') in ('ADMUNet', 'ConstantEMA'):
            if default_args is not None:
                key += f"@{id(default_args['model'])}"
            if key not in _BUILT:
                with torch.device('meta'):
                    _BUILT[key] = build(cfg, *args, default_args=default_args, **kwargs)
            return _BUILT[key]
        with torch.device('meta'):
            return build(cfg, *args, default_args=default_args, **kwargs)

    monkeypatch.setattr(MODELS, 'build', memo)
    return memo


def test_architecture_parameter_counts(memo_build):
    presets = Config.fromfile(str(ROOT / 'configs' / '_base_' / 'models' / 'adm_students.py'))
    for name, expected in PARAMS.items():
        assert _count(memo_build(presets[name])) == expected, name


def _expected_student(name):
    if name.startswith('toy_'):
        return None
    if name.endswith('teacher_samples'):  # a DDPMTrainer holding the teacher network
        return PARAMS['adm_295m' if name.startswith('celeba64') else 'adm_57m']
    if name.startswith('celeba64'):
        return PARAMS['adm_57m_celeba']
    return PARAMS[f"adm_{name.split('_')[1]}"]


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_every_dkdm_config_builds(path, memo_build):
    """Every config builds its real networks (on the meta device; teacher files are not needed)."""
    name = os.path.basename(path)[:-3]
    cfg = Config.fromfile(path)
    if cfg.model.type == 'DKDM':
        tcfg = cfg.model.teacher
        if 'network' in tcfg:
            network = tcfg.network
            assert _count(memo_build(network)) == (295_136_454 if name.startswith('celeba64') else 57_094_662)
            assert network.use_fp16 and tcfg.type == 'adm' and tcfg.path.startswith('checkpoints/dkdm/')
        else:  # toy configs: the teacher is a kdm checkpoint of configs/methods/ddpm/toy_digits.py
            network = Config.fromfile(str(ROOT / 'configs' / 'methods' / 'ddpm' / 'toy_digits.py')).model.net
        teacher = DiscreteDenoiser(memo_build(network), create_diffusion(**tcfg.get('diffusion', dict(
            schedule='cosine', steps=1000, learn_sigma=True))))
        model = MODELS.build(dict(cfg.model, teacher=teacher))
        assert isinstance(model, DKDM) and model.teacher is teacher
        assert cfg.train_dataloader.dataset.type == 'IndexDataset'  # data-free: no dataset file is read
        assert cfg.train_dataloader.batch_size == model.batch_size
        T = 50 if name.startswith('toy_') else 1000  # the toy runs the 50-step respaced teacher chain
        assert model.num_timesteps == T
        assert model.pool_x.shape == (pool_size(model.rho, T, model.batch_size, model.variant), *model.img_shape)
        student = model.student
    else:
        assert cfg.model.type == 'DDPMTrainer'
        model = MODELS.build(cfg.model)
        student = model.net
        if name.endswith('teacher_samples'):  # sampling only: a teacher with its sampler, no EMA
            assert cfg.model.ema is None and cfg.model.net.use_fp16
        else:
            assert cfg.train_dataloader.dataset.type in ('NpzDataset', 'MixedDataset', 'CIFAR10Dataset')
    expected = _expected_student(name)
    if expected is not None:
        assert _count(student) == expected
    if not name.startswith('toy_') and not name.endswith('teacher_samples'):
        [(net_name, wrapper)] = [(k, v) for k, v in cfg.optim_wrapper.items() if k != 'constructor']
        opt = wrapper.optimizer
        assert (opt.type, opt.lr, opt.weight_decay, net_name) == ('AdamW', 1e-4, 0.0, model.student_name)
        assert cfg.model.ema == dict(type='ConstantEMA', momentum=1e-4) and cfg.model.sample_steps == '50'
        assert {'FID', 'InceptionScore', 'SFID'} <= {e.type for e in cfg.test_evaluator}  # Table 2's metrics
        assert cfg.train_cfg.max_iters == 200000 and cfg.default_hooks.checkpoint.interval == 10000
