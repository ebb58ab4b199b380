# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""``KDMRunner``: MMEngine's Runner with CPU-aware distribution and safe, atomic, strict checkpoints."""
import os
from typing import Optional

import torch
from mmengine.dist import is_distributed
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch import nn

from kdm.registry import MODEL_WRAPPERS, RUNNERS
from . import checkpoint as ckpt_io
from .launcher import init_dist


@RUNNERS.register_module()
class KDMRunner(Runner):
    """The Runner every kdm config uses (``runner_type = 'KDMRunner'`` in ``configs/_base_/default_runtime.py``).

    Differences from ``mmengine.runner.Runner`` (all else is unchanged):

    - distributed initialisation through :func:`kdm.engine.launcher.init_dist` (gloo on CPU, nccl on CUDA);
    - the default model wrapper is ``KDMSeparateDistributedDataParallel`` (one DDP per trainable sub-network,
      ``device_ids`` only on CUDA);
    - checkpoints load through the safe ``weights_only`` loader and strictly (a wrong architecture fails with the
      offending keys instead of a warning), and are written atomically (temp file + rename).
    """

    def setup_env(self, env_cfg: dict) -> None:
        ckpt_io.install()
        if self.distributed and not is_distributed():
            dist_cfg = dict(env_cfg.get('dist_cfg') or {})
            init_dist(self.launcher, **dist_cfg)
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[dict], model: nn.Module) -> nn.Module:
        if is_model_wrapper(model) or not self.distributed:
            return super().wrap_model(model_wrapper_cfg, model)
        model = model.to(self._device())
        cfg = dict(model_wrapper_cfg or dict(type='KDMSeparateDistributedDataParallel', broadcast_buffers=False,
                                             find_unused_parameters=self.cfg.get('find_unused_parameters', False)))
        cfg.setdefault('type', 'KDMSeparateDistributedDataParallel')
        default_args = dict(module=model)
        if torch.cuda.is_available():
            default_args['device_ids'] = [int(os.environ.get('LOCAL_RANK', 0))]
        return MODEL_WRAPPERS.build(cfg, default_args=default_args)

    @staticmethod
    def _device() -> torch.device:
        from mmengine.device import get_device
        return torch.device(get_device())

    def call_hook(self, fn_name: str, **kwargs) -> None:
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_save_checkpoint':  # after every hook has edited it: make it safe-loadable
            ckpt_io.pack_history_buffers(kwargs['checkpoint'])

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = True,
                        revise_keys: list = [(r'^module.', '')]):  # noqa: B006 (MMEngine's signature)
        """MMEngine's ``load_checkpoint`` with ``strict=True`` by default (also used by ``resume``)."""
        return super().load_checkpoint(filename, map_location=map_location, strict=strict, revise_keys=revise_keys)

    def save_checkpoint(self, out_dir: str, filename: str, file_client_args=None, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args: Optional[dict] = None):
        """MMEngine's ``save_checkpoint``, written atomically unless another storage backend is configured."""
        if backend_args is None and file_client_args is None:
            backend_args = dict(backend=ckpt_io.ATOMIC_BACKEND)
        return super().save_checkpoint(out_dir, filename, file_client_args=file_client_args,
                                       save_optimizer=save_optimizer, save_param_scheduler=save_param_scheduler,
                                       meta=meta, by_epoch=by_epoch, backend_args=backend_args)
