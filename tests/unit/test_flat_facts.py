"""The FLAT rule and fact_movement, on hand-made cases."""

from __future__ import annotations

import numpy as np

from forecaster.candles import read_csv
from forecaster.config import FlatConfig
from forecaster.data import SAMPLE_CSV
from forecaster.facts import FactTracker, fact
from forecaster.flat import describe, direction, directions

BALANCED = FlatConfig(min_prob=0.55, min_margin=0.05)
SPREAD = FlatConfig(min_prob=0.55, min_margin=0.05, max_spread=0.1)
OFF = FlatConfig(name="off", min_prob=0.0, min_margin=0.0)


def test_flat_rule_cases() -> None:
    assert direction(0.7, 0.2, BALANCED) == "UP"
    assert direction(0.2, 0.7, BALANCED) == "DOWN"
    assert direction(0.54, 0.1, BALANCED) == "FLAT"  # not confident enough
    assert direction(0.6, 0.57, BALANCED) == "FLAT"  # confident, but both heads agree too closely
    assert direction(0.51, 0.49, OFF) == "UP"
    assert direction(0.5, 0.5, OFF) == "FLAT"  # a tie prefers neither


def test_the_rule_is_stated_as_it_decides() -> None:
    assert describe(BALANCED) == (
        "FLAT (abstain) when max(p_up, p_down) < 0.55 or |p_up - p_down| < 0.05 (flat=balanced)"
    )
    assert describe(SPREAD).endswith("or the members' spread > 0.1 (flat=balanced)")
    assert describe(OFF) == "FLAT (abstain) when p_up == p_down (a tie) (flat=off)"


def test_member_spread_rule_cases() -> None:
    assert direction(0.7, 0.2, SPREAD, 0.05) == "UP"
    assert direction(0.7, 0.2, SPREAD, 0.1) == "UP", "at the limit: still decided"
    assert direction(0.7, 0.2, SPREAD, 0.11) == "FLAT", "members disagree too much"
    assert direction(0.2, 0.7, SPREAD, 0.3) == "FLAT"
    assert direction(0.7, 0.2, SPREAD) == "UP", "no spread known (e.g. old records): the rule cannot apply"
    assert direction(0.7, 0.2, BALANCED, 0.9) == "UP", "max_spread null: the rule is off"
    assert direction(0.54, 0.1, SPREAD, 0.0) == "FLAT", "the other rules still hold"


def test_vectorised_equals_scalar() -> None:
    rng = np.random.default_rng(0)
    p_up, p_down, spread = rng.random(1000), rng.random(1000), rng.random(1000) * 0.2
    for rule in (BALANCED, SPREAD):
        vector = directions(p_up, p_down, rule, spread)
        scalar = [direction(u, d, rule, s) for u, d, s in zip(p_up, p_down, spread, strict=True)]
        assert list(vector) == scalar
    assert (directions(p_up, p_down, SPREAD, spread) == "FLAT").sum() > (
        directions(p_up, p_down, BALANCED, spread) == "FLAT"
    ).sum()


def test_facts_follow_closes() -> None:
    candles = read_csv(SAMPLE_CSV)[:3].to_candles()
    record = fact(candles[0], candles[1])
    assert record.prev_ts == candles[0].start_ms and record.candle_ts == candles[1].start_ms
    assert record.delta == candles[1].close - candles[0].close
    assert record.ret_bps == 10_000 * record.delta / candles[0].close
    assert record.direction == ("UP" if record.delta > 0 else "DOWN" if record.delta < 0 else "FLAT")


def test_zero_move_is_flat_and_gaps_give_no_fact() -> None:
    candles = read_csv(SAMPLE_CSV)[:5].to_candles()
    same = type(candles[1])(
        **{**{f: getattr(candles[1], f) for f in candles[1].__slots__}, "close": candles[0].close}
    )
    assert fact(candles[0], same).direction == "FLAT"
    tracker = FactTracker()
    assert tracker.push(candles[0]) is None
    assert tracker.push(candles[1]).candle_ts == candles[1].start_ms
    assert tracker.push(candles[3]) is None, "candle 2 is missing: no fact against candle 1"
    assert tracker.push(candles[4]).prev_ts == candles[3].start_ms
