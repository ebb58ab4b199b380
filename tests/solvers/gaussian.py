"""The Gaussian test problem: data ~ N(mu, diag(s^2)) has the ideal denoiser D(x, sigma) = (s^2 x + sigma^2 mu) /
(s^2 + sigma^2) and the probability-flow ODE solution x_b = mu + (x_a - mu) sqrt((s^2 + sigma_b^2) / (s^2 + sigma_a^2)).
Everything is float64 so convergence orders can be measured far below float32 resolution."""
import math

import torch

from kdm.diffusion import schedules


class Gaussian:

    def __init__(self, dim: int = 8, batch: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.linspace(-0.5, 0.5, dim, dtype=torch.float64)
        self.s = torch.linspace(0.3, 1.0, dim, dtype=torch.float64)
        self.z = torch.randn(batch, dim, generator=g, dtype=torch.float64)
        self.calls = 0

    def denoiser(self, x, sigma, cond=None):
        self.calls += 1
        sg = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1)
        return (self.s**2 * x + sg**2 * self.mu) / (self.s**2 + sg**2)

    def exact(self, x_a, sigma_a: float, sigma_b: float):
        return self.mu + (x_a - self.mu) * torch.sqrt((self.s**2 + sigma_b**2) / (self.s**2 + sigma_a**2))

    def error(self, solver, steps: int, schedule: str = 'polynomial', sigma_min: float = 0.002,
              sigma_max: float = 80.0, **knobs) -> float:
        """Max-abs error at sigma_min after ``steps`` steps (no final denoising step)."""
        sig = schedules.get_schedule(schedule)(steps + 1, sigma_min, sigma_max, append_zero=False)
        x_a = self.z * sigma_max
        out = solver(self.denoiser, x_a, sig, **knobs)
        return (out - self.exact(x_a, sigma_max, sigma_min)).abs().max().item()


def measured_order(err_n: float, err_2n: float) -> float:
    return math.log2(err_n / err_2n)
