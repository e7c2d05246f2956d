"""flat=coverage: the margin is fitted on validation rows, stored in the card, and decides about that
share of candles on data like validation; the coverage table steps by shares, not 0.01 thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.config import FlatConfig, compose_config
from forecaster.direction import Direction
from forecaster.errors import UserError
from forecaster.evaluation.coverage import SHARES, coverage_section
from forecaster.evaluation.statistics import direction_codes
from forecaster.flat import directions, fitted, margin_quantiles
from forecaster.models.card import ModelCard
from forecaster.models.spec import ModelSpec


def _probabilities(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities huddled around 0.5, as our models give: fixed thresholds decide almost nothing."""
    p_up = 0.5 + rng.normal(0, 0.01, n)
    return p_up, 1 - p_up + rng.normal(0, 0.005, n)


@pytest.mark.parametrize("share", [0.5, 0.2, 0.05])
def test_the_fitted_margin_decides_the_share_on_new_rows_like_validation(share: float) -> None:
    rng = np.random.default_rng(1)
    validation, later = _probabilities(rng, 20_000), _probabilities(rng, 20_000)
    rule = fitted(
        compose_config(["flat=coverage", f"flat.coverage={share}"]).flat, margin_quantiles(*validation)
    )
    decided = np.mean(directions(*later, rule) != Direction.FLAT)
    assert decided == pytest.approx(share, abs=0.02)
    assert np.mean(directions(*later, compose_config(["flat=balanced"]).flat) != Direction.FLAT) < 0.01


def test_other_rules_are_left_alone_and_coverage_needs_the_margins() -> None:
    balanced = compose_config([]).flat
    assert fitted(balanced, None) is balanced
    with pytest.raises(UserError, match="flat=coverage needs the validation margins"):
        fitted(FlatConfig("coverage", 0.0, 0.0, None, 0.2), None)


def test_the_card_keeps_the_margins() -> None:
    quantiles = margin_quantiles(np.array([0.6, 0.5, 0.4]), np.array([0.4, 0.5, 0.55]))
    card = ModelCard(ModelSpec("twohead", 3, (4,)), margin_quantiles=quantiles)
    assert ModelCard.from_json(card.to_json()).margin_quantiles == quantiles


def test_the_coverage_table_steps_by_shares() -> None:
    rng = np.random.default_rng(2)
    p_up, p_down = _probabilities(rng, 10_000)
    fact = direction_codes(rng.choice(["UP", "DOWN"], 10_000), "actual")
    table = coverage_section(p_up, p_down, fact).by_share
    assert [round(point.coverage or 0, 2) for point in table] == [round(s, 2) for s in SHARES]
