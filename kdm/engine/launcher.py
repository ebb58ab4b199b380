# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Distributed set-up that works on CPU (gloo) as well as on CUDA (nccl).

MMEngine 0.10.7's ``init_dist`` always calls ``torch.cuda.set_device`` and its Runner passes ``device_ids`` to
every DDP wrapper; both fail on a CPU-only machine. :func:`init_dist` picks the backend from the hardware and the
two wrappers below drop ``device_ids`` for CPU modules.
"""
import os
import subprocess
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel, MMSeparateDistributedDataParallel
from torch import nn

from kdm.registry import MODEL_WRAPPERS


def _setup_slurm_env(port: Optional[int] = None) -> None:
    """Translate SLURM's variables into the torch.distributed ones (as ``srun`` leaves them)."""
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    num_gpus = max(torch.cuda.device_count(), 1)
    addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    os.environ.setdefault('MASTER_PORT', str(port or 29500))
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['LOCAL_RANK'] = str(proc_id % num_gpus)
    os.environ['RANK'] = str(proc_id)


def _setup_mpi_env() -> None:
    os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
    os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']
    os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    os.environ.setdefault('MASTER_PORT', '29500')


def init_dist(launcher: str, backend: Optional[str] = None, port: Optional[int] = None, **kwargs) -> None:
    """Initialise torch.distributed for ``launcher`` in {'pytorch', 'slurm', 'mpi'} ('none' does nothing).

    Args:
        launcher: How the processes were started (torchrun = 'pytorch').
        backend: 'nccl', 'gloo' or None for automatic (nccl with CUDA, gloo without).
        port: Master port for the slurm launcher (default 29500 or ``$MASTER_PORT``).
        **kwargs: Passed to ``torch.distributed.init_process_group`` (e.g. ``timeout`` in seconds).
    """
    if launcher == 'none' or torch_dist.is_initialized():
        return
    if launcher == 'slurm':
        _setup_slurm_env(port)
    elif launcher == 'mpi':
        _setup_mpi_env()
    elif launcher != 'pytorch':
        raise ValueError(f"unknown launcher '{launcher}'; valid: none, pytorch, slurm, mpi")
    use_cuda = torch.cuda.is_available()
    if backend in (None, 'auto'):
        backend = 'nccl' if use_cuda else 'gloo'
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    if 'timeout' in kwargs and not hasattr(kwargs['timeout'], 'total_seconds'):
        import datetime
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch_dist.init_process_group(backend=backend, **kwargs)


def shutdown_dist() -> None:
    """End a successful distributed run: wait for every rank, then destroy the default process group.

    Without it, gloo's worker threads can outlive the interpreter and abort a rank at exit (SIGABRT, "terminate called
    without an active exception", pytorch/pytorch#190489): a finished 2-process run then fails. Call it only after
    success; a rank that failed must not wait on the others. A no-op when torch.distributed is not initialised.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def _on_cuda(module: nn.Module) -> bool:
    p = next(module.parameters(), None)
    return p is not None and p.is_cuda


@MODEL_WRAPPERS.register_module()
class KDMDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that passes ``device_ids`` only for CUDA modules (CPU DDP forbids them)."""

    def __init__(self, module: nn.Module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=device_ids if _on_cuda(module) else None, **kwargs)


@MODEL_WRAPPERS.register_module()
class KDMSeparateDistributedDataParallel(MMSeparateDistributedDataParallel):
    """Wraps every trainable child network of a kdm model in its own DDP (frozen children are only moved).

    A distiller's ``train_step`` updates its nets one after another (generator, then fake score, ...); one DDP
    around the whole model would wait for gradients of the net that is not being updated. This is MMEngine's
    ``MMSeparateDistributedDataParallel`` without ``device_ids`` on CPU.
    """

    def __init__(self, module: nn.Module, broadcast_buffers: bool = False, find_unused_parameters: bool = False,
                 device_ids=None, **kwargs):
        if device_ids is not None and torch.cuda.is_available():
            kwargs['device_ids'] = device_ids
        super().__init__(module, broadcast_buffers=broadcast_buffers,
                         find_unused_parameters=find_unused_parameters, **kwargs)
