"""Feature blocks and composed sets (features=rich): live equals batch on real data with gaps, no
look-ahead, each value matches its definition on a tiny series, and config mistakes are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forecaster.candles import MINUTE_MS, CandleArray, parse_utc_ms, read_csv
from forecaster.checks import Status
from forecaster.config import compose_config
from forecaster.data import SAMPLE_CSV
from forecaster.errors import ConfigError, UserError
from forecaster.evaluation.audit import cut_points, features_check, live_batch_check
from forecaster.features.activity import Activity
from forecaster.features.base import FeatureBlock, IncrementalFeatures
from forecaster.features.basic import BasicFeatures
from forecaster.features.calendar import Calendar
from forecaster.features.composed import ComposedFeatures
from forecaster.features.context import Context
from forecaster.features.momentum import Momentum
from forecaster.features.returns import Returns
from forecaster.features.shape import Shape
from forecaster.features.trend import Trend
from forecaster.features.volatility import Volatility
from forecaster.features.volume import Volume
from forecaster.features.window import FeatureWindow
from forecaster.parts import build
from forecaster.training.dataset import make_dataset
from tests.flow_synthetic import with_flow

TOLERANCE = 1e-9
BLOCKS: list[FeatureBlock] = [
    Returns(n=4),
    Momentum(windows=[1, 3, 10], vol_window=20),
    Volatility(windows=[3, 10, 30]),
    Shape(norm_window=20),
    Volume(windows=[5, 30], turnover=True),
    Trend(ma_windows=[5, 30], range_windows=[10, 30]),
    Activity(windows=[10, 30]),
    Calendar(),
    Context(timeframe="5m", blocks=[Returns(n=2), Shape(norm_window=4), Calendar()]),
]  # the memory block has its own tests (tests/unit/test_memory_features.py): its live form is slower
# Holes cut out of a real history: the live side starts its window again after each, as Predictor does.
HOLES = (slice(500, 505), slice(800, 801), slice(840, 900))


def _with_gaps(candles: CandleArray) -> CandleArray:
    keep = np.ones(len(candles), dtype=bool)
    for hole in HOLES:
        keep[hole] = False
    return candles[keep]


def _live_rows(features: ComposedFeatures, candles: CandleArray) -> dict[int, np.ndarray]:
    """Candle index -> live row, the window started again after every gap."""
    window = FeatureWindow(features)
    rows: dict[int, np.ndarray] = {}
    previous: int | None = None
    for i, candle in enumerate(candles.to_candles()):
        if previous is not None and candle.start_ms != previous + MINUTE_MS:
            window = FeatureWindow(features)
        previous = candle.start_ms
        row = window.push(candle)
        if row is not None:
            rows[i] = row
    return rows


def _assert_live_equals_batch(features: ComposedFeatures, candles: CandleArray) -> None:
    batch = features.batch(candles)
    live = _live_rows(features, candles)
    data = make_dataset(candles, features, threshold_bps=0.0)
    index = np.searchsorted(candles.start_ms, data.candle_ts)
    span = (features.window - 1) * MINUTE_MS
    first = np.arange(len(candles)) - features.window + 1
    whole = (first >= 0) & (candles.start_ms - candles.start_ms[np.maximum(first, 0)] == span)
    assert sorted(live) == np.flatnonzero(whole).tolist()  # a window never spans a gap
    assert set(index.tolist()) <= set(live)  # every training row has its live twin
    for i, row in live.items():
        np.testing.assert_allclose(row, batch[i], rtol=0, atol=TOLERANCE)
    assert np.isfinite(np.array(list(live.values()))).all()


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: type(b).__name__)
def test_live_equals_batch_on_the_sample_with_gaps(block: FeatureBlock) -> None:
    _assert_live_equals_batch(ComposedFeatures([block]), _with_gaps(read_csv(SAMPLE_CSV)[:1200]))


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: type(b).__name__)
def test_live_equals_batch_on_shared_history_with_gaps(shared_data: Path, block: FeatureBlock) -> None:
    # the one shared file with turnover, so that the volume block can use it
    candles = read_csv(shared_data / "btcusdt_1m_binance-spot_20241130_20241229.csv.gz")[20000:21200]
    _assert_live_equals_batch(ComposedFeatures([block]), _with_gaps(candles))


@pytest.mark.parametrize("preset", ["rich", "[rich,flow]"])
def test_rich_passes_the_leak_audit(preset: str) -> None:
    features = compose_config([f"features={preset}"]).features
    candles = read_csv(SAMPLE_CSV)[:600]
    if "flow" in preset:  # order flow: the audit alters the bars after each cut too
        candles = with_flow(candles)
    rng = np.random.default_rng(0)
    cuts = cut_points(len(candles), features.window, 10, rng)
    assert features_check(features, candles, cuts, rng).status == Status.OK
    assert live_batch_check(features, candles).status == Status.OK


def test_every_block_passes_the_leak_audit() -> None:
    candles = read_csv(SAMPLE_CSV)[:400]
    rng = np.random.default_rng(1)
    for block in BLOCKS:
        features = ComposedFeatures([block])
        cuts = cut_points(len(candles), features.window, 5, rng)
        assert features_check(features, candles, cuts, rng).status == Status.OK, type(block).__name__


def test_rich_live_stays_equal_to_batch_over_a_long_session(shared_data: Path) -> None:
    """The running sums are summed afresh once per window, so rounding does not drift with time."""
    features = compose_config(["features=rich"]).features
    assert isinstance(features, IncrementalFeatures)
    candles = read_csv(shared_data / "btcusdt_1m_binanceus_20230301_20230321.csv.gz")  # with zero volumes
    live = features.live()
    rows = np.array([live.push(c) for c in candles.to_candles()])
    batch = features.batch(candles)
    np.testing.assert_allclose(
        rows[features.window - 1 :], batch[features.window - 1 :], rtol=0, atol=TOLERANCE
    )


def test_rich_preset() -> None:
    features = compose_config(["features=rich"]).features
    assert isinstance(features, ComposedFeatures) and features.name == "rich"
    assert 35 <= features.n_features == len(features.names) <= 45
    assert features.window == 61
    rows = features.batch(read_csv(SAMPLE_CSV)[:200])
    assert np.isnan(rows[:60]).all() and np.isfinite(rows[60:]).all()


def _rows(block: FeatureBlock, candles: CandleArray) -> np.ndarray:
    return ComposedFeatures([block]).batch(candles)


def _candles(
    close: list[float],
    open_: list[float] | None = None,
    high: list[float] | None = None,
    low: list[float] | None = None,
    volume: list[float] | None = None,
    start_ms: int = 0,
) -> CandleArray:
    c = np.array(close, dtype=float)
    o = np.array(open_, dtype=float) if open_ else c.copy()
    h = np.array(high, dtype=float) if high else np.maximum(o, c)
    lo = np.array(low, dtype=float) if low else np.minimum(o, c)
    v = np.array(volume, dtype=float) if volume else np.ones_like(c)
    starts = start_ms + MINUTE_MS * np.arange(len(c), dtype=np.int64)
    return CandleArray(starts, o, h, lo, c, v, v * c)


def test_returns_by_hand() -> None:
    rows = _rows(Returns(n=2), _candles([100, 110, 99]))
    np.testing.assert_allclose(rows[2], [np.log(99 / 110), np.log(110 / 100)], rtol=1e-12)
    assert np.isnan(rows[:2]).all()


def test_momentum_by_hand() -> None:
    close = [100, 101, 99, 102, 104]
    rows = _rows(Momentum(windows=[1, 3], vol_window=3), _candles(close))
    returns = np.diff(np.log(close))
    rv = np.sqrt(np.mean(returns[-3:] ** 2))
    mom3 = np.log(104 / 101)
    np.testing.assert_allclose(rows[4], [returns[-1], mom3, returns[-1] / rv, mom3 / (rv * np.sqrt(3))])
    assert np.isnan(rows[:3]).all()


def test_volatility_by_hand() -> None:
    close = [100, 101, 99, 102, 104]
    rows = _rows(Volatility(windows=[2, 4]), _candles(close))
    returns = np.diff(np.log(close))
    short, long = np.sqrt(np.mean(returns[-2:] ** 2)), np.sqrt(np.mean(returns**2))
    np.testing.assert_allclose(rows[4], [short, long, short / long])
    assert Volatility(windows=[2, 4]).names == ["vol_2", "vol_4", "vol_2_4"]
    flat = _rows(Volatility(windows=[2, 3]), _candles([5.0] * 5))
    np.testing.assert_array_equal(flat[4], [0.0, 0.0, 1.0])


def test_shape_by_hand() -> None:
    candles = _candles(close=[10, 11], open_=[10, 10], high=[12, 14], low=[9, 8])
    row = _rows(Shape(norm_window=2), candles)[1]
    raw = [6 / 11, 1 / 11, 3 / 11, 2 / 11, 1 / 6, (3 - 3) / 6]
    first = [3 / 10, 0.0, 2 / 10, 1 / 10, 0.0, (1 - 2) / 3]
    np.testing.assert_allclose(row[:6], raw)
    means = [(abs(a) + abs(b)) / 2 for a, b in zip(raw, first, strict=True)]
    expected = [r / m if m else 1.0 for r, m in zip(raw, means, strict=True)]
    np.testing.assert_allclose(row[6:], expected)
    assert np.isnan(_rows(Shape(norm_window=2), candles)[0]).all()


def test_volume_by_hand() -> None:
    volume = [1.0, 2.0, 3.0, 6.0]
    row = _rows(Volume(windows=[3], turnover=False), _candles([10] * 4, volume=volume))[3]
    last = np.array(volume[1:])
    np.testing.assert_allclose(row, [(6 - last.mean()) / last.std(), 6 / last.mean()])


def test_volume_without_turnover_is_one_line_naming_the_fix() -> None:
    candles = read_csv(SAMPLE_CSV)[:100]
    no_turnover = CandleArray(*candles._columns()[:6], np.full(100, np.nan))
    with pytest.raises(UserError, match="turnover: false") as caught:
        _rows(Volume(), no_turnover)
    assert "\n" not in str(caught.value)
    assert _rows(Volume(turnover=False), no_turnover).shape == (100, 4)


def test_trend_by_hand() -> None:
    candles = _candles(close=[10, 12, 11], high=[10, 13, 12], low=[9, 11, 10])
    row = _rows(Trend(ma_windows=[3], range_windows=[2]), candles)[2]
    np.testing.assert_allclose(row, [np.log(11 / 11), (11 - 10) / (13 - 10)])


def test_activity_by_hand() -> None:
    rows = _rows(Activity(windows=[2, 4]), _candles([5, 5, 6, 6, 7]))
    np.testing.assert_allclose(rows[4], [0.5, 0.5])
    assert np.isnan(rows[3]).all() and _rows(Activity(windows=[2]), _candles([5, 5, 6, 6, 7]))[3, 0] == 0.5


def test_calendar_on_known_timestamps() -> None:
    monday_six = parse_utc_ms("2025-06-02T06:00")  # a Monday, a quarter into the day
    sunday_noon = parse_utc_ms("2025-06-01T12:00")
    rows = _rows(Calendar(), _candles([1, 1], start_ms=0))  # 1970-01-01 was a Thursday (weekday 3)
    np.testing.assert_allclose(rows[0], [0, 1, np.sin(6 * np.pi / 7), np.cos(6 * np.pi / 7)], atol=1e-12)
    rows = _rows(
        Calendar(),
        CandleArray(np.array([sunday_noon, monday_six]), *[np.ones(2)] * 6),  # prices do not matter
    )
    np.testing.assert_allclose(rows[0], [0, -1, np.sin(12 * np.pi / 7), np.cos(12 * np.pi / 7)], atol=1e-12)
    np.testing.assert_allclose(rows[1], [1, 0, 0, 1], atol=1e-12)


def test_basic_keeps_its_fingerprint() -> None:
    """Models trained before the feature library must still load: basic's fingerprint is pinned."""
    assert BasicFeatures().fingerprint() == "426162d84313"
    assert type(compose_config([]).features) is BasicFeatures


def test_composed_fingerprint_follows_blocks_and_parameters() -> None:
    one = ComposedFeatures([Returns(n=2), Calendar()], name="a")
    assert one.fingerprint() == ComposedFeatures([Returns(n=2), Calendar()], name="b").fingerprint()
    assert one.fingerprint() != ComposedFeatures([Returns(n=3), Calendar()]).fingerprint()
    assert one.fingerprint() != ComposedFeatures([Calendar(), Returns(n=2)]).fingerprint()
    assert one.window == 3 and one.n_features == 6


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+features.blocks.rich.0.m=3",
            "unknown key 'features.blocks.rich[0].m'; allowed keys in 'features.blocks.rich[0]': n",
        ),
        ("features.blocks.rich.0.n=0", "features.blocks.rich[0].n=0 is not allowed"),
        ("features.blocks.rich.1.windows=[0,3]", "momentum.windows=[0, 3] is not allowed"),
        ("features.blocks.rich=[]", "lists no blocks"),
    ],
)
def test_block_config_mistakes_are_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        compose_config(["features=rich", override])
    assert "\n" not in str(caught.value)


def test_two_blocks_giving_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="'ret_0' comes from two blocks"):
        ComposedFeatures([Returns(n=1), Returns(n=2)])


def test_context_uses_the_last_bucket_closed_by_t() -> None:
    candles = read_csv(SAMPLE_CSV)[:300]
    assert candles.start_ms[0] % (15 * MINUTE_MS) == 0  # the sample starts on a 15m boundary
    block = Context(timeframe="15m", blocks=[Returns(n=1)])
    assert block.names == ["15m_ret_0"] and block.window == 2 * 15 + 14
    rows = _rows(block, candles)
    buckets_close = candles.close[14::15]  # close of each 15m bucket, at its last minute
    # minute 44 closes bucket 2: its return over bucket 1; minutes 45..58 still see it; 59 sees bucket 3
    expected = np.log(buckets_close[2] / buckets_close[1])
    np.testing.assert_allclose(rows[44:59, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(rows[43, 0], np.log(buckets_close[1] / buckets_close[0]), rtol=1e-12)
    assert np.isnan(rows[:43]).all()  # the worst case of where t falls in its bucket sets the window
    np.testing.assert_allclose(rows[59, 0], np.log(buckets_close[3] / buckets_close[2]), rtol=1e-12)


def test_context_needs_1m_candles() -> None:
    candles = read_csv(SAMPLE_CSV)[:300].with_timeframe("5m")
    with pytest.raises(UserError, match="timeframe=1m"):
        _rows(Context(timeframe="15m", blocks=[Returns(n=1)]), candles)


def test_blocks_nested_in_context_are_checked_like_any_part() -> None:
    shape = {"_target_": "forecaster.features.shape.Shape", "norm_window": "20"}
    node = {
        "_target_": "forecaster.features.composed.ComposedFeatures",
        "blocks": [
            {"_target_": "forecaster.features.context.Context", "timeframe": "15m", "blocks": [shape]}
        ],
    }
    features = build(node, "features")
    assert features.names[0] == "15m_range" and features.blocks[0].blocks[0].norm_window == 20
    node["blocks"][0]["blocks"] = [{**shape, "nrm": 3}]
    with pytest.raises(ConfigError, match=r"unknown key 'features.blocks\[0\].blocks\[0\].nrm'"):
        build(node, "features")
    node["blocks"][0]["blocks"] = [shape]
    node["blocks"][0]["timeframe"] = "7m"
    with pytest.raises(ConfigError, match="choose one of: 5m, 15m, 60m"):
        build(node, "features")
