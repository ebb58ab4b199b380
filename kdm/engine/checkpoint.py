# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Checkpoint reading and writing.

* Reading (the torch >= 2.6 shim). MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6
  that defaults to True and refuses the ``HistoryBuffer`` and NumPy objects MMEngine itself writes. kdm registers
  a loader for local paths that keeps ``weights_only=True`` and allows *exactly* the extra globals MMEngine's
  checkpoints contain (:data:`MMENGINE_CHECKPOINT_GLOBALS`) — nothing can execute code while loading.
  ``HistoryBuffer`` pickles its statistics functions through ``getattr``, which no safe loader may allow, so
  :class:`~kdm.engine.KDMRunner` stores the message hub's buffers as plain data (:func:`pack_history_buffers`)
  and the loader rebuilds them (:func:`unpack_history_buffers`). Files from other projects are always read by
  their teacher loaders with plain ``weights_only=True``.
* Writing. :class:`AtomicLocalBackend` writes every file to a temporary name in the same folder, flushes it to
  disk and renames it over the target (``os.replace`` is atomic on POSIX), so a crash or a kill during a save
  never destroys the previous checkpoint nor leaves a half-written file under the final name.
"""
import os
import os.path as osp
import tempfile
from typing import BinaryIO, Callable, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

ATOMIC_BACKEND = 'kdm_atomic_local'

#: Globals found in MMEngine 0.10.7 checkpoints besides tensors and builtin containers (message hub history,
#: NumPy scalars/arrays of logged values). tests/engine/test_train_resume.py checks with
#: ``torch.serialization.get_unsafe_globals_in_checkpoint`` that a real training checkpoint needs no other.
_np_core = getattr(np, '_core', None) or np.core  # NumPy 2 moved numpy.core to numpy._core
MMENGINE_CHECKPOINT_GLOBALS = [
    np.ndarray,
    np.dtype,
    _np_core.multiarray._reconstruct,
    _np_core.multiarray.scalar,
    # the same functions as NumPy 1.x pickles name them
    (_np_core.multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
    (_np_core.multiarray.scalar, 'numpy.core.multiarray.scalar'),
] + [type(np.dtype(t)) for t in ('float64', 'float32', 'float16', 'int64', 'int32', 'bool', 'uint8')]


_PACKED = '__kdm_history_buffer__'


def pack_history_buffers(checkpoint: dict) -> None:
    """Replace the message hub's ``HistoryBuffer`` objects by plain tensors/ints (in place, before saving)."""
    scalars = checkpoint.get('message_hub', {}).get('log_scalars', {})
    for key, buf in list(scalars.items()):
        if isinstance(buf, HistoryBuffer):
            log, count = buf.data
            scalars[key] = {_PACKED: True, 'log': torch.from_numpy(np.asarray(log, dtype=np.float64)),
                            'count': torch.from_numpy(np.asarray(count, dtype=np.float64)),
                            'max_length': int(buf.max_length)}


def unpack_history_buffers(checkpoint: dict) -> dict:
    """Rebuild the ``HistoryBuffer`` objects packed by :func:`pack_history_buffers` (in place)."""
    hub = checkpoint.get('message_hub') if isinstance(checkpoint, dict) else None
    scalars = hub.get('log_scalars', {}) if isinstance(hub, dict) else {}
    for key, value in list(scalars.items()):
        if isinstance(value, dict) and value.get(_PACKED):
            scalars[key] = HistoryBuffer(value['log'].numpy(), value['count'].numpy(), value['max_length'])
    return checkpoint


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used (truncated, not a torch file, unexpected content)."""


def load_kdm_checkpoint(filename: str, map_location: Union[str, torch.device, None] = 'cpu') -> dict:
    """Load a checkpoint written by kdm/MMEngine without executing code (``weights_only=True``).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        CheckpointError: the file is truncated, not a torch checkpoint, or holds unexpected objects.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    try:
        with torch.serialization.safe_globals(MMENGINE_CHECKPOINT_GLOBALS):
            checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError/... for broken files
        size = osp.getsize(filename)
        raise CheckpointError(
            f'cannot read checkpoint {filename} ({size} bytes): {type(exc).__name__}: {exc}. The file is truncated, '
            'not a torch checkpoint, or contains objects kdm does not load (only tensors, containers and '
            'MMEngine log buffers are allowed). Foreign weights must be converted with tools/convert.py.') from exc
    return unpack_history_buffers(checkpoint)


def _write_bytes(fileobj, data: bytes) -> None:
    """Write ``data`` to an open file (a seam for the crash test)."""
    fileobj.write(data)


def atomic_write(path: str, data: Union[bytes, str, Callable[[BinaryIO], None]]) -> None:
    """Write a file through a temporary file next to it + ``os.replace``; the old ``path`` survives any failure.

    Args:
        path: the target file; its folder is created if missing.
        data: the bytes (or UTF-8 text) to write, or a callable ``data(fileobj)`` that streams the content into the
            open binary file (``lambda f: np.savez(f, **arrays)``), so large files are never held twice in memory.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            if callable(data):
                data(f)
            else:
                _write_bytes(f, data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` streamed through :func:`atomic_write` (no in-memory copy of the serialised object)."""
    atomic_write(path, lambda f: torch.save(obj, f))


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic ``put``/``put_text`` (registered as ``kdm_atomic_local``)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(str(filepath), obj.encode(encoding))


def _mmengine_local_loader(filename: str, map_location=None) -> dict:
    return load_kdm_checkpoint(filename, map_location)


def install() -> None:
    """Register the atomic backend and the safe local-checkpoint loader with MMEngine (idempotent)."""
    register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
    CheckpointLoader.register_scheme(prefixes='', loader=_mmengine_local_loader, force=True)
