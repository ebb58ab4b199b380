"""A tiny model and dataset for the engine tests, registered through ``custom_imports`` like a user plugin."""
import torch
from torch import nn
from torch.utils.data import Dataset

from kdm.models.base import BaseGenerativeModel, build_emas
from kdm.registry import DATASETS, MODELS


@DATASETS.register_module()
class EngineToyDataset(Dataset):
    """``size`` fixed random 1×8×8 images in [-1, 1] with labels ``i % 10``."""

    def __init__(self, size: int = 64, resolution: int = 8):
        g = torch.Generator().manual_seed(1234)
        self.images = torch.rand(size, 1, resolution, resolution, generator=g) * 2 - 1
        self.metainfo = dict(name='engine_toy')

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return dict(img=self.images[i], label=torch.tensor(i % 10))


@MODELS.register_module()
class EngineToyModel(BaseGenerativeModel):
    """Denoise ``img + noise_std * eps`` back to ``img`` with a 2-layer conv net; loss = batch-mean MSE."""

    def __init__(self, channels: int = 8, noise_std: float = 0.0, fail_at_iter: int = -1, ema=None,
                 sample_ema='ema', data_preprocessor=None, init_cfg=None):
        super().__init__(sample_ema=sample_ema, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.net = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.SiLU(), nn.Conv2d(channels, 1, 3, padding=1))
        self.emas = build_emas(ema, self.net)
        self.noise_std = noise_std
        self.fail_at_iter = fail_at_iter
        self.img_shape = (1, 8, 8)
        self.register_buffer('calls', torch.zeros((), dtype=torch.int64))

    def train_step(self, data, optim_wrapper):
        data = self.data_preprocessor(data, True)
        x0 = data['img']
        x = x0 + self.noise_std * torch.randn_like(x0)
        with optim_wrapper['net'].optim_context(self.net):
            loss = ((self.net(x) - x0)**2).mean()
        if int(self.calls) == self.fail_at_iter:
            loss = loss * float('nan')
        optim_wrapper['net'].update_params(loss)
        self.update_emas()
        self.calls += 1
        return dict(loss=loss.detach())

    def sample(self, noise, cond=None, ema='ema', randn_like=None):
        return self.get_net(ema)(noise).clamp(-1, 1)
