"""Calibration against known answers on synthetic data: it reduces ECE of a miscalibrated model,
recovers a known temperature, round-trips through the model card and is applied row by row
exactly as in a batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forecaster.calibration import (
    Calibration,
    Isotonic,
    IsotonicMap,
    NoCalibration,
    Platt,
    PlattMap,
    Temperature,
    TemperatureMap,
)
from forecaster.config import compose_config
from forecaster.errors import ConfigError, UserError
from forecaster.evaluation.evaluate import head_section
from forecaster.models.card import SIDECAR_FILE, ModelCard, read_card
from forecaster.models.spec import ModelSpec

TRUE_TEMPERATURE = 3.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits TRUE_TEMPERATURE times too large: p = sigmoid(3 z) while y ~ Bernoulli(sigmoid(z))."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.0, n)
    y = (rng.random(n) < _sigmoid(z)).astype(np.float64)
    return _sigmoid(TRUE_TEMPERATURE * z), y


def _ece(p: np.ndarray, y: np.ndarray) -> float:
    ece = head_section(p, y).ece
    assert ece is not None
    return ece


def test_temperature_recovers_the_known_temperature_and_reduces_ece() -> None:
    p, y = _overconfident(50_000, seed=1)
    calibration = Temperature().fit(p, p, y, y)
    assert isinstance(calibration.up, TemperatureMap)
    assert calibration.up.temperature == pytest.approx(TRUE_TEMPERATURE, rel=0.05)
    # fitted on one sample, judged on another: ECE falls from the miscalibrated level to near 0
    p_new, y_new = _overconfident(50_000, seed=2)
    after = calibration.up(p_new)
    assert _ece(p_new, y_new) > 0.05 and _ece(after, y_new) < 0.01


def test_temperature_minimises_the_log_loss() -> None:
    """Independent check: the fitted temperature beats its neighbours on the fitting rows."""
    p, y = _overconfident(5_000, seed=3)
    fitted = Temperature().head(p, y).temperature

    def loss(t: float) -> float:
        q = np.clip(TemperatureMap(t)(p), 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    assert loss(fitted) <= min(loss(fitted * 0.98), loss(fitted * 1.02))


def test_temperature_stays_within_its_bounds_when_the_head_is_noise() -> None:
    rng = np.random.default_rng(4)
    p, y = rng.uniform(0.3, 0.7, 2_000), (rng.random(2_000) < 0.5).astype(float)
    calibration = Temperature(max_temperature=50.0).fit(p, p, y, y)
    assert isinstance(calibration.up, TemperatureMap) and calibration.up.temperature <= 50.0
    assert np.all(np.abs(calibration.up(p) - 0.5) < 0.05)


def test_platt_recovers_a_known_slope_and_intercept() -> None:
    """y ~ Bernoulli(sigmoid(z - 0.5)) reported as sigmoid(2 z): slope 1/2, intercept -1/2, and the
    base-rate shift that a temperature alone cannot make."""
    rng = np.random.default_rng(8)
    z = rng.normal(0.0, 1.0, 100_000)
    y = (rng.random(len(z)) < _sigmoid(z - 0.5)).astype(np.float64)
    head = Platt().head(_sigmoid(2.0 * z), y)
    assert head.slope == pytest.approx(0.5, abs=0.03) and head.intercept == pytest.approx(-0.5, abs=0.03)
    p = _sigmoid(2.0 * z)
    assert _ece(head(p), y) < 0.01 < _ece(Temperature().head(p, y)(p), y)


def test_platt_of_a_head_without_information_is_the_base_rate() -> None:
    rng = np.random.default_rng(9)
    y = (rng.random(20_000) < 0.485).astype(np.float64)
    head = Platt().head(np.full(len(y), 0.5), y)
    assert head(np.array([0.5]))[0] == pytest.approx(y.mean(), abs=1e-6)


def test_platt_never_reverses_a_head() -> None:
    """An anti-correlated head on validation gets slope 0 (the base rate), not a flipped ranking."""
    rng = np.random.default_rng(10)
    z = rng.normal(0.0, 1.0, 20_000)
    y = (rng.random(len(z)) < _sigmoid(-z)).astype(np.float64)
    head = Platt().head(_sigmoid(z), y)
    assert head.slope == 0.0 and _sigmoid(np.array([head.intercept]))[0] == pytest.approx(y.mean())


def test_isotonic_is_the_pool_adjacent_violators_fit() -> None:
    """Hand-computed: frequencies 1, 0, 1, 1 at increasing p pool the first two into 0.5."""
    head = Isotonic(clip=1e-3).head(np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 0.0, 1.0, 1.0]))
    assert head.x == (0.1, 0.2, 0.3, 0.4)
    assert head.y == (0.5, 0.5, 0.999, 0.999)
    assert head(np.array([0.0, 0.15, 0.25, 1.0])).tolist() == pytest.approx([0.5, 0.5, 0.7495, 0.999])


def test_isotonic_is_monotone_and_reduces_ece() -> None:
    p, y = _overconfident(20_000, seed=5)
    head = Isotonic().head(p, y)
    assert all(b >= a for a, b in zip(head.y, head.y[1:], strict=False))
    p_new, y_new = _overconfident(20_000, seed=6)
    assert _ece(head(p_new), y_new) < 0.02 < _ece(p_new, y_new)


def test_no_calibration_fits_nothing() -> None:
    p = np.array([0.2, 0.8])
    assert NoCalibration().fit(p, p, p, p) is None


def test_one_row_equals_its_batch_row() -> None:
    """The live path (one candle) and the batch path (training's scores) give the same numbers."""
    p, y = _overconfident(2_000, seed=7)
    for calibrator in (Temperature(), Platt(), Isotonic()):
        calibration = calibrator.fit(p, 1 - p, y, 1 - y)
        up, down = calibration(p[:50], 1 - p[:50])
        rows = [calibration.one(float(a), float(b)) for a, b in zip(p[:50], 1 - p[:50], strict=True)]
        assert [r[0] for r in rows] == up.tolist() and [r[1] for r in rows] == down.tolist()


def test_calibration_round_trips_through_the_model_card(tmp_path: Path) -> None:
    spec = ModelSpec(name="twohead", n_features=3, hidden=(4,), seed=0, ensemble=False)
    calibration = Calibration(TemperatureMap(1.7), TemperatureMap(0.9))
    card = ModelCard(spec=spec, trained=True, calibration=calibration)
    (tmp_path / SIDECAR_FILE).write_text(json.dumps(card.to_json()))
    assert read_card(tmp_path).calibration == calibration
    for other in (
        Calibration(IsotonicMap((0.1, 0.9), (0.2, 0.8)), IsotonicMap((0.5,), (0.5,))),
        Calibration(PlattMap(0.5, -0.1), PlattMap(1.2, 0.0)),
    ):
        assert Calibration.from_json(json.loads(json.dumps(other.to_json()))) == other


def test_a_malformed_calibration_in_a_card_is_one_line(tmp_path: Path) -> None:
    spec = ModelSpec(name="twohead", n_features=3, hidden=(4,), seed=0, ensemble=False)
    data = ModelCard(spec=spec, trained=True).to_json()
    data["calibration"] = {"method": "platt", "up": {}, "down": {}}
    (tmp_path / SIDECAR_FILE).write_text(json.dumps(data))
    with pytest.raises(UserError, match="malformed"):
        read_card(tmp_path)


def test_calibration_options_compose() -> None:
    assert isinstance(compose_config(["train/calibration=isotonic"]).train.calibration, Isotonic)
    assert isinstance(compose_config([]).train.calibration, Temperature)
    assert isinstance(compose_config(["train/calibration=none"]).train.calibration, NoCalibration)
    assert isinstance(compose_config(["train/calibration=platt"]).train.calibration, Platt)
    with pytest.raises(ConfigError, match="must be below"):
        compose_config(["train.calibration.min_temperature=5", "train.calibration.max_temperature=2"])
