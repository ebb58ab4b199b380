"""The safe checkpoint loader and atomic writing."""
import os
import pickle

import pytest
import torch

from kdm.engine import CheckpointError, atomic_torch_save, atomic_write, load_kdm_checkpoint
from kdm.engine import checkpoint as ck


def test_missing_and_corrupt_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_kdm_checkpoint(str(tmp_path / 'nope.pth'))
    good = tmp_path / 'good.pth'
    atomic_torch_save({'state_dict': {'w': torch.ones(3)}}, str(good))
    data = good.read_bytes()
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated'):
        load_kdm_checkpoint(str(bad))
    text = tmp_path / 'text.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(CheckpointError):
        load_kdm_checkpoint(str(text))
    assert torch.equal(load_kdm_checkpoint(str(good))['state_dict']['w'], torch.ones(3))


class _Evil:
    def __reduce__(self):
        return (os.system, ('touch EVIL_WAS_RUN',))


def test_code_in_a_checkpoint_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _Evil()}, str(path))
    with pytest.raises(CheckpointError, match='system'):
        load_kdm_checkpoint(str(path))
    assert not (tmp_path / 'EVIL_WAS_RUN').exists()
    plain = tmp_path / 'evil.pkl'
    plain.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError):
        load_kdm_checkpoint(str(plain))
    assert not (tmp_path / 'EVIL_WAS_RUN').exists()


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'ckpt.pth'
    atomic_write(str(target), b'old')

    def fail(f, data):
        f.write(data[:1])
        raise OSError('disk full')

    monkeypatch.setattr(ck, '_write_bytes', fail)
    with pytest.raises(OSError, match='disk full'):
        atomic_write(str(target), b'new content')
    assert target.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['ckpt.pth']  # the temporary file is cleaned up


def test_streamed_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / 'pool.pt'
    atomic_torch_save({'x': torch.arange(4)}, str(target))  # streamed: torch.save writes into the open temp file
    assert torch.equal(torch.load(target, weights_only=True)['x'], torch.arange(4))

    def half_then_fail(f):
        f.write(b'partial')
        raise RuntimeError('interrupted')

    with pytest.raises(RuntimeError, match='interrupted'):
        atomic_write(str(target), half_then_fail)
    assert torch.equal(torch.load(target, weights_only=True)['x'], torch.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ['pool.pt']


def test_history_buffers_round_trip():
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    for v in (1.0, 2.0, 4.0):
        buf.update(v)
    ckpt = {'message_hub': {'log_scalars': {'train/loss': buf}, 'runtime_info': {}, 'resumed_keys': {}}}
    ck.pack_history_buffers(ckpt)
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'], dict)
    ck.unpack_history_buffers(ckpt)
    back = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(back, HistoryBuffer) and back.mean() == pytest.approx(7 / 3) and back.max() == 4.0
