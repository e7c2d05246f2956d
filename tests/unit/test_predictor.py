"""The predictor in process: no look-ahead, live equals batch, gaps, and live.predictors entries."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from forecaster.candles import read_csv
from forecaster.config import Config, FlatConfig, PredictorEntry, compose_config, entry_config
from forecaster.data import SAMPLE_CSV
from forecaster.modes.live import predictor_configs
from forecaster.predictor import build_predictor
from forecaster.training.dataset import make_dataset

SAMPLE = read_csv(SAMPLE_CSV)


def _predictions(candles, config: Config) -> list:
    predictor = build_predictor(config, None)
    return [p for p in (predictor.on_candle(c) for c in candles.to_candles()) if p is not None]


def test_no_look_ahead() -> None:
    """Predictions up to t do not change when the candles after t do."""
    config = compose_config([])
    candles = SAMPLE[:400]
    cut = 250
    scale = np.ones(len(candles))
    scale[cut + 1 :] = np.random.default_rng(0).uniform(0.9, 1.1, len(candles) - cut - 1)
    columns = [candles.open * scale, candles.high * scale, candles.low * scale, candles.close * scale]
    future = replace(candles, open=columns[0], high=columns[1], low=columns[2], close=columns[3])
    future = replace(future, volume=np.where(scale == 1, candles.volume, candles.volume * 3))
    before, after = _predictions(candles, config), _predictions(future, config)
    upto = [p for p in before if p.candle_ts <= candles.start_ms[cut]]
    assert upto and [(p.p_up, p.p_down) for p in upto] == [(p.p_up, p.p_down) for p in after[: len(upto)]]
    assert [(p.p_up, p.p_down) for p in before] != [(p.p_up, p.p_down) for p in after], (
        "the future did change"
    )


def test_live_path_equals_batch_path() -> None:
    config = compose_config(["flat=off"])
    candles = SAMPLE[:300]
    live = _predictions(candles, config)
    features = config.features
    rows = features.batch(candles)[features.window - 1 :]
    batch = build_predictor(config, None).model.batch(rows)
    assert [p.p_up for p in live] == batch.p_up.tolist()
    assert [p.p_down for p in live] == batch.p_down.tolist()


def test_no_prediction_from_a_window_across_a_gap() -> None:
    """After a hole the window fills again, exactly as training drops rows that touch a gap."""
    config = compose_config([])
    keep = np.ones(400, bool)
    keep[200:230] = False
    candles = SAMPLE[:400][keep]
    predicted = {p.candle_ts for p in _predictions(candles, config)}
    present = set(candles.start_ms.tolist())
    window = config.features.window
    assert all(all(t - k * 60_000 in present for k in range(window)) for t in predicted)
    rows = make_dataset(candles, config.features, 0.0).candle_ts.tolist()
    assert set(rows) <= predicted and len(predicted - set(rows)) == 2  # the two with no next candle


def test_entries_resolve_to_full_configs() -> None:
    config = compose_config(["flat=strict"])
    entry = PredictorEntry(model="ensemble", timeframe="5m", members=32, max_spread=0.2)
    resolved = entry_config(config, entry)
    assert (resolved.model.name, resolved.model.members, resolved.model.hidden) == ("ensemble", 32, (64, 64))
    assert resolved.timeframe.name == "5m" and resolved.flat == FlatConfig("strict", 0.6, 0.1, 0.2)
    loose = entry_config(config, PredictorEntry(model="logreg", flat="loose", min_margin=0.03))
    assert not hasattr(loose.model, "hidden") and (
        loose.flat.name,
        loose.flat.min_prob,
        loose.flat.min_margin,
    ) == (
        "loose",
        0.52,
        0.03,
    )
    assert list(predictor_configs(config)) == [""], "no entries: the run's own predictor"


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_the_predictor_abstains_on_member_spread() -> None:
    """Untrained members disagree: max_spread 0 makes every call FLAT, a wide one changes nothing."""
    candles = SAMPLE[:80].to_candles()
    outputs = {}
    for limit in (None, 0.0):
        entry = PredictorEntry(model="ensemble", members=4, flat="off", max_spread=limit)
        predictor = build_predictor(entry_config(compose_config([]), entry), None)
        outputs[limit] = [p for p in map(predictor.on_candle, candles) if p is not None]
    assert {p.direction for p in outputs[0.0]} == {"FLAT"}
    assert {p.direction for p in outputs[None]} != {"FLAT"}
    assert [p.p_up for p in outputs[0.0]] == [p.p_up for p in outputs[None]]
