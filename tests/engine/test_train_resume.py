"""Training through tools/train.py: exact resume, 2-process gloo == 1 process, crash-safe checkpoints, NaN guard."""
import os
import signal
import subprocess
import sys

import torch

from kdm.engine import load_kdm_checkpoint
from kdm.engine.checkpoint import MMENGINE_CHECKPOINT_GLOBALS
from tests.conftest import ROOT, free_port, run_tool, tool_env

TRAIN = ROOT / 'tools' / 'train.py'
CFG = ROOT / 'tests' / 'engine' / 'configs' / 'toy_engine.py'


def _states(path):
    ckpt = load_kdm_checkpoint(str(path))
    opt = ckpt['optimizer']['net']['state']
    return ckpt, ckpt['state_dict'], {(i, k): torch.as_tensor(v) for i, s in opt.items() for k, v in s.items()}


def test_resume_is_bitwise_exact(tmp_path):
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    run_tool([TRAIN, CFG, '--work-dir', straight], cwd=tmp_path)
    run_tool([TRAIN, CFG, '--work-dir', split, '--cfg-options', 'train_cfg.max_iters=3'], cwd=tmp_path)
    proc = run_tool([TRAIN, CFG, '--work-dir', split, '--resume'], cwd=tmp_path)
    assert 'without replay' in proc.stdout + proc.stderr  # the sampler seeks instead of replaying batches

    a, sa, oa = _states(straight / 'iter_6.pth')
    b, sb, ob = _states(split / 'iter_6.pth')
    assert sa.keys() == sb.keys() and 'emas.ema.module.0.weight' in sa and 'emas.ema.steps' in sa
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert oa.keys() == ob.keys() and len(oa) > 0
    for k in oa:
        assert torch.equal(oa[k], ob[k]), k
    assert a['param_schedulers'] == b['param_schedulers']
    assert int(sa['emas.ema.steps']) == 6 and int(sa['calls']) == 6
    # the safe loader's allow-list covers every non-tensor global MMEngine wrote into the file
    allowed = {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
               for g in MMENGINE_CHECKPOINT_GLOBALS}
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(straight / 'iter_6.pth')))
    assert needed and needed <= allowed, needed - allowed
    grids = list(straight.rglob('samples_*.png'))
    assert {g.name for g in grids} == {'samples_3.png', 'samples_6.png'}


def test_two_gloo_processes_match_one(tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'
    common = ['model.noise_std=0.0', 'train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=4']
    run_tool([TRAIN, CFG, '--work-dir', one, '--cfg-options', 'train_dataloader.batch_size=4', *common], cwd=tmp_path)
    cmd = ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(CFG), '2', '--work-dir', str(two),
           '--cfg-options', 'train_dataloader.batch_size=2', *common]
    proc = subprocess.run(cmd, cwd=tmp_path, env=tool_env(PYTHON=sys.executable, PORT=str(free_port())),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    _, s1, _ = _states(one / 'iter_4.pth')
    _, s2, _ = _states(two / 'iter_4.pth')
    assert s1.keys() == s2.keys()  # no DDP 'module.' prefixes leak into checkpoints
    for k in s1:
        if s1[k].is_floating_point():
            assert torch.allclose(s1[k], s2[k], atol=1e-5), (k, (s1[k] - s2[k]).abs().max())
    assert not torch.allclose(s1['net.0.weight'], load_kdm_checkpoint(str(one / 'iter_4.pth'))['state_dict'][
        'net.0.weight'] + 1)


KILLER = '''
import os, signal, sys
sys.argv = ['train.py', {cfg!r}, '--work-dir', {wd!r}]
import kdm.engine.checkpoint as ck
orig, big = ck._write_bytes, []
def dying_write(f, data):
    if len(data) > 2000:
        big.append(1)
        if len(big) == 2:  # the second checkpoint (iter_6): write half of it, then die like an OOM kill
            f.write(data[:len(data) // 2]); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    orig(f, data)
ck._write_bytes = dying_write
sys.path.insert(0, {tools!r})
import train
train.main()
'''


def test_kill_during_checkpoint_keeps_previous(tmp_path):
    wd = tmp_path / 'wd'
    script = tmp_path / 'killer.py'
    script.write_text(KILLER.format(cfg=str(CFG), wd=str(wd), tools=str(ROOT / 'tools')))
    proc = run_tool([script], cwd=tmp_path, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (wd / 'iter_6.pth').exists()
    assert (wd / 'last_checkpoint').read_text().strip().endswith('iter_3.pth')
    ckpt = load_kdm_checkpoint(str(wd / 'iter_3.pth'))
    assert ckpt['meta']['iter'] == 3
    run_tool([TRAIN, CFG, '--work-dir', wd, '--resume'], cwd=tmp_path)  # and training continues from it
    assert load_kdm_checkpoint(str(wd / 'iter_6.pth'))['meta']['iter'] == 6


def test_nan_loss_stops_with_iteration(tmp_path):
    proc = run_tool([TRAIN, CFG, '--work-dir', tmp_path / 'wd', '--cfg-options', 'model.fail_at_iter=4'],
                    cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "non-finite loss 'loss'" in proc.stderr and 'iteration 5' in proc.stderr
    assert (tmp_path / 'wd' / 'iter_3.pth').exists() and not (tmp_path / 'wd' / 'iter_6.pth').exists()
    assert 'Traceback' not in proc.stderr
