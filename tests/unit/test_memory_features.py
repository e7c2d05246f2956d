"""The memory block (features=[rich,memory]): each row is its definition computed by brute force, batch
equals live exactly, nothing after t moves a row at t, and presets combine (rich's fingerprint kept)."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.candles import MINUTE_MS, CandleArray, read_csv
from forecaster.checks import Status
from forecaster.config import compose_config
from forecaster.data import SAMPLE_CSV
from forecaster.errors import ConfigError
from forecaster.evaluation.audit import cut_points, features_check
from forecaster.features.composed import ComposedFeatures
from forecaster.features.memory import Memory
from tests.unit.test_feature_blocks import _live_rows, _with_gaps

SMALL = Memory(n=4, vol_window=10, k=8, embargo=4, capacity=100, block=128)
RICH_FINGERPRINT = "d2be0d2973fa"  # features=rich before presets could combine: saved models still load


def _random_walk(n: int, seed: int) -> CandleArray:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 1e-3, n)))
    start = np.arange(n, dtype=np.int64) * MINUTE_MS
    return CandleArray(start, close, close, close, close, np.ones(n), np.ones(n))


def _by_definition(block: Memory, close: np.ndarray, t: int) -> np.ndarray:
    """Row t from the block's docstring, one window at a time."""
    r = np.diff(np.log(close))  # r[i]: the return of candle i + 1

    def window(j: int) -> np.ndarray:  # ends at candle j, newest return first
        rms = np.sqrt(np.mean(r[j - block.vol_window : j] ** 2))
        return r[j - block.n : j][::-1] / rms

    # outcome of window j (the return of candle j + 1) known at candle j + 1 <= t - embargo
    memory = range(t - block.embargo - block.capacity, t - block.embargo)
    distance = np.array([np.linalg.norm(window(j) - window(t)) for j in memory])
    order = sorted(zip(distance, memory, strict=True), key=lambda pair: (pair[0], -pair[1]))[: block.k]
    outcome, d = np.array([r[j] for _, j in order]), np.array([d for d, _ in order])
    return np.array([np.mean(outcome > 0), 1e4 * np.mean(outcome), np.mean(d), d[-1]])


def test_rows_are_the_k_nearest_of_the_last_capacity_known_windows() -> None:
    candles = _random_walk(400, seed=0)
    rows = ComposedFeatures([SMALL]).batch(candles)
    assert np.isnan(rows[: SMALL.window - 1]).all() and np.isfinite(rows[SMALL.window - 1 :]).all()
    for t in (SMALL.window - 1, SMALL.window + 70, len(candles) - 1):
        np.testing.assert_allclose(rows[t], _by_definition(SMALL, candles.close, t), rtol=1e-9)


def test_live_equals_batch_exactly_with_gaps_and_nothing_after_t_moves_row_t() -> None:
    """conf/features/memory.yaml's block with a smaller memory, on real 1m candles with holes."""
    features = ComposedFeatures([Memory(capacity=200)])
    candles = _with_gaps(read_csv(SAMPLE_CSV)[:1200])
    batch = features.batch(candles)
    live = _live_rows(features, candles)  # started again after every gap
    runs = np.split(np.arange(len(candles)), np.flatnonzero(np.diff(candles.start_ms) != MINUTE_MS) + 1)
    whole = [i for run in runs for i in run[features.window - 1 :]]
    assert sorted(live) == whole and np.isfinite(batch[whole]).all()
    assert np.isnan(np.delete(batch, whole, axis=0)).all()
    assert all(np.array_equal(row, batch[i]) for i, row in live.items())
    rng = np.random.default_rng(2)
    cuts = cut_points(len(candles), features.window, 3, rng)
    assert features_check(features, candles, cuts, rng).status == Status.OK


def test_cosine_distance_and_a_gap_start_the_memory_again() -> None:
    block = Memory(n=4, vol_window=8, k=4, embargo=4, capacity=50, block=128, metric="cosine")
    candles = _random_walk(300, seed=1)
    joined = candles[np.r_[0:140, 141:300]]  # candle 140 missing: a run of 140, then one of 159
    rows = ComposedFeatures([block]).batch(joined)
    np.testing.assert_array_equal(rows[140:], ComposedFeatures([block]).batch(candles[141:]))
    assert (
        np.isfinite(rows[140 + block.window - 1 :]).all()
        and np.isnan(rows[140 : 140 + block.window - 1]).all()
    )
    assert (rows[block.window - 1 : 140, 2] <= 2).all(), "1 - cosine similarity lies in [0, 2]"


def test_presets_combine_and_rich_keeps_its_fingerprint() -> None:
    rich = compose_config(["features=rich"]).features
    assert (rich.name, rich.fingerprint()) == ("rich", RICH_FINGERPRINT)
    both = compose_config(["features=[rich,memory]", "features.blocks.memory.0.k=8"]).features
    assert isinstance(both, ComposedFeatures) and both.name == "rich+memory"
    assert both.names == [*rich.names, "mem_up", "mem_ret_bps", "mem_dist", "mem_dist_k"]
    assert both.window == 60 + 1 + 16 + 1440
    swapped = compose_config(["features=[memory,rich]", "features.blocks.memory.0.k=8"]).features
    assert len({rich.fingerprint(), both.fingerprint(), swapped.fingerprint()}) == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["features=[basic,memory]"], "basic is not a composed feature set"),
        (["features=[memory,basic]"], "basic is not a composed feature set"),
        (["features=memory", "features.blocks.memory.0.capacity=8"], "memory.capacity=8 holds fewer"),
        (["features=memory", "features.blocks.memory.0.block=64"], "memory.block=64 must be >= "),
        (["features=memory", "features.blocks.memory.0.metric=l1"], "choose one of: euclidean, cosine"),
    ],
)
def test_memory_config_mistakes_are_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        compose_config(overrides)
    assert "\n" not in str(caught.value)
