"""Reverse-process explorer: the maths, models and samplers behind the app (importable without gradio).

Index convention: arrays are 0-based; index i holds paper step t = i + 1, which is also diffusers'
0-based `timestep`. `paper_t` and `timestep_of` are the only conversions.
"""

from explorer.diffusion.denoiser import Denoiser, DenoiserOutput
from explorer.diffusion.oracle import OptimalDenoiser, ReverseMixture, mixture_density, true_reverse
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.posterior import Posterior, VarianceType, q_posterior, q_posterior_sample, q_sample
from explorer.diffusion.sampler import SamplerKind, SamplerSettings, Step, Trajectory, branch, iterate, sample
from explorer.diffusion.schedules import (
    BetaSchedule,
    Schedule,
    TimestepSpacing,
    inference_timesteps,
    paper_t,
    timestep_of,
)
from explorer.diffusion.teacher import ModelForcing, TeacherForcing, teacher_force
from explorer.diffusion.trajectory import CompactTrajectory
from explorer.models.catalogue import CatalogueEntry, catalogue
from explorer.models.checkpoint import CheckpointError, CheckpointProblem, ModuleDenoiser
from explorer.models.device import pick_device
from explorer.models.loader import clear_cache, load

__all__ = [
    "BetaSchedule",
    "CatalogueEntry",
    "CheckpointError",
    "CheckpointProblem",
    "CompactTrajectory",
    "Denoiser",
    "DenoiserOutput",
    "ModelForcing",
    "ModuleDenoiser",
    "OptimalDenoiser",
    "Posterior",
    "Prediction",
    "ReverseMixture",
    "SamplerKind",
    "SamplerSettings",
    "Schedule",
    "Step",
    "TeacherForcing",
    "TimestepSpacing",
    "Trajectory",
    "VarianceType",
    "branch",
    "catalogue",
    "clear_cache",
    "convert",
    "inference_timesteps",
    "iterate",
    "load",
    "mixture_density",
    "paper_t",
    "pick_device",
    "q_posterior",
    "q_posterior_sample",
    "q_sample",
    "sample",
    "teacher_force",
    "timestep_of",
    "true_reverse",
]
