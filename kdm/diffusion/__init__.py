# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Diffusion and flow mathematics: no nn.Module training logic lives here.

Importing this package registers the EDM preconditioners (MODELS), the EDM losses (LOSSES) and the step schedules
(SCHEDULES).
"""
from . import ddpm, flow  # noqa: F401
from .ddpm import GaussianDiffusion, create_diffusion, get_betas, normal_kl, space_timesteps  # noqa: F401
from .denoiser import (Denoiser, DiscreteDenoiser, EpsView, FlowDenoiser, VelocityView, VView, as_eps_model,  # noqa
                       as_v_model, as_velocity, one_hot)
from .edm import EDMLoss, EDMPrecond, VELoss, VEPrecond, VPLoss, VPPrecond, iDDPMPrecond  # noqa: F401
from .flow import rectified_flow_loss  # noqa: F401
from . import schedules  # noqa: F401,E402
