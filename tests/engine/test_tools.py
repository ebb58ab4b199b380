"""The command-line plumbing around training: .ci/run and `make test`, print_config.py, --amp, the slurm scripts."""
import importlib.util
import shutil
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, free_port, run_tool, tool_env

CFG = ROOT / 'tests' / 'engine' / 'configs' / 'toy_engine.py'


def _load_train_tool():
    spec = importlib.util.spec_from_file_location('kdm_train_tool', ROOT / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which('make') is None, reason='make is not installed')
def test_ci_accepts_no_tests_collected_but_make_test_does_not(tmp_path):
    # `-o STAMP`: treat the installed venv as up to date (never reinstall from inside the test suite)
    keep_venv = ['-o', '.venv/.kdm-installed']
    empty = tmp_path / 'no_tests'
    empty.mkdir()
    # make reports any failing recipe as status 2, so .ci/run cannot see pytest's 5: the Makefile handles it
    # when this test itself runs under make (`.ci/run`, `make test TESTS=...`), make hands its command-line variables
    # to every child make through MAKEFLAGS, which would override TESTS and ALLOW_NO_TESTS below: drop them
    outer = ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'ALLOW_NO_TESTS', 'TESTS')
    clean_env = {k: v for k, v in tool_env().items() if k not in outer}
    ci = subprocess.run([str(ROOT / '.ci' / 'run'), *keep_venv], cwd=tmp_path, env={**clean_env, 'TESTS': str(empty)},
                        capture_output=True, text=True, timeout=120)
    assert ci.returncode == 0, ci.stdout[-2000:] + ci.stderr[-2000:]
    assert 'collected no tests' in ci.stdout
    plain = subprocess.run(['make', '--no-print-directory', *keep_venv, 'test', f'TESTS={empty}'], cwd=ROOT, env=clean_env,
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and 'collected no tests' not in plain.stdout


def test_print_config_from_another_directory(tmp_path):
    proc = run_tool([ROOT / 'tools' / 'print_config.py', CFG, '--build', '--cfg-options', 'model.channels=4'],
                    cwd=tmp_path)
    assert "type='EngineToyModel'" in proc.stdout and 'channels=4' in proc.stdout
    # conv(1->4, 3x3) + conv(4->1, 3x3): 40 + 37 parameters, printed per sub-network
    assert any(line.split()[:2] == ['net', '0.000'] for line in proc.stdout.splitlines())
    missing = run_tool([ROOT / 'tools' / 'print_config.py', tmp_path / 'nope.py'], cwd=tmp_path, check=False)
    assert missing.returncode == 2 and 'nope.py' in missing.stderr and 'Traceback' not in missing.stderr


def test_amp_flag(capsys):
    train = _load_train_tool()
    from mmengine.config import Config
    multi = Config(dict(optim_wrapper=dict(constructor='MultiNetOptimWrapperConstructor',
                                           student=dict(optimizer=dict(type='Adam')),
                                           fake_score=dict(type='OptimWrapper', optimizer=dict(type='Adam')))))
    train.set_amp(multi)
    assert multi.optim_wrapper.student.type == multi.optim_wrapper.fake_score.type == 'AmpOptimWrapper'
    assert multi.optim_wrapper.student.loss_scale == 'dynamic'
    single = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
    train.set_amp(single)
    assert single.optim_wrapper.type == 'AmpOptimWrapper'
    if torch.cuda.is_available():
        return  # the CPU-only refusal below cannot be observed on a CUDA machine
    assert train.main([str(CFG), '--amp']) == 2  # MMEngine's AmpOptimWrapper would fail with a bare assertion
    err = capsys.readouterr().err
    assert 'kdm: error: --amp needs a CUDA device' in err and 'Traceback' not in err


FAKE_SRUN = '''#!/usr/bin/env bash
# srun stand-in: logs its arguments, then runs the command as the single task of a one-node job
echo "$@" > "$FAKE_SRUN_LOG"
while [ $# -gt 0 ]; do case "$1" in -p) shift 2 ;; -*) shift ;; *) break ;; esac; done
[ -n "${FAKE_SRUN_DRY:-}" ] && exit 0
export SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_NODELIST=fakenode
exec "$@"
'''


def _fake_slurm(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'scontrol').write_text('#!/usr/bin/env bash\necho 127.0.0.1\n')  # `scontrol show hostname NODES`
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return dict(PATH=f'{bin_dir}:{tool_env()["PATH"]}', PYTHON=sys.executable, GPUS='1', GPUS_PER_NODE='1',
                FAKE_SRUN_LOG=str(tmp_path / 'srun_args.txt'))


def test_slurm_scripts_launch_from_any_directory(tmp_path):
    env = _fake_slurm(tmp_path)
    wd = tmp_path / 'wd'
    cmd = ['bash', str(ROOT / 'tools' / 'slurm_train.sh'), 'gpu', 'toy', str(CFG), str(wd), '--cfg-options',
           'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2']
    proc = subprocess.run(cmd, cwd=tmp_path, env=tool_env(MASTER_PORT=str(free_port()), **env), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    args = (tmp_path / 'srun_args.txt').read_text().split()
    assert args[:2] == ['-p', 'gpu'] and '--job-name=toy' in args and '--ntasks=1' in args
    assert args[args.index('--launcher') + 1] == 'slurm' and f'--work-dir={wd}' in args
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: slurm' in log and 'Distributed training: True' in log  # a real (1-process) group
    from kdm.engine import load_kdm_checkpoint
    assert load_kdm_checkpoint(str(wd / 'iter_2.pth'))['meta']['iter'] == 2

    ckpt = wd / 'iter_2.pth'
    cmd = ['bash', str(ROOT / 'tools' / 'slurm_test.sh'), 'gpu', 'toy_test', str(CFG), str(ckpt), '--work-dir', 'x']
    proc = subprocess.run(cmd, cwd=tmp_path, env=tool_env(FAKE_SRUN_DRY='1', **env), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    args = (tmp_path / 'srun_args.txt').read_text().split()
    tail = args[args.index(str(ROOT / 'tools' / 'test.py')):]
    assert tail == [str(ROOT / 'tools' / 'test.py'), str(CFG), str(ckpt), '--launcher', 'slurm', '--work-dir', 'x']
