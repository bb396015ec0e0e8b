"""Reverse-process explorer: the maths, models and samplers behind the app (importable without gradio).

Index convention: arrays are 0-based; index i holds paper step t = i + 1, which is also diffusers'
0-based `timestep`.
"""

from explorer.denoiser import Denoiser, DenoiserOutput
from explorer.parameterization import Prediction, convert
from explorer.posterior import Posterior, VarianceType, q_posterior, q_posterior_sample, q_sample
from explorer.schedules import BetaSchedule, Schedule, TimestepSpacing, inference_timesteps, paper_t, timestep_of

__all__ = [
    "BetaSchedule",
    "Denoiser",
    "DenoiserOutput",
    "Posterior",
    "Prediction",
    "Schedule",
    "TimestepSpacing",
    "VarianceType",
    "convert",
    "inference_timesteps",
    "paper_t",
    "q_posterior",
    "q_posterior_sample",
    "q_sample",
    "timestep_of",
]
