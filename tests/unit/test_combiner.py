"""model=combiner in-process: Hedge's weights, its window, causality, the combined record, config errors."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from forecaster.combined import CombinedPredictor, CombinerSettings
from forecaster.config import FlatConfig, compose_config
from forecaster.direction import Direction
from forecaster.errors import ConfigError, UserError
from forecaster.hedge import Hedge
from forecaster.predictor import build_predictor
from forecaster.recording import FactRecord, PredictionRecord
from forecaster.scoring import ScoreRule

STEP = 60_000
MEMBERS = ("a", "b", "c")
UP, DOWN, FLAT = Direction.UP, Direction.DOWN, Direction.FLAT


def _prediction(ts: int, p_up: float, p_down: float, direction: Direction = FLAT) -> PredictionRecord:
    return PredictionRecord(ts, p_up, p_down, direction, ts + STEP, "m", "1m", 0.0, True)


def _fact(ts: int, direction: Direction) -> FactRecord:
    """The fact of candle ts (judging the predictions made at ts - STEP)."""
    return FactRecord(ts - STEP, ts, 1.0, 1.0, 0.0, 0.0, direction)


def test_weights_are_exponential_in_the_points_each_member_earned() -> None:
    hedge = Hedge(MEMBERS, eta=0.5, window=None, rule=ScoreRule(reward=1, penalty=-1, flat=0))
    assert hedge.weights() == pytest.approx(dict.fromkeys(MEMBERS, 1 / 3)), "equal at the start"
    for ts in (0, STEP):
        calls = {"a": _prediction(ts, 0.7, 0.2, UP), "b": _prediction(ts, 0.2, 0.7, DOWN)}
        hedge.open(ts, {**calls, "c": _prediction(ts, 0.5, 0.5)})
        hedge.settle(_fact(ts + STEP, UP))
    assert hedge.totals == {"a": 2.0, "b": -2.0, "c": 0.0}
    w = hedge.weights()
    assert w["a"] / w["c"] == pytest.approx(math.exp(0.5 * 2)) and w["c"] / w["b"] == pytest.approx(
        math.exp(1)
    )
    assert sum(w.values()) == pytest.approx(1)
    assert hedge.weights(["b", "c"]) == pytest.approx(
        {"b": w["b"] / (w["b"] + w["c"]), "c": w["c"] / (w["b"] + w["c"])}
    )
    hedge.settle(_fact(2 * STEP, DOWN))
    assert hedge.totals["a"] == 2.0, "a fact seen already changes nothing"


def test_the_window_keeps_the_last_settled_candles_only() -> None:
    hedge = Hedge(("a", "b"), eta=1.0, window=2, rule=ScoreRule())
    for i, actual in enumerate((UP, UP, DOWN, DOWN)):
        ts = i * STEP
        hedge.open(ts, {"a": _prediction(ts, 0.9, 0.1, UP), "b": _prediction(ts, 0.1, 0.9, DOWN)})
        hedge.settle(_fact(ts + STEP, actual))
    assert hedge.totals == {"a": -2.0, "b": 2.0}, "the first two candles left the window"


def _settings(**changes: object) -> CombinerSettings:
    base = CombinerSettings("combiner", "1m", MEMBERS, 0.3, None, ScoreRule(), FlatConfig())
    return replace(base, **changes)


def _run(
    facts: dict[int, FactRecord], made: dict[int, dict[str, PredictionRecord]]
) -> list[PredictionRecord]:
    predictor = CombinedPredictor(_settings())
    out = []
    for ts in sorted(made):
        record = predictor.step(ts, facts.get(ts), made[ts], 0)
        if record is not None:
            out.append(replace(record, latency_ms=0.0))
    return out


def test_a_prediction_at_t_uses_only_outcomes_settled_by_t() -> None:
    rng = np.random.default_rng(0)
    candles = [i * STEP for i in range(60)]
    facts = {ts: _fact(ts, Direction(str(rng.choice(["UP", "DOWN"])))) for ts in candles[1:]}
    made = {}
    for ts in candles:
        ups = rng.uniform(0.2, 0.8, len(MEMBERS))
        made[ts] = {
            name: _prediction(ts, float(u), float(1 - u), UP if u > 0.5 else DOWN)
            for name, u in zip(MEMBERS, ups, strict=True)
        }
    del made[candles[5]]["b"]  # a member without a prediction at a candle is left out of it
    before = _run(facts, made)
    assert len(before) == len(candles)
    cut = candles[30]
    changed = dict(facts)
    changed[cut] = replace(facts[cut], direction=DOWN if facts[cut].direction == UP else UP)
    after = _run(changed, made)
    assert [p for p in after if p.candle_ts < cut] == [p for p in before if p.candle_ts < cut]
    assert after != before, "the altered fact does change the predictions from its candle on"


def test_the_record_is_the_weighted_mean_through_the_entrys_flat_rule() -> None:
    predictor = CombinedPredictor(
        _settings(members=("a", "b"), rule=FlatConfig(min_prob=0.6, min_margin=0.0))
    )
    first = predictor.step(
        0, None, {"a": _prediction(0, 0.8, 0.1, UP), "b": _prediction(0, 0.4, 0.5, DOWN)}, 0
    )
    assert first is not None
    assert (first.p_up, first.p_down, first.direction) == (pytest.approx(0.6), pytest.approx(0.3), UP)
    assert first.spread == pytest.approx(0.2), "the larger of the heads' weighted standard deviations"
    assert predictor.step(STEP, _fact(STEP, UP), {}, 0) is None, "no member prediction: warming"
    metrics = predictor.metrics()
    assert metrics["weight.a"] > metrics["weight.b"] and metrics["predictor_warming"] == 1


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            "{model: logreg}, {model: combiner, predictors: [twohead-1m]}",
            "combines 'twohead-1m', which is not",
        ),
        ("{model: logreg, timeframe: 5m}, {model: combiner}", "no other predictor of timeframe 1m"),
        (
            "{model: logreg, timeframe: 5m}, {model: persistence}, "
            "{model: combiner, predictors: [logreg-5m]}",
            "combines 'logreg-5m' of timeframe 5m",
        ),
        (
            "{model: logreg}, {model: combiner}, {model: combiner, name: c2, predictors: [combiner-1m]}",
            "combines 'combiner-1m', another combiner",
        ),
        ("{model: logreg, eta: 0.5}", "unknown key 'live.predictors[0].model.eta'"),
        ("{model: logreg}, {model: combiner, eta: 0}", "live.predictors[1].eta=0.0 is not allowed"),
    ],
)
def test_a_bad_combiner_entry_is_one_config_error(entries: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        compose_config(["tracking=off", f"live.predictors=[{entries}]"])
    assert message in str(error.value)


def test_a_combiner_alone_is_refused_in_one_line() -> None:
    with pytest.raises(UserError, match="give it as an entry of live"):
        build_predictor(compose_config(["tracking=off", "model=combiner"]), None)


def test_the_weights_plot_draws(tmp_path: Path) -> None:
    from forecaster.evaluation.plots import member_weights

    path = member_weights([0, STEP], {"a": [0.5, 0.7], "b": [0.5, 0.3]}, tmp_path / "w.png")
    assert path.stat().st_size > 0
