"""Bad configs fail with one clear sentence (no traceback): unknown type, unknown key, missing file."""
from tests.conftest import ROOT, run_tool

TRAIN = ROOT / 'tools' / 'train.py'
CFG = ROOT / 'tests' / 'engine' / 'configs' / 'toy_engine.py'


def _fail(tmp_path, *options):
    proc = run_tool([TRAIN, CFG, '--work-dir', tmp_path / 'wd', *options], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    return proc.stderr


def test_unknown_type_names_registry_and_closest(tmp_path):
    err = _fail(tmp_path, '--cfg-options', 'model.ema.type=ConstantEma')
    assert "unknown type 'ConstantEma'" in err and 'kdm::model registry' in err and "'ConstantEMA'" in err


def test_unknown_key_names_key_class_and_choices(tmp_path):
    err = _fail(tmp_path, '--cfg-options', 'model.chanels=4')
    assert "unknown config key 'chanels' for EngineToyModel" in err and "['channels']" in err
    assert 'noise_std' in err


def test_missing_config_and_checkpoint(tmp_path):
    proc = run_tool([TRAIN, tmp_path / 'nope.py'], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and 'nope.py' in proc.stderr and 'Traceback' not in proc.stderr
    err = _fail(tmp_path, '--resume', str(tmp_path / 'missing.pth'))
    assert 'missing.pth' in err
