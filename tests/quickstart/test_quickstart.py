"""A miniature of `make demo` (tools/quickstart.py --smoke): every stage trains, is scored, and is reused."""
import json

from tests.conftest import ROOT, run_tool

QUICKSTART = ROOT / 'tools' / 'quickstart.py'


def test_quickstart_miniature_runs_and_reuses(tmp_path):
    wd = tmp_path / 'demo'
    first = run_tool([QUICKSTART, '--smoke', '--work-dir', wd], cwd=tmp_path, timeout=300)
    assert (wd / 'grid.png').stat().st_size > 1000
    rows = json.loads((wd / 'metrics.json').read_text())
    models = [r['model'] for r in rows]
    assert models[:2] == ['real digits (training split)', 'uniform noise images']
    assert any('EDM teacher' in m for m in models) and any('DKDM' in m for m in models)
    teacher = next(r for r in rows if r['model'].startswith('EDM teacher, Heun'))
    assert teacher['nfe'] == 35 and 0.0 <= teacher['accuracy'] <= 1.0 and teacher['fd'] > 0
    dkdm = next(r for r in rows if r['model'].startswith('DKDM'))
    assert dkdm['target'].startswith(('met (', 'not met ('))  # every method row states its toy target
    table = (wd / 'metrics.md').read_text()
    assert '| model |' in table and 'FD (classifier)' in table and 'grid.png' in table
    assert 'class accuracy' in first.stdout and 'starting' in first.stdout
    second = run_tool([QUICKSTART, '--smoke', '--work-dir', wd], cwd=tmp_path, timeout=300)
    assert second.stdout.count('reusing') == 4 and 'starting' not in second.stdout
