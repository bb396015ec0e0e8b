"""The views of one reverse step, named once: what the sampler records, the frame grid shows, the figures label
and the comparison converts between.

    name    symbol   meaning                                            display range
    x_t     x_t      the state entering the step                        [−1, 1]
    x0      x̂₀       the prediction as a clean sample                   [−1, 1]
    eps     ε̂        the prediction as the noise in x_t                 [−3, 3]
    v       v̂        the prediction as v = √ᾱ ε − √(1−ᾱ) x₀             [−3, 3]
    mean    μ        the mean of the step p_θ(x_{t−1} | x_t)            [−1, 1]
    noise   z        the noise the step adds: x_{t−1} = μ + σ z         [−3, 3]

x0, eps and v are the same prediction in three spaces; one of them is the model's own output (its `Prediction`).
"""

from __future__ import annotations

from dataclasses import dataclass

from explorer.diffusion.parameterization import Prediction


@dataclass(frozen=True)
class StepView:
    """One view of a step: its record field `name`, its `symbol` (a prediction wears a hat: ε̂), the `quantity`
    it estimates (ε, for "ε-prediction" and "the true ε"), and the range [−half_range, half_range] drawn from black
    to white. `prediction` is set for the three prediction spaces."""

    name: str
    symbol: str
    quantity: str
    half_range: float
    prediction: Prediction | None = None

    @property
    def title(self) -> str:
        """The symbol with its display range when that is not [−1, 1], for picture titles."""
        return self.symbol if self.half_range == 1.0 else f"{self.symbol} (±{self.half_range:g})"


X_T = StepView("x_t", "x_t", "x_t", 1.0)
X0 = StepView("x0", "x̂₀", "x₀", 1.0, Prediction.SAMPLE)
EPS = StepView("eps", "ε̂", "ε", 3.0, Prediction.EPSILON)
V = StepView("v", "v̂", "v", 3.0, Prediction.V_PREDICTION)
MEAN = StepView("mean", "μ", "μ", 1.0)
NOISE = StepView("noise", "noise z", "z", 3.0)

STEP_VIEWS: tuple[StepView, ...] = (X_T, X0, EPS, V, MEAN, NOISE)  # the order the frame grid shows them in
PREDICTION_VIEWS: tuple[StepView, ...] = (EPS, X0, V)  # the three spaces, in the order ε, x₀, v
_BY_PREDICTION = {view.prediction: view for view in PREDICTION_VIEWS}


def view_of(prediction: str | Prediction) -> StepView:
    """The view that is a model's own output: eps for ε-, x0 for x₀-, v for v-prediction."""
    return _BY_PREDICTION[Prediction.parse(prediction)]
