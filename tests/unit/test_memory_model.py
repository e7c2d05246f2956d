"""model=memory in process: causal by construction, and its vote."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from forecaster.candles import MINUTE_MS, Candle, read_csv
from forecaster.config import Config, compose_config
from forecaster.data import SAMPLE_CSV
from forecaster.models.card import ModelCard
from forecaster.models.pattern_memory import EVERYTHING, LiveMemory, MemoryFit
from forecaster.predictor import Predictor, build_predictor
from forecaster.training.dataset import make_dataset

EMBARGO = 7
TRAINED = 1500  # candles the memory is trained on; the rest are predicted
CHANGED_AFTER = 1800
HISTORY = read_csv(SAMPLE_CSV)
CUT = int(HISTORY.start_ms[CHANGED_AFTER])  # candles after this one are altered


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    config = compose_config(["model=memory", f"model.embargo={EMBARGO}", "model.k=8", "tracking=off"])
    rows = make_dataset(HISTORY[:TRAINED], config.features, config.train.threshold_bps)
    fit = config.model.fit(rows, rows, config.train, config.seed)
    folder = tmp_path_factory.mktemp("memory")
    _save(config, fit, folder)
    return config, folder


def _save(config: Config, fit: object, folder: Path) -> None:
    """The memory as mode=train saves it, with a card of what it was trained on."""
    assert isinstance(fit, MemoryFit)
    card = ModelCard(
        spec=config.model.spec(config.features.n_features, config.seed),
        trained=True,
        feature_set=config.features.name,
        feature_fingerprint=config.features.fingerprint(),
        timeframe="1m",
        normalisation=fit.standardizer,
    )
    fit.save(folder, card)


def _candles(altered: bool) -> list[Candle]:
    candles = HISTORY[TRAINED - 100 : 2100].to_candles()
    if not altered:
        return candles
    scale = np.random.default_rng(0).uniform(0.98, 1.02, size=len(candles))
    return [
        replace(c, open=c.open * f, high=c.high * f, low=c.low * f, close=c.close * f, volume=c.volume * 3)
        if c.start_ms > CUT
        else c
        for c, f in zip(candles, scale, strict=True)
    ]


def _predict(config: Config, folder: Path, candles: list[Candle]) -> tuple[dict[int, tuple], Predictor]:
    predictor = build_predictor(config, folder)
    memory = predictor.model
    assert isinstance(memory, LiveMemory)
    step = memory.memory.labelling.step_ms
    out = {}
    for candle in candles:
        row = predictor.prepare(candle)
        if row is None:
            continue
        found = memory.memory.store.nearest(row[None, :], memory.memory.limit(np.array([candle.start_ms])), 8)
        used = found.row[found.row >= 0]
        known = memory.memory.candle_ts[used] + step  # when each neighbour's move was known
        assert np.all(known <= candle.start_ms - EMBARGO * step), "a neighbour known after t - embargo"
        record = predictor.decide(candle, *predictor.model(row), 0)
        out[candle.start_ms] = (record.p_up, record.p_down, record.spread)
    return out, predictor


def test_altering_candles_after_t_changes_no_prediction_at_or_before_t(trained: tuple[Config, Path]) -> None:
    config, folder = trained
    before, predictor = _predict(config, folder, _candles(altered=False))
    after, _ = _predict(config, folder, _candles(altered=True))
    assert before.keys() == after.keys() and len(before) > 500
    assert all(before[ts] == after[ts] for ts in before if ts <= CUT)
    assert any(before[ts] != after[ts] for ts in before if ts > CUT), "the alteration reached nothing"
    memory = predictor.model
    assert isinstance(memory, LiveMemory) and memory.memory.size > TRAINED, "the memory grew"


def test_a_query_with_no_allowed_neighbour_gets_the_base_rates(trained: tuple[Config, Path]) -> None:
    config, folder = trained
    memory = build_predictor(config, folder).model
    assert isinstance(memory, LiveMemory)
    rows = np.zeros((2, config.features.n_features))
    p_up, p_down, spread = memory.memory.vote(rows, np.array([0, EVERYTHING]))
    assert (p_up[0], p_down[0], spread[0]) == (*memory.memory.base, 0.0)
    assert 0 < p_up[1] < 1 and 0 < p_down[1] < 1 and p_up[1] + p_down[1] <= 1 + 1e-12


def test_the_limit_is_the_query_candle_minus_the_embargo(trained: tuple[Config, Path]) -> None:
    config, folder = trained
    memory = build_predictor(config, folder).model
    assert isinstance(memory, LiveMemory)
    t = 1_733_000_000_000 - 1_733_000_000_000 % MINUTE_MS
    assert memory.memory.limit(np.array([t]))[0] == t // MINUTE_MS - EMBARGO


def test_an_approximate_memory_is_causal_too(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    overrides = [f"model.embargo={EMBARGO}", "model.k=8", "model.index=faiss", "model.faiss.nlist=8"]
    config = compose_config(["model=memory", *overrides, "tracking=off"])
    rows = make_dataset(HISTORY[:TRAINED], config.features, config.train.threshold_bps)
    fit = config.model.fit(rows, rows, config.train, config.seed)
    p_up, p_down = fit.probabilities(rows.X[:50])
    assert np.all((p_up > 0) & (p_up < 1) & (p_down > 0) & (p_down < 1))
    _save(config, fit, tmp_path)
    predicted, _ = _predict(config, tmp_path, HISTORY[TRAINED - 100 : TRAINED + 100].to_candles())
    assert len(predicted) > 100
