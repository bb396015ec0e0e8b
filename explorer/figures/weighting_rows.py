"""The chapter's parameterization table, one row per target, each with a sentence computed from the measured curves.

Nothing here is typed as a result: every t, ratio and size in a sentence is read off a `MeasuredTable`. "Which end
of t is hard" compares a model's own-space MSE relative to its target's mean square at the lowest and the highest
t measured (a factor `HARD_FACTOR` apart or more names one end, else both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.diffusion.indexing import paper_t
from explorer.diffusion.measured_table import MeasuredTable, crossings
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.weighting import implied_weight

HARD_FACTOR = 3.0
TARGET_SIZE = {
    Prediction.EPSILON: "1",
    Prediction.SAMPLE: "√m2 (the data's RMS)",
    Prediction.V_PREDICTION: "√(ᾱ + (1−ᾱ) m2)",
    Prediction.FLOW: "√(1 + m2)",
}
WEIGHT = {
    Prediction.EPSILON: "SNR",
    Prediction.SAMPLE: "1",
    Prediction.V_PREDICTION: "1 + SNR",
    Prediction.FLOW: "(1 + √SNR)²",
}
BOTH_ENDS = (Prediction.V_PREDICTION, Prediction.FLOW)  # compared with ε at the lowest t and x₀ at the highest
ROW_NAMES = {
    Prediction.EPSILON: "ε-prediction",
    Prediction.SAMPLE: "x₀-prediction",
    Prediction.V_PREDICTION: "v-prediction",
    Prediction.FLOW: "flow velocity u",
}


@dataclass(frozen=True)
class TableRow:
    """One row: the parameterization, its target's size and implied weight (closed forms), and what was measured."""

    name: str
    target_size: str
    weight: str
    measured: str


def _g(value: float) -> str:
    return f"{value:.3g}"


def _range(values: np.ndarray) -> str:
    low, high = _g(np.nanmin(values)), _g(np.nanmax(values))
    return low if low == high else f"{low}–{high}"


def _t(table: MeasuredTable) -> np.ndarray:
    return paper_t(table.timesteps).astype(np.float64)


def _size_clause(table: MeasuredTable, target: Prediction) -> str:
    rms, closed = table.rms[target], table.closed_rms[target]
    gap, error = np.abs(rms - closed).max(), (2 * table.samples) ** -0.5
    return (
        f"RMS measured {_range(rms)} (closed form {_range(closed)}; largest gap {_g(gap)} on "
        f"{table.samples} values per t, where one standard error of an RMS near 1 is ≈ {_g(error)})"
    )


def hard_end(table: MeasuredTable, name: str) -> str:
    """'low t', 'high t' or 'both ends': where the model's own-space MSE ÷ target mean square is larger."""
    model = table.model(name)
    relative = model.own() / table.rms[model.target] ** 2
    low, high = relative[0], relative[-1]
    if low >= HARD_FACTOR * high:
        return "low t"
    if high >= HARD_FACTOR * low:
        return "high t"
    return "both ends"


def _own_clause(table: MeasuredTable, name: str) -> str:
    model = table.model(name)
    t = _t(table)
    relative = model.own() / table.rms[model.target] ** 2
    end = hard_end(table, name)
    return (
        f"{name}'s own MSE ÷ target mean square is {_g(relative[0])} at t = {t[0]:.0f} and {_g(relative[-1])} at "
        f"t = {t[-1]:.0f} (largest {_g(np.nanmax(relative))} at t = {t[np.nanargmax(relative)]:.0f}): "
        + ("neither end is easy" if end == "both ends" else f"the {end.replace(' ', '-')} end is hard")
    )


def _versus_clause(table: MeasuredTable, name: str, other: str) -> str:
    """Where `name` beats `other` in x₀ space: the two ends, and where the measured curves cross."""
    t = _t(table)
    mine, theirs = table.model(name).errors[Prediction.SAMPLE], table.model(other).errors[Prediction.SAMPLE]
    ratio = mine / theirs
    where = crossings(t, mine, theirs)
    text = f"in x₀ space its MSE is {_g(ratio[0])}× {other}'s at t = {t[0]:.0f} and {_g(ratio[-1])}× at t = {t[-1]:.0f}"
    if not where:
        return text + ", and the curves never cross"
    if len(where) <= 2:
        return text + "; the curves cross at t ≈ " + " and ".join(f"{x:.0f}" for x in where)
    inside = (t >= where[0]) & (t <= where[-1])
    spread = np.abs(np.log(ratio[inside])).max()
    return text + (
        f"; they first cross at t ≈ {where[0]:.0f} and last at t ≈ {where[-1]:.0f} ({len(where)} crossings), within "
        f"{_g(100 * np.expm1(spread))} % of each other in between"
    )


def _both_ends_clause(table: MeasuredTable, name: str, low_model: str, high_model: str) -> str:
    """v (or u) against ε at the lowest t and against x₀ at the highest t, in x₀ space."""
    t, mine = _t(table), table.model(name).errors[Prediction.SAMPLE]
    low = mine[0] / table.model(low_model).errors[Prediction.SAMPLE][0]
    high = mine[-1] / table.model(high_model).errors[Prediction.SAMPLE][-1]
    return (
        f"in x₀ space its MSE is {_g(low)}× {low_model}'s at t = {t[0]:.0f} and {_g(high)}× {high_model}'s at "
        f"t = {t[-1]:.0f}"
    )


def _weight_clause(table: MeasuredTable, target: Prediction) -> str:
    t, weight = _t(table), implied_weight(target, table.snr)
    if np.ptp(weight) == 0:
        return f"weight on ‖x₀ − x̂₀‖² {_g(weight[0])} at every t"
    return f"weight on ‖x₀ − x̂₀‖² from {_g(weight[0])} at t = {t[0]:.0f} to {_g(weight[-1])} at t = {t[-1]:.0f}"


def _flow_against_v_clause(table: MeasuredTable, name: str, v_name: str) -> str:
    """The flow weight (1 + √SNR)² over v's 1 + SNR (between 1 and 2), and the measured x₀-MSE ratio of the two."""
    t = _t(table)
    weight = implied_weight(Prediction.FLOW, table.snr) / implied_weight(Prediction.V_PREDICTION, table.snr)
    peak = int(np.nanargmax(weight))
    ratio = table.model(name).errors[Prediction.SAMPLE] / table.model(v_name).errors[Prediction.SAMPLE]
    mean = float(np.exp(np.nanmean(np.log(ratio))))
    return (
        f"its weight on ‖x₀ − x̂₀‖² is {_g(weight[0])}× v's at t = {t[0]:.0f} and {_g(weight[-1])}× at "
        f"t = {t[-1]:.0f} (largest, {_g(weight[peak])}×, at t = {t[peak]:.0f}, where SNR = {_g(table.snr[peak])}): "
        f"measured, its x₀ MSE is {_g(mean)}× {v_name}'s (geometric mean over the t measured)"
    )


def _lowest_u_clause(table: MeasuredTable, networks: dict[Prediction, str]) -> str:
    """Which network has the lowest geometric-mean MSE in u space (the others converted: û = ε̂ − x̂₀)."""
    errors = {m.name: float(np.exp(np.nanmean(np.log(m.errors[Prediction.FLOW])))) for m in table.models}
    trained = {n: e for n, e in errors.items() if n in networks.values()} or errors
    best = min(trained, key=trained.get)
    flow = networks.get(Prediction.FLOW)
    head = (
        f"{flow} predicts u, the others are converted (û = ε̂ − x̂₀)"
        if flow
        else "no model here predicts u; converted (û = ε̂ − x̂₀)"
    )
    return (
        f"{head}: the lowest geometric-mean u-MSE of the networks is {best}'s ({_g(errors[best])}; the least of "
        f"every model measured: {_g(min(errors.values()))})"
    )


def min_snr_sentence(table: MeasuredTable, uniform: str, weighted: str, gamma: float) -> str:
    """How the min-SNR-γ ε model's x₀ error compares with the uniform one's, split where SNR = γ."""
    t = _t(table)
    ratio = table.model(weighted).errors[Prediction.SAMPLE] / table.model(uniform).errors[Prediction.SAMPLE]
    above = table.snr > gamma  # low t: min-SNR weighs these steps γ/SNR < 1 times plain ε-MSE
    parts = []
    for mask, where in ((above, f"SNR > {gamma:g}"), (~above, f"SNR ≤ {gamma:g}")):
        if mask.any():
            mean = float(np.exp(np.log(ratio[mask]).mean()))
            parts.append(f"{_g(mean)}× on the {mask.sum()} t with {where} (t {t[mask].min():.0f}–{t[mask].max():.0f})")
    return (
        f"{weighted}'s x₀ MSE ÷ {uniform}'s, geometric mean: " + ", ".join(parts) + f"; {_g(ratio[-1])}× at "
        f"t = {t[-1]:.0f}. Its loss is plain ε-MSE × min(SNR, {gamma:g})/SNR, less than 1 only where SNR > {gamma:g}."
    )


def table_rows(
    table: MeasuredTable,
    networks: dict[Prediction, str],
    *,
    min_snr: tuple[str, str, float] | None = None,
) -> list[TableRow]:
    """One row per target, in the order ε, x₀, v, u, then min-SNR when (uniform, weighted, γ) is given.

    networks: the model measured for each of ε, x₀, v, u (a target left out gets its closed forms and no model
    clause).
    """
    rows = []
    for target in Prediction:
        clauses = [_size_clause(table, target), _weight_clause(table, target)]
        name = networks.get(target)
        if name is not None:
            clauses.append(_own_clause(table, name))
            if target in BOTH_ENDS and {Prediction.EPSILON, Prediction.SAMPLE} <= networks.keys():
                clauses.append(
                    _both_ends_clause(table, name, networks[Prediction.EPSILON], networks[Prediction.SAMPLE])
                )
            elif target is Prediction.EPSILON and Prediction.SAMPLE in networks:
                clauses.append(_versus_clause(table, name, networks[Prediction.SAMPLE]))
        if target is Prediction.FLOW:
            if name is not None and Prediction.V_PREDICTION in networks:
                clauses.append(_flow_against_v_clause(table, name, networks[Prediction.V_PREDICTION]))
            clauses.append(_lowest_u_clause(table, networks))
        rows.append(TableRow(ROW_NAMES[target], TARGET_SIZE[target], WEIGHT[target], "; ".join(clauses) + "."))
    if min_snr is not None:
        uniform, weighted, gamma = min_snr
        rows.append(
            TableRow(
                f"ε with min-SNR-{gamma:g}",
                TARGET_SIZE[Prediction.EPSILON],
                f"min(SNR, {gamma:g})",
                min_snr_sentence(table, uniform, weighted, gamma),
            )
        )
    return rows


def rows_markdown(rows: list[TableRow]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| parameterization | target RMS | weight on ‖x₀ − x̂₀‖² | what the measured curves show |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.name} | {r.target_size} | {r.weight} | {r.measured} |" for r in rows]
    return "\n".join(lines)
