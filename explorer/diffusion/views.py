"""The views of one reverse step, named once: what the sampler records, the frame grid shows, the figures label
and the comparison converts between.

    name    symbol   meaning                                            display range
    x_t     x_t      the state entering the step                        [−1, 1]
    x0      x̂₀       the prediction as a clean sample                   [−1, 1]
    eps     ε̂        the prediction as the noise in x_t                 [−3, 3]
    v       v̂        the prediction as v = √ᾱ ε − √(1−ᾱ) x₀             [−3, 3]
    u       û        the prediction as the flow velocity u = ε − x₀       [−4, 4]
    mean    μ        the mean of the step p_θ(x_{t−1} | x_t)            [−1, 1]
    noise   z        the noise the step adds: x_{t−1} = μ + σ z         [−3, 3]

x0, eps, v and u are the same prediction in four spaces; one of them is the model's own output (its `Prediction`),
the other three are converted from it with the step's own ᾱ (`explorer.diffusion.parameterization.convert`). u is
rectified flow's velocity on x_σ = (1 − σ) x₀ + σ ε at the σ of equal SNR; its RMS is √(1 + E[x₀²]) ≈ 1.4 on the
bundled data (ε's is 1), so its range is ±4 where ε's is ±3 (each about 3 RMS, 99.7 % of the values of either).
"""

from __future__ import annotations

from dataclasses import dataclass

from explorer.diffusion.parameterization import Prediction


@dataclass(frozen=True)
class StepView:
    """One view of a step: its record field `name`, its `symbol` (a prediction wears a hat: ε̂), the `quantity`
    it estimates (ε, for "ε-prediction" and "the true ε"), and the range [−half_range, half_range] drawn from black
    to white. `prediction` is set for the four prediction spaces."""

    name: str
    symbol: str
    quantity: str
    half_range: float
    prediction: Prediction | None = None

    @property
    def title(self) -> str:
        """The symbol with its display range when that is not [−1, 1], for picture titles."""
        return self.symbol if self.half_range == 1.0 else f"{self.symbol} (±{self.half_range:g})"

    def title_for(self, prediction: str | Prediction) -> str:
        """The title in a run of a model predicting `prediction`: a prediction view says whether it is the model's
        output ("ε̂ (±3) predicted") or converted from it ("x̂₀ from ε̂"); other views keep their `title`."""
        if self.prediction is None:
            return self.title
        own = view_of(prediction)
        return f"{self.title} predicted" if own is self else f"{self.title} from {own.symbol}"


X_T = StepView("x_t", "x_t", "x_t", 1.0)
X0 = StepView("x0", "x̂₀", "x₀", 1.0, Prediction.SAMPLE)
EPS = StepView("eps", "ε̂", "ε", 3.0, Prediction.EPSILON)
V = StepView("v", "v̂", "v", 3.0, Prediction.V_PREDICTION)
U = StepView("u", "û", "u", 4.0, Prediction.FLOW)
MEAN = StepView("mean", "μ", "μ", 1.0)
NOISE = StepView("noise", "noise z", "z", 3.0)

STEP_VIEWS: tuple[StepView, ...] = (X_T, X0, EPS, V, U, MEAN, NOISE)  # the order the frame grid shows them in
PREDICTION_VIEWS: tuple[StepView, ...] = (EPS, X0, V)  # the three VP spaces, in the order ε, x₀, v
FOUR_VIEWS: tuple[StepView, ...] = (*PREDICTION_VIEWS, U)  # and the flow velocity: every prediction view a step has
_BY_PREDICTION = {view.prediction: view for view in FOUR_VIEWS}


def view_of(prediction: str | Prediction) -> StepView:
    """The view that is a model's own output: eps for ε-, x0 for x₀-, v for v-, u for flow prediction."""
    return _BY_PREDICTION[Prediction.parse(prediction)]
