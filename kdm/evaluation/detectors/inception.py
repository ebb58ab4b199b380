# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The FID Inception-v3: TensorFlow's ``inception-2015-12-05`` network as used by EDM, SiD, SFD, pytorch-fid and
the ADM evaluator, written as kdm's own module (``spec/metrics_data.md`` sections 1-2).

Architecture, parameter names and shapes are those of pytorch-fid's ``fid_inception_v3`` / torch-fidelity's
``FeatureExtractorInceptionV3`` (a torchvision ``Inception3(num_classes=1008, aux_logits=False)`` whose blocks use
the TF graph's pooling): the ``pt_inception-2015-12-05-6726825d.pth`` state dict loads with ``strict=True``.
Differences from torchvision's ImageNet Inception: branch-pool average pooling excludes the padding
(``count_include_pad=False``), ``Mixed_7c`` pools with a 3x3 *max* pool, batch-norm eps is 1e-3, ``fc`` has 1008
outputs. Preprocessing is the reference one: uint8 NCHW RGB at native resolution, TF1 bilinear resize to 299x299
(no half-pixel centres, which NVIDIA's detector reproduces with a shifted ``affine_grid``), then ``(x - 128) / 128``.

Outputs (:meth:`FIDInceptionV3.forward`):

- ``pool``: the 2048-d average pool after ``Mixed_7c`` (TF ``pool_3:0``), the FID / PRDC / KID feature;
- ``logits``: ``pool @ fc.weight.T`` *without* the bias (ADM evaluator ``softmax/logits/MatMul``, NVIDIA
  ``no_output_bias=True``), 1008-d, for the Inception Score;
- ``spatial``: ``Mixed_6d.branch1x1`` (TF ``mixed_6/conv:0``, 192 x 17 x 17 after ReLU), first 7 channels,
  flattened in TF's NHWC order -> 2023-d, the sFID feature of the ADM evaluator.
"""
import hashlib
import os
from typing import Dict, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdm.registry import MODELS

#: Input resolution of the network.
INCEPTION_SIZE = 299

#: The weight files users have, with where to get them (never downloaded by kdm). The 8 hex digits in the
#: torch-hub style names are the first digits of the file's SHA-256 (torch.hub's naming rule).
INCEPTION_FILES = {
    'pt_inception-2015-12-05-6726825d.pth': dict(
        kind='state_dict', sha256_prefix='6726825d',
        url='https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
            'pt_inception-2015-12-05-6726825d.pth'),
    'weights-inception-2015-12-05-6726825d.pth': dict(
        kind='state_dict', sha256_prefix='6726825d',
        url='https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/'
            'weights-inception-2015-12-05-6726825d.pth'),
    'inception-2015-12-05.pt': dict(
        kind='torchscript', sha256_prefix=None,
        url='https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt'),
    'inception-2015-12-05.pkl': dict(  # EDM / EDM2 / SFD / CUD fid.py: read without running its embedded code
        kind='nvidia-pickle', sha256_prefix=None,
        url='https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/'
            'inception-2015-12-05.pkl'),
}
DEFAULT_INCEPTION_FILE = 'pt_inception-2015-12-05-6726825d.pth'
#: Environment variable naming a local weight file (any of :data:`INCEPTION_FILES`).
INCEPTION_ENV = 'KDM_INCEPTION'


# ----------------------------------------------------------------------------------------------- preprocessing
def tf1_resize_matrix(n_in: int, n_out: int, dtype=torch.float64, device=None) -> Tensor:
    """(n_out, n_in) matrix of TF1 ``resize_bilinear`` (``align_corners=False``, no half-pixel centres).

    Output pixel ``j`` reads source coordinate ``s = j * n_in / n_out``: ``(1 - f) x[i0] + f x[i1]`` with
    ``i0 = floor(s)``, ``i1 = min(i0 + 1, n_in - 1)``, ``f = s - i0``. NVIDIA's detector computes the same map with
    ``affine_grid`` shifted by ``1/W - 1/299`` and ``grid_sample(padding_mode='border', align_corners=False)``.
    """
    j = torch.arange(n_out, dtype=torch.float64)
    src = j * (n_in / n_out)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    frac = src - i0.double()
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[j.long(), i0] += 1 - frac
    m[j.long(), i1] += frac
    return m.to(dtype=dtype, device=device)


def tf1_bilinear_resize(x: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """Resize float (N, C, H, W) images to ``size x size`` exactly as TF1's bilinear resize does.

    Written as two small matrix products (rows then columns), which is exact and cheap; an image already at
    ``size`` is returned unchanged.
    """
    n, c, h, w = x.shape
    if h == size and w == size:
        return x
    rh = tf1_resize_matrix(h, size, dtype=x.dtype, device=x.device)
    rw = tf1_resize_matrix(w, size, dtype=x.dtype, device=x.device)
    return torch.matmul(torch.matmul(rh, x), rw.t())


def check_uint8_images(images: Tensor, what: str = 'images', channels: Sequence[int] = (1, 3)) -> Tensor:
    """Validate a uint8 NCHW batch and return it; raise a clear error otherwise.

    Raises:
        TypeError: not a tensor, or not uint8 (with a hint when the values look like [-1, 1] or [0, 1] floats).
        ValueError: not 4-D NCHW with an allowed channel count (with a hint for NHWC arrays).
    """
    if not isinstance(images, Tensor):
        raise TypeError(f'{what} must be a torch.Tensor of uint8 NCHW images, got {type(images).__name__}')
    if images.dtype != torch.uint8:
        hint = ''
        if images.is_floating_point() and images.numel():
            lo, hi = float(images.min()), float(images.max())
            if lo < 0:
                hint = (f' The values span [{lo:.3g}, {hi:.3g}], i.e. model-space images in [-1, 1]: convert them '
                        'with kdm.models.base.to_uint8 ((x * 127.5 + 128).clamp(0, 255).to(torch.uint8)).')
            elif hi <= 1.0:
                hint = f' The values span [{lo:.3g}, {hi:.3g}], i.e. [0, 1] images: use (x * 255).round().to(uint8).'
            else:
                hint = f' The values span [{lo:.3g}, {hi:.3g}]: round and cast them to torch.uint8.'
        raise TypeError(f'{what} must be uint8 images in [0, 255] (the reference protocol quantises samples before '
                        f'the detector), got dtype {images.dtype}.{hint}')
    if images.ndim != 4:
        raise ValueError(f'{what} must be a 4-D (N, C, H, W) batch, got shape {tuple(images.shape)}')
    if images.shape[1] not in channels:
        hint = ' It looks like NHWC: use images.permute(0, 3, 1, 2).' if images.shape[-1] in channels else ''
        raise ValueError(f'{what} must have {" or ".join(map(str, channels))} channels in dim 1 (NCHW), got shape '
                         f'{tuple(images.shape)}.{hint}')
    return images


# ----------------------------------------------------------------------------------------------- network blocks
class BasicConv2d(nn.Module):
    """Conv (no bias) + batch norm (eps 1e-3, TF's value) + ReLU; keys ``conv.*`` and ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool(x: Tensor) -> Tensor:
    # TF's branch pool: 3x3 average, stride 1, "SAME" padding that does not count the padded zeros.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d (TF ``mixed``, ``mixed_1``, ``mixed_2``)."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Mixed_6a (TF ``mixed_3``), the 35 -> 17 reduction."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    """Mixed_6b..6e (TF ``mixed_4`` .. ``mixed_7``), factorised 7x7 convolutions."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward_with_branch1x1(self, x: Tensor):
        """Block output and its ``branch1x1`` activation (TF ``mixed_6/conv:0`` for Mixed_6d)."""
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(bd))))
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1), b1

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_branch1x1(x)[0]


class InceptionD(nn.Module):
    """Mixed_7a (TF ``mixed_8``), the 17 -> 8 reduction."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """Mixed_7b (TF ``mixed_9``, average branch pool) and Mixed_7c (TF ``mixed_10``, *max* branch pool)."""

    def __init__(self, in_channels: int, pool: str = 'avg'):
        super().__init__()
        assert pool in ('avg', 'max')
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == 'avg':
            bp = _avg_pool(x)
        else:
            bp = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([b1, b3, bd, self.branch_pool(bp)], 1)


# ----------------------------------------------------------------------------------------------- weights
def sha256_of(path: str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (cached per path, size and mtime)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(chunk), b''):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


_SHA_CACHE: Dict[tuple, str] = {}


def missing_weights_message(what: str, tried: Iterable[str]) -> str:
    """The error text for a missing Inception weight file: expected names, checksums, where to get them."""
    lines = [f'{what}: no local Inception-v3 weight file found (kdm never downloads weights).',
             'Tried: ' + (', '.join(tried) or 'nothing (no path given)') + '.',
             f'Give a path in the config (detector=dict(type="FIDInceptionV3", weights=PATH)) or in ${INCEPTION_ENV}.',
             'Accepted files (download one once, on a machine with internet access):']
    for name, info in INCEPTION_FILES.items():
        sha = f'sha256 starts with {info["sha256_prefix"]}' if info['sha256_prefix'] else 'checksum: see the source'
        lines.append(f'  {name} ({info["kind"]}; {sha}) from {info["url"]}')
    return '\n'.join(lines)


def resolve_inception_weights(weights: Optional[str] = None) -> str:
    """Find the local Inception weight file: ``weights`` > ``$KDM_INCEPTION`` > torch-hub cache. Never downloads.

    Raises:
        FileNotFoundError: with the expected file names, their checksums and download locations.
    """
    tried = []
    for cand in (weights, os.environ.get(INCEPTION_ENV)):
        if cand:
            cand = os.path.expanduser(str(cand))
            if os.path.isfile(cand):
                return cand
            tried.append(cand)
    hub = os.path.join(os.environ.get('TORCH_HOME', os.path.expanduser('~/.cache/torch')), 'hub', 'checkpoints')
    for name, info in INCEPTION_FILES.items():
        if info['kind'] == 'state_dict':
            cand = os.path.join(hub, name)
            if os.path.isfile(cand):
                return cand
            tried.append(cand)
    raise FileNotFoundError(missing_weights_message('FIDInceptionV3', tried))


def load_inception_state_dict(path: str) -> Dict[str, Tensor]:
    """Read a weight file into the pytorch-fid key layout, without executing any code from it.

    Accepts a state-dict ``.pth`` (pytorch-fid / torch-fidelity, loaded with ``weights_only=True``; keys prefixed by
    ``module.`` or wrapped in ``{'state_dict': ...}`` are unwrapped) and NVIDIA's TorchScript
    ``inception-2015-12-05.pt``, converted by :mod:`kdm.evaluation.detectors.nvidia`.
    """
    import zipfile
    if not os.path.isfile(path):
        raise FileNotFoundError(missing_weights_message('FIDInceptionV3', [path]))
    if path.endswith('.pkl'):
        from .nvidia import load_nvidia_pickle_detector
        return load_nvidia_pickle_detector(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith('/constants.pkl') or n.startswith('code/') or '/code/' in n for n in names):
            from .nvidia import load_torchscript_detector
            return load_torchscript_detector(path)
    try:
        sd = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise RuntimeError(f'cannot read Inception weights {path} as a state dict (torch.load with '
                           f'weights_only=True): {e}') from e
    if isinstance(sd, dict) and 'state_dict' in sd and isinstance(sd['state_dict'], dict):
        sd = sd['state_dict']
    if not isinstance(sd, dict):
        raise TypeError(f'{path} holds a {type(sd).__name__}, not a state dict')
    return {k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}


class _full_fp32:
    """Disable TF32 for convolutions and matmuls while the detector runs (PyTorch enables it for cuDNN
    convolutions by default on Ampere+ GPUs; its 10-bit mantissa would move features by ~1e-3)."""

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


# ----------------------------------------------------------------------------------------------- the network
@MODELS.register_module()
class FIDInceptionV3(nn.Module):
    """The TF-ported Inception-v3 of FID / IS / sFID (see the module docstring).

    Args:
        weights (str, optional): Local weight file (pytorch-fid ``.pth``, torch-fidelity ``.pth`` or NVIDIA
            ``inception-2015-12-05.pt``). None looks at ``$KDM_INCEPTION`` then the torch-hub cache and raises a
            :class:`FileNotFoundError` naming the expected file when nothing is found.
        random_init (bool): Skip loading and keep a randomly initialised network (tests, benchmarks). Its features
            are meaningless as metrics; the protocol then says ``weights='random'``.
        batch_size (int): Images per forward pass in :meth:`forward` (bounds the memory).
        seed (int): Seed of the random initialisation.
    """

    feature_dims = dict(pool=2048, logits=1008, spatial=2023)
    input_channels = (1, 3)

    def __init__(self, weights: Optional[str] = None, random_init: bool = False, batch_size: int = 200,
                 seed: int = 0):
        super().__init__()
        self.batch_size = int(batch_size)
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool='avg')
        self.Mixed_7c = InceptionE(2048, pool='max')
        self.fc = nn.Linear(2048, 1008)
        if random_init:
            self._random_init(seed)
            self.weights_path, self.weights_sha256 = 'random', 'random'
        else:
            path = resolve_inception_weights(weights)
            self.load_state_dict(load_inception_state_dict(path), strict=True)
            self.weights_path, self.weights_sha256 = path, sha256_of(path)
        # channels-last convolutions are ~1.4x faster on CPU (oneDNN) and not slower on GPU; the results differ
        # from NCHW only by float32 rounding (~1e-6 relative).
        self.to(memory_format=torch.channels_last)
        self.eval().requires_grad_(False)

    def _random_init(self, seed: int) -> None:
        """Deterministic random weights with sane activation scales (so random features are not degenerate)."""
        gen = torch.Generator().manual_seed(seed)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1.0)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            elif isinstance(m, nn.Linear):
                m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen) * (1.0 / m.in_features) ** 0.5)
                m.bias.data.zero_()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``; files without batch-norm ``num_batches_tracked`` counters (TF
        conversions) load strictly too (the counters are unused in eval mode)."""
        state_dict = dict(state_dict)
        for name, buf in self.named_buffers():
            if name.endswith('num_batches_tracked') and name not in state_dict:
                state_dict[name] = torch.zeros_like(buf)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def protocol(self) -> dict:
        """What produced the features (printed by ``tools/test.py`` and stored in reference files)."""
        return dict(detector='FIDInceptionV3 (TF inception-2015-12-05)', weights=self.weights_path,
                    weights_sha256=self.weights_sha256, resize='TF1 bilinear to 299x299 (align_corners=False)',
                    normalisation='(x - 128) / 128', input='uint8 NCHW RGB, grey repeated x3')

    @staticmethod
    def preprocess(images: Tensor) -> Tensor:
        """uint8 (N, 1|3, H, W) -> float32 (N, 3, 299, 299) network input (resize, then ``(x - 128) / 128``)."""
        check_uint8_images(images, 'FIDInceptionV3 input')
        x = images.to(torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = tf1_bilinear_resize(x, INCEPTION_SIZE)
        return (x - 128.0) / 128.0

    def _forward_net(self, x: Tensor, want_spatial: bool):
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))
        x, spatial = self.Mixed_6d.forward_with_branch1x1(x)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(self.Mixed_6e(x))))
        pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if want_spatial:
            # TF flattens NHWC (17, 17, 7); ADM's precomputed mu_s/sigma_s use that order.
            spatial = spatial[:, :7].permute(0, 2, 3, 1).flatten(1)
        return pool, spatial

    @torch.no_grad()
    def forward(self, images: Tensor, features: Sequence[str] = ('pool', 'logits', 'spatial')) -> Dict[str, Tensor]:
        """uint8 (N, C, H, W) images -> dict of float32 features on the module's device.

        Args:
            images: uint8 NCHW RGB (or grey) images at native resolution, on any device.
            features: Which of ``pool``, ``logits``, ``spatial`` to return.
        """
        check_uint8_images(images, 'FIDInceptionV3 input')
        unknown = set(features) - set(self.feature_dims)
        if unknown:
            raise KeyError(f'unknown features {sorted(unknown)}; FIDInceptionV3 gives {sorted(self.feature_dims)}')
        device = self.fc.weight.device
        out = {k: [] for k in features}
        with _full_fp32():
            self._forward_batches(images, features, device, out)
        if images.shape[0] == 0:
            return {k: torch.zeros(0, self.feature_dims[k], device=device) for k in features}
        return {k: torch.cat(v) for k, v in out.items()}

    def _forward_batches(self, images: Tensor, features: Sequence[str], device, out: Dict[str, list]) -> None:
        for start in range(0, images.shape[0], self.batch_size):
            x = self.preprocess(images[start:start + self.batch_size].to(device))
            x = x.contiguous(memory_format=torch.channels_last)
            pool, spatial = self._forward_net(x, 'spatial' in features)
            if 'pool' in features:
                out['pool'].append(pool)
            if 'logits' in features:
                out['logits'].append(pool @ self.fc.weight.t())  # no bias (ADM / NVIDIA no_output_bias)
            if 'spatial' in features:
                out['spatial'].append(spatial)
