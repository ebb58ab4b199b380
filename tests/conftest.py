"""Shared test helpers: the repository root and a runner for the command-line tools in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool_env(**extra) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env.update(extra)
    return env


def run_tool(args, cwd, timeout=240, check=True, **env) -> subprocess.CompletedProcess:
    """Run ``python <args>`` (a tool script and its arguments) from ``cwd``; return the completed process."""
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=tool_env(**env), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


@pytest.fixture
def root() -> Path:
    return ROOT
