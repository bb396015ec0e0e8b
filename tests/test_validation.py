"""The one parser at the edge: modes (`Mode`, a `str` enum) and their refusals, which name the field."""

from __future__ import annotations

import pytest

import explorer
from explorer.data import Dataset
from explorer.diffusion.schedules import BetaSchedule
from explorer.figures.schedules import XAxis
from explorer.validation import Mode


class Colour(Mode, field="colour", aliases={"grey": "gray"}):
    RED = "red"
    GRAY = "gray"


def test_a_mode_parses_its_values_aliases_and_members():
    assert Colour.parse(" RED ") is Colour.RED and Colour.parse("grey") is Colour.GRAY
    assert Colour.parse(Colour.GRAY) is Colour.GRAY and isinstance(Colour.RED, str)


def test_a_refusal_names_the_field_and_every_choice():
    with pytest.raises(ValueError, match=r"colour must be one of red, gray, grey; got 'blue'"):
        Colour.parse("blue")
    with pytest.raises(ValueError, match=r"^tint must be one of"):
        Colour.parse("blue", "tint")


def test_the_package_modes_keep_their_fields_aliases_and_case():
    assert BetaSchedule.parse("Cosine") is BetaSchedule.SQUAREDCOS_CAP_V2
    with pytest.raises(ValueError, match=r"^data must be one of digits, moons, ring"):
        Dataset.parse("mnist")
    assert XAxis.parse("t/T") is XAxis.T_OVER_T
    with pytest.raises(ValueError, match="x axis"):
        XAxis.parse("T/T")  # case matters for this one
    with pytest.raises(ValueError, match=r"^prediction type must be one of"):
        explorer.Prediction.parse("flow")


def _modes(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_modes(direct))]


def test_every_mode_of_the_package_names_its_field():
    import explorer.diffusion.flow
    import explorer.models.decoders  # noqa: F401

    modes = [mode for mode in _modes(Mode) if mode.__module__.startswith("explorer.")]
    assert len(modes) >= 9
    for mode in modes:
        assert mode.field_name != mode.__name__, f"{mode.__name__} names no field"
