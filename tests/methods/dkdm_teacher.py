"""A randomly initialised ADM teacher for the DKDM tests (registered through ``custom_imports`` like a plugin).

ADMUNet zero-initialises its output convolution, so every parameter is perturbed (seeded, without touching the
global RNG) to give a teacher whose eps and variance outputs are not constant.
"""
import torch

from kdm.diffusion.ddpm import create_diffusion
from kdm.diffusion.denoiser import DiscreteDenoiser
from kdm.registry import MODELS, TEACHERS


@TEACHERS.register_module(name='dkdm_random_adm', force=True)
def random_adm_teacher(network: dict, diffusion: dict, seed: int = 0, scale: float = 0.05,
                       path=None) -> DiscreteDenoiser:
    """``path`` is accepted and ignored, so a real config's ``teacher`` can switch to this loader by its type."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MODELS.build(dict(network))
        with torch.no_grad():
            for p in net.parameters():
                p.add_(scale * torch.randn_like(p))
    teacher = DiscreteDenoiser(net, create_diffusion(**diffusion))
    return teacher.eval().requires_grad_(False)
