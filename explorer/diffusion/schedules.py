"""Noise schedules: β_t as pure functions, and a frozen `Schedule` of float64 tables.

Notation (Ho et al. 2020, "DDPM", eq. numbers from that paper; Nichol & Dhariwal 2021 for cosine;
Lin et al. 2023 for zero terminal SNR):

    code name                         symbol                        where
    betas[i]                          β_t                           forward variances, eq. 2
    alphas[i]                         α_t = 1 − β_t                 eq. 4
    alphas_cumprod[i]                 ᾱ_t = ∏_{s≤t} α_s             eq. 4
    alphas_cumprod_prev[i]            ᾱ_{t−1}   (ᾱ_0 = 1)
    one_minus_alphas_cumprod[i]       1 − ᾱ_t   (computed as −expm1(Σ log1p(−β)), exact near t = 1)
    sqrt_alphas_cumprod[i]            √ᾱ_t                          mean of q(x_t|x_0), eq. 4
    sqrt_one_minus_alphas_cumprod[i]  √(1 − ᾱ_t)                    std of q(x_t|x_0), eq. 4
    snr[i], log_snr[i]                SNR_t = ᾱ_t/(1 − ᾱ_t), its natural log
    posterior_variance[i]             β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t        eq. 7 (β̃_1 = 0 exactly)
    posterior_log_variance_clipped[i] log β̃_t, with log β̃_1 := log β̃_2 (DDPM's own code does this)
    posterior_mean_coef_x0[i]         √ᾱ_{t−1} β_t / (1 − ᾱ_t)                    eq. 7
    posterior_mean_coef_xt[i]         √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)              eq. 7

Every table is a float64 array of length T indexed by diffusers' 0-based timestep (see
`explorer.diffusion.indexing` for how that relates to the paper's t).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.diffusion.indexing import paper_t
from explorer.validation import Mode

MIN_TIMESTEPS = 2
MAX_TIMESTEPS = 10_000
COSINE_MAX_BETA = 0.999
DEFAULT_BETA_START = 1e-4
DEFAULT_BETA_END = 0.02


class BetaSchedule(Mode, field="schedule name", aliases={"cosine": "squaredcos_cap_v2"}):
    """Named β schedules; values are diffusers' `beta_schedule` strings."""

    LINEAR = "linear"
    SCALED_LINEAR = "scaled_linear"
    SQUAREDCOS_CAP_V2 = "squaredcos_cap_v2"
    SIGMOID = "sigmoid"


class TimestepSpacing(Mode, field="timestep spacing"):
    """How a sampler with fewer steps than T picks its timesteps (diffusers' `timestep_spacing`)."""

    LEADING = "leading"
    TRAILING = "trailing"
    LINSPACE = "linspace"


# --- β schedules as pure functions: (T, parameters) -> float64 [T] ------------------------------


def _check_num_timesteps(num_train_timesteps: Any) -> int:
    is_integer = isinstance(num_train_timesteps, int | np.integer) or (
        isinstance(num_train_timesteps, float) and num_train_timesteps.is_integer()
    )
    if isinstance(num_train_timesteps, bool) or not is_integer:
        raise ValueError(
            f"num_train_timesteps (T) must be an integer in [{MIN_TIMESTEPS}, {MAX_TIMESTEPS}]; "
            f"got {num_train_timesteps!r}"
        )
    count = int(num_train_timesteps)
    if not MIN_TIMESTEPS <= count <= MAX_TIMESTEPS:
        raise ValueError(
            f"num_train_timesteps (T) must be an integer in [{MIN_TIMESTEPS}, {MAX_TIMESTEPS}]; got {count}"
        )
    return count


def _check_beta_range(beta_start: float, beta_end: float) -> None:
    for label, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not (isinstance(value, int | float | np.floating) and math.isfinite(value) and 0 < value < 1):
            raise ValueError(f"{label} must be a finite number in (0, 1); got {value!r}")
    if beta_start > beta_end:
        raise ValueError(f"beta_start must not exceed beta_end; got beta_start={beta_start}, beta_end={beta_end}")


def linear_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """β_t evenly spaced from β_start to β_end (DDPM). Returns float64 [T]."""
    return np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float64)


def scaled_linear_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """√β_t evenly spaced from √β_start to √β_end (latent diffusion). Returns float64 [T]."""
    return np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), num_train_timesteps, dtype=np.float64) ** 2


def sigmoid_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """β_t = β_start + (β_end − β_start)·sigmoid(u), u evenly spaced on [−6, 6] (GeoDiff). float64 [T]."""
    u = np.linspace(-6.0, 6.0, num_train_timesteps, dtype=np.float64)
    return beta_start + (beta_end - beta_start) / (1.0 + np.exp(-u))


def cosine_betas(num_train_timesteps: int, offset: float = 0.008, max_beta: float = COSINE_MAX_BETA) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: ᾱ(s) = cos²((s + offset)/(1 + offset) · π/2), s = t/T.

    β_t = min(1 − ᾱ(t/T)/ᾱ((t−1)/T), max_beta); the cap keeps β_T (which would be 1) at 0.999.
    Returns float64 [T].
    """
    if not (math.isfinite(offset) and 0 <= offset <= 1):
        raise ValueError(f"cosine offset must be a finite number in [0, 1]; got {offset!r}")
    s = np.arange(num_train_timesteps + 1, dtype=np.float64) / num_train_timesteps
    alpha_bar = np.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def rescaled_to_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Shift and scale √ᾱ_t so that ᾱ_T = 0 while ᾱ_1 is kept (Lin et al. 2023, Algorithm 1).

    √ᾱ'_t = (√ᾱ_t − √ᾱ_T) · √ᾱ_1 / (√ᾱ_1 − √ᾱ_T), evaluated in log space: with r_t = √(ᾱ_T/ᾱ_t),
    log √ᾱ'_t = log √ᾱ_t + log(1 − r_t) − log(1 − r_1), so ᾱ_t that underflow float64 (a β_end near 1) still
    give finite β' (diffusers' float32 version cancels near t = T, a float64 ratio of ᾱ gives 0/0 there).
    The last β becomes exactly 1. Returns float64 [T].
    """
    betas = _check_betas(betas)
    with np.errstate(divide="ignore"):
        log_sqrt = 0.5 * np.cumsum(np.log1p(-betas))  # log √ᾱ_t, finite unless β_T = 1 already
    log_ratio = log_sqrt[-1] - log_sqrt[:-1]  # log r_t for t < T; −inf when ᾱ_T is already 0
    with np.errstate(divide="ignore", invalid="ignore"):  # r_t rounding to 1 is refused below
        log_rescaled = log_sqrt[:-1] + np.log1p(-np.exp(log_ratio)) - np.log1p(-np.exp(log_ratio[0]))  # log √ᾱ'_t
        log_alphas = 2.0 * np.diff(log_rescaled, prepend=0.0)  # log α'_t = log ᾱ'_t − log ᾱ'_{t−1}, ᾱ'_0 = 1
    rescaled = np.append(-np.expm1(log_alphas), 1.0)  # exactly: ᾱ_T = 0
    inner = rescaled[:-1]
    if not (np.all(np.isfinite(inner)) and np.all(inner > 0) and np.all(inner < 1)):
        raise ValueError(
            "rescale_zero_terminal_snr: these betas cannot be rescaled to zero terminal SNR in float64 "
            "(ᾱ_T is too close to ᾱ_{T−1}, so some rescaled β would round to 0 or 1); use a larger β near t = T"
        )
    return rescaled


def inference_timesteps(
    num_train_timesteps: int,
    num_inference_steps: int,
    spacing: str | TimestepSpacing = TimestepSpacing.LEADING,
    steps_offset: int = 0,
) -> np.ndarray:
    """The 0-based timesteps a sampler with `num_inference_steps` steps visits, in visiting (descending) order.

    Always exactly `num_inference_steps` distinct steps in [0, T − 1]. Returns int64 [num_inference_steps].

    The grids are diffusers' `set_timesteps` (DDPMScheduler, DDIMScheduler) with two deliberate differences,
    measured in tests/test_schedules.py (diffusers 0.42, T = 1000):

    - trailing: the step k·T/n is computed exactly and rounded half to even, then shifted by −1. diffusers rounds
      a float `arange(T, 0, −T/n)`, whose accumulated error (a) lands just below a half-integer, so it rounds the
      other way (49 of the 1000 step counts, one step off by 1), and (b) can pass 0 and add an (n + 1)-th
      timestep of −1 (62 step counts, e.g. n = 61). 111 step counts differ; every other one matches exactly.
    - the step after t_k: a sampler here lands on the next timestep of this grid (the last step on the data, −1).
      diffusers' DDIMScheduler.step lands on t_k − T // n, which for linspace is not the next step of its own
      grid (e.g. n = 7: 999 → 857 while the grid goes on to 832; diffusers issue #12633).
    """
    total = _check_num_timesteps(num_train_timesteps)
    spacing = TimestepSpacing.parse(spacing)
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int | np.integer):
        raise ValueError(f"num_inference_steps must be an integer in [1, {total}]; got {num_inference_steps!r}")
    if not 1 <= num_inference_steps <= total:
        raise ValueError(f"num_inference_steps must be an integer in [1, {total}]; got {num_inference_steps}")
    if spacing is TimestepSpacing.LINSPACE:
        steps = np.linspace(0, total - 1, num_inference_steps).round()[::-1]
    elif spacing is TimestepSpacing.LEADING:
        steps = (np.arange(num_inference_steps) * (total // num_inference_steps)).round()[::-1] + steps_offset
    else:  # diffusers: np.round(np.arange(T, 0, -T / n)) − 1, in integers so float rounding adds no step
        steps = np.round(np.arange(num_inference_steps, 0, -1) * total / num_inference_steps) - 1
    steps = steps.astype(np.int64)
    if steps.min() < 0 or steps.max() > total - 1:
        raise ValueError(f"steps_offset={steps_offset} moves timesteps outside [0, {total - 1}]")
    return steps


# --- scheduler configs as diffusers reads them ------------------------------------------------

EARLY_CLASS_NAMES = {"GaussianDDPMScheduler": "DDPMScheduler"}  # diffusers 0.0.x names → today's class
RENAMED_KEYS = {"timesteps": "num_train_timesteps", "clip_predicted_image": "clip_sample"}  # 0.0.x key → today's


def current_scheduler_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A scheduler config in today's diffusers form: early-format configs still sitting in Hub repos are read.

    - `_class_name` GaussianDDPMScheduler (diffusers 0.0.x) is today's DDPMScheduler.
    - `timesteps` is the 0.0.x name of `num_train_timesteps` and `clip_predicted_image` of `clip_sample`; an old
      key moves to the new name unless the new key is also present (then the new one wins). diffusers 0.42 itself
      drops the old keys with a warning and uses its defaults (T = 1000, clip_sample = True), which equal the
      values every such config on the Hub holds; here a config that says T = 500 means T = 500.
    - `trained_betas` without `num_train_timesteps` gives T = len(trained_betas), as diffusers builds its tables.
    Unknown keys are kept (diffusers ignores them). Returns a new dict; the argument is not changed.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"a scheduler config must be a mapping (scheduler_config.json); got {type(config).__name__}")
    current = dict(config)
    name = current.get("_class_name")
    if isinstance(name, str) and name in EARLY_CLASS_NAMES:
        current["_class_name"] = EARLY_CLASS_NAMES[name]
    for old, new in RENAMED_KEYS.items():
        if old in current:
            value = current.pop(old)
            current.setdefault(new, value)
    trained = current.get("trained_betas")
    if trained is not None and "num_train_timesteps" not in current:
        current["num_train_timesteps"] = len(trained)
    return current


FLOW_SCHEDULERS = frozenset({"FlowMatchEulerDiscreteScheduler"})


def flow_alphas_cumprod(sigmas: np.ndarray) -> np.ndarray:
    """ᾱ(σ) = (1 − σ)² / ((1 − σ)² + σ²): the VP noise level of equal SNR to the flow point x_σ, float64."""
    return (1.0 - sigmas) ** 2 / ((1.0 - sigmas) ** 2 + sigmas**2)


# --- the Schedule ------------------------------------------------------------------------------


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.float64)
    array.setflags(write=False)
    return array


def _check_betas(betas: Any, minimum: int = MIN_TIMESTEPS) -> np.ndarray:
    array = np.asarray(betas, dtype=np.float64) if not isinstance(betas, np.ndarray) else betas.astype(np.float64)
    if array.ndim != 1:
        raise ValueError(f"betas must be a 1-D array of length T; got shape {array.shape}")
    if array.size == 0:
        raise ValueError("betas must not be empty: give T ≥ 2 values in (0, 1)")
    if not minimum <= array.size <= MAX_TIMESTEPS:
        raise ValueError(f"betas must hold T values, T in [{MIN_TIMESTEPS}, {MAX_TIMESTEPS}]; got {array.size}")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"betas must be finite; betas[{bad}] (t = {paper_t(bad)}) is {array[bad]}")
    inner, last = array[:-1], array[-1]
    if np.any(inner <= 0) or np.any(inner >= 1) or not 0 < last <= 1:
        bad = int(np.flatnonzero((array <= 0) | (array > 1) | np.r_[inner >= 1, False])[0])
        raise ValueError(
            f"every beta must lie in (0, 1) (only the last may be exactly 1, for zero terminal SNR); "
            f"betas[{bad}] (t = {paper_t(bad)}) is {array[bad]}"
        )
    return array


@dataclass(frozen=True, eq=False)
class Schedule:
    """A noise schedule and every table derived from it: float64 arrays of length T, indexed by timestep.

    `timesteps[i]` is the 0-based training timestep that index i stands for: `arange(T)` for a training
    schedule, the kept subset (ascending) for one made by `respace`.
    """

    betas: np.ndarray
    name: str = "custom"
    timesteps: np.ndarray = field(default=None)  # type: ignore[assignment]
    alphas: np.ndarray = field(init=False)
    alphas_cumprod: np.ndarray = field(init=False)
    alphas_cumprod_prev: np.ndarray = field(init=False)
    one_minus_alphas_cumprod: np.ndarray = field(init=False)
    sqrt_alphas_cumprod: np.ndarray = field(init=False)
    sqrt_one_minus_alphas_cumprod: np.ndarray = field(init=False)
    snr: np.ndarray = field(init=False)
    log_snr: np.ndarray = field(init=False)
    posterior_variance: np.ndarray = field(init=False)
    posterior_log_variance_clipped: np.ndarray = field(init=False)
    posterior_mean_coef_x0: np.ndarray = field(init=False)
    posterior_mean_coef_xt: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # A respaced schedule (explicit `timesteps`) may keep a single step: a one-step sampler.
        betas = _check_betas(self.betas, minimum=1 if self.timesteps is not None else MIN_TIMESTEPS)
        count = betas.size
        steps = np.arange(count) if self.timesteps is None else np.asarray(self.timesteps, dtype=np.int64)
        if steps.shape != (count,):
            raise ValueError(f"timesteps must have one entry per beta ({count}); got shape {steps.shape}")

        # Forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I). Sums of logs keep 1 − ᾱ_t exact near t = 1.
        with np.errstate(divide="ignore"):
            log_alphas_cumprod = np.cumsum(np.log1p(-betas))  # −inf from where β = 1
        alphas_cumprod = np.exp(log_alphas_cumprod)
        one_minus = -np.expm1(log_alphas_cumprod)
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
        one_minus_prev = np.concatenate([[0.0], one_minus[:-1]])

        with np.errstate(divide="ignore"):
            snr = alphas_cumprod / one_minus
            log_snr = log_alphas_cumprod - np.log(one_minus)

        # Posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I), eq. 6–7. β̃_1 = 0 exactly, because ᾱ_0 = 1.
        posterior_variance = one_minus_prev / one_minus * betas
        # log β̃_1 = −inf, so clip it to log β̃_2 as the original DDPM code does (T ≥ 2 guarantees index 1).
        first = posterior_variance[1:2] if count > 1 else betas[:1]
        posterior_log_variance_clipped = np.log(np.concatenate([first, posterior_variance[1:]]))

        tables = {
            "betas": betas,
            "timesteps": steps,
            "alphas": 1.0 - betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "one_minus_alphas_cumprod": one_minus,
            "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(one_minus),
            "snr": snr,
            "log_snr": log_snr,
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": posterior_log_variance_clipped,
            "posterior_mean_coef_x0": np.sqrt(alphas_cumprod_prev) * betas / one_minus,
            "posterior_mean_coef_xt": np.sqrt(1.0 - betas) * one_minus_prev / one_minus,
        }
        for key, value in tables.items():
            object.__setattr__(self, key, value.astype(np.int64) if key == "timesteps" else _readonly(value))
        self.timesteps.setflags(write=False)

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def from_name(
        cls,
        name: str | BetaSchedule,
        num_train_timesteps: int = 1000,
        *,
        beta_start: float | None = None,
        beta_end: float | None = None,
        rescale_zero_terminal_snr: bool = False,
        cosine_offset: float = 0.008,
    ) -> Schedule:
        """A named schedule with diffusers' names and defaults (β from 1e-4 to 0.02).

        `beta_start`/`beta_end` apply to linear, scaled_linear and sigmoid; `cosine_offset` (s) to the
        cosine schedule, whose β is capped at 0.999.
        """
        kind = BetaSchedule.parse(name)
        count = _check_num_timesteps(num_train_timesteps)
        start = DEFAULT_BETA_START if beta_start is None else beta_start
        end = DEFAULT_BETA_END if beta_end is None else beta_end
        if kind is BetaSchedule.SQUAREDCOS_CAP_V2:
            betas = cosine_betas(count, offset=cosine_offset)
        else:
            _check_beta_range(start, end)
            maker = {
                BetaSchedule.LINEAR: linear_betas,
                BetaSchedule.SCALED_LINEAR: scaled_linear_betas,
                BetaSchedule.SIGMOID: sigmoid_betas,
            }[kind]
            betas = maker(count, start, end)
        label = kind.value
        if rescale_zero_terminal_snr:
            betas = rescaled_to_zero_terminal_snr(betas)
            label += " (zero terminal SNR)"
        return cls(betas=betas, name=label)

    @classmethod
    def from_betas(cls, betas: Sequence[float] | np.ndarray, name: str = "custom") -> Schedule:
        """A schedule from explicit β_1..β_T (each in (0, 1); only the last may be exactly 1)."""
        return cls(betas=_check_betas(betas), name=name)

    @classmethod
    def from_flow_sigmas(cls, sigmas: Sequence[float] | np.ndarray, name: str = "flow") -> Schedule:
        """The variance-preserving schedule of equal SNR to a flow-matching σ grid (ascending, in (0, 1]).

        x_σ = (1 − σ) x₀ + σ ε has SNR (1 − σ)²/σ², so index i gets ᾱ_i = (1 − σ_i)² / ((1 − σ_i)² + σ_i²) and
        β_i = 1 − ᾱ_i/ᾱ_{i−1} (ᾱ_{−1} = 1); σ = 1 gives ᾱ = 0 and β = 1, zero terminal SNR.
        """
        grid = np.asarray(sigmas, dtype=np.float64)
        if grid.ndim != 1 or grid.size < MIN_TIMESTEPS or not np.all(np.isfinite(grid)):
            raise ValueError(f"flow sigmas must be a 1-D array of at least {MIN_TIMESTEPS} finite values")
        if np.any(grid <= 0) or np.any(grid > 1) or np.any(np.diff(grid) <= 0):
            raise ValueError("flow sigmas must increase strictly within (0, 1]")
        alphas_cumprod = flow_alphas_cumprod(grid)
        previous = np.r_[1.0, alphas_cumprod[:-1]]
        return cls(betas=_check_betas(1.0 - alphas_cumprod / previous), name=name)

    @classmethod
    def from_diffusers_config(cls, config: Mapping[str, Any]) -> Schedule:
        """The training schedule described by a diffusers scheduler config (`scheduler_config.json`), early formats
        included (see `current_scheduler_config`). A FlowMatchEulerDiscreteScheduler config gives the VP schedule of
        equal SNR to its training σ grid (i + 1)/T, shifted by `shift` unless the shift is dynamic."""
        config = current_scheduler_config(config)
        count = config.get("num_train_timesteps", 1000)
        if config.get("_class_name") in FLOW_SCHEDULERS:
            sigmas = np.arange(1, _check_num_timesteps(count) + 1, dtype=np.float64) / count
            shift = float(config.get("shift", 1.0))
            dynamic = bool(config.get("use_dynamic_shifting", False))
            if not dynamic and shift != 1.0:
                sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
            return cls.from_flow_sigmas(
                sigmas, name="flow" + ("" if dynamic or shift == 1.0 else f" (shift {shift:g})")
            )
        rescale = bool(config.get("rescale_betas_zero_snr", False))
        trained = config.get("trained_betas")
        if trained is not None:
            schedule = cls.from_betas(trained, name="trained_betas")
            if schedule.num_train_timesteps != count:
                raise ValueError(
                    f"trained_betas has {schedule.num_train_timesteps} values but num_train_timesteps is {count}"
                )
            if rescale:
                schedule = cls(betas=rescaled_to_zero_terminal_snr(schedule.betas), name="trained_betas")
            return schedule
        return cls.from_name(
            config.get("beta_schedule", "linear"),
            count,
            beta_start=config.get("beta_start", DEFAULT_BETA_START),
            beta_end=config.get("beta_end", DEFAULT_BETA_END),
            rescale_zero_terminal_snr=rescale,
        )

    # -- views ----------------------------------------------------------------------------------

    @property
    def num_train_timesteps(self) -> int:
        """T, the number of steps (length of every table)."""
        return int(self.betas.size)

    @property
    def terminal_snr_is_zero(self) -> bool:
        """True when the schedule is zero terminal SNR by construction: β_T = 1 exactly (rescaled, or given so),
        so ᾱ_T = 0, log SNR_T = −∞ and x̂₀ from ε̂ is undefined at t = T."""
        return bool(self.betas[-1] == 1.0)

    @property
    def terminal_snr_underflows(self) -> bool:
        """True when ᾱ_T is not 0 (β_T < 1, log SNR_T finite from the sums of logs) but underflows float64 to 0:
        SNR_T is below float64's range (e.g. linear β up to 0.999 at T = 1000, log SNR_T ≈ −995.7). Not zero
        terminal SNR, though x̂₀ from ε̂ cannot be computed in float64 there either."""
        return bool(self.alphas_cumprod[-1] == 0.0 and not self.terminal_snr_is_zero)

    def nearest_timestep(self, alpha_cumprod: float) -> int:
        """The 0-based timestep whose ᾱ is nearest `alpha_cumprod` in log space: where another schedule's noise
        level falls on this one (ᾱ = 0 maps to the last step)."""
        target = math.log(max(float(alpha_cumprod), 1e-300))
        own = np.log(np.maximum(self.alphas_cumprod, 1e-300))
        return int(np.argmin(np.abs(own - target)))

    def respace(self, timesteps: Sequence[int] | np.ndarray) -> Schedule:
        """The schedule that jumps between the kept 0-based `timesteps` (any order; sorted here).

        β of each kept step is re-derived from the kept ᾱ values, β'_j = 1 − ᾱ_{k_j}/ᾱ_{k_{j−1}}
        (ᾱ before the first kept step is 1), so the new schedule reproduces ᾱ at every kept step.
        """
        kept = np.unique(np.asarray(timesteps, dtype=np.int64))
        if kept.size < 1:
            raise ValueError("respace needs at least one timestep")
        if kept[0] < 0 or kept[-1] >= self.num_train_timesteps:
            raise ValueError(f"respaced timesteps must lie in [0, {self.num_train_timesteps - 1}]")
        alpha_bar = self.alphas_cumprod[kept]
        previous = np.concatenate([[1.0], alpha_bar[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            betas = np.where(alpha_bar == 0.0, 1.0, 1.0 - alpha_bar / previous)
        return Schedule(betas=betas, name=f"{self.name}, respaced to {kept.size}", timesteps=self.timesteps[kept])
