"""Shared test helpers: the repository root and a runner for the command-line tools in a subprocess."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on now, for the rendezvous of a multi-process test (fixed ports collide when two
    test runs share a machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


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


def pytest_configure(config):
    # Tiny networks gain nothing from a second thread, and OpenMP threads that wait for a busy core make a loaded
    # machine (CI neighbours, parallel jobs) tens of times slower. Subprocesses get OMP_NUM_THREADS=1 (tool_env).
    torch.set_num_threads(1)


@pytest.fixture
def root() -> Path:
    return ROOT
