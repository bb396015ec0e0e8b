"""Reverse-process explorer: the maths, models and samplers behind the app (importable without gradio).

    explorer.diffusion   schedules, the forward posterior, ε/x₀/v conversions, the sampler and its records,
                         teacher forcing, the exact oracle, seeded noise, the index convention, the step views,
                         the variational bound in bits per dimension (`vlb`)
    explorer.models      checkpoints (pixel, and latent or conditional pipelines), references, Hub downloads,
                         loading, decoders of latent frames, the catalogue, the model cache
    explorer.figures     Plotly figures, formulas and pictures from explorer data
    explorer.data        the small data sets of the bundled models
    explorer.validation  the one parser for values that arrive from outside

The index convention (paper t, diffusers' timestep, frames) is stated and converted in one place:
`explorer.diffusion.indexing`.
"""

from explorer.diffusion.bound import Bound, Likelihood, bounds, vlb
from explorer.diffusion.conditioning import Conditioning
from explorer.diffusion.denoiser import Denoiser, DenoiserOutput, FunctionDenoiser, as_denoiser, wrap
from explorer.diffusion.indexing import frame_of, paper_t, position_of, timestep_of
from explorer.diffusion.oracle import OptimalDenoiser, ReverseMixture, mixture_density, true_reverse
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.posterior import Posterior, VarianceType, q_posterior, q_posterior_sample, q_sample
from explorer.diffusion.sampler import branch, iterate, sample
from explorer.diffusion.schedules import BetaSchedule, Schedule, TimestepSpacing, inference_timesteps
from explorer.diffusion.settings import SamplerKind, SamplerSettings, resolve_settings
from explorer.diffusion.teacher import ModelForcing, TeacherForcing, teacher_force
from explorer.diffusion.trajectory import CompactRecorder, CompactTrajectory, Step, Trajectory
from explorer.diffusion.views import STEP_VIEWS, StepView
from explorer.models.catalogue import CatalogueEntry, catalogue
from explorer.models.checkpoint import CheckpointError, CheckpointProblem, ModuleDenoiser
from explorer.models.decoders import Decoder
from explorer.models.device import pick_device
from explorer.models.latent import LatentDenoiser
from explorer.models.loader import clear_cache, load
from explorer.models.pipelines import Family

__all__ = [
    "STEP_VIEWS",
    "BetaSchedule",
    "Bound",
    "CatalogueEntry",
    "CheckpointError",
    "CheckpointProblem",
    "CompactRecorder",
    "CompactTrajectory",
    "Conditioning",
    "Decoder",
    "Denoiser",
    "DenoiserOutput",
    "Family",
    "FunctionDenoiser",
    "LatentDenoiser",
    "Likelihood",
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
    "StepView",
    "TeacherForcing",
    "TimestepSpacing",
    "Trajectory",
    "VarianceType",
    "as_denoiser",
    "bounds",
    "branch",
    "catalogue",
    "clear_cache",
    "convert",
    "frame_of",
    "inference_timesteps",
    "iterate",
    "load",
    "mixture_density",
    "paper_t",
    "pick_device",
    "position_of",
    "q_posterior",
    "q_posterior_sample",
    "q_sample",
    "resolve_settings",
    "sample",
    "teacher_force",
    "timestep_of",
    "true_reverse",
    "vlb",
    "wrap",
]
