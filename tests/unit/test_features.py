"""Feature set `basic`: batch and live agree, on real data; values match their definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forecaster.candles import CandleArray, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.features.basic import BasicFeatures
from forecaster.features.window import FeatureWindow


def _live_rows(features: BasicFeatures, candles: CandleArray) -> np.ndarray:
    window = FeatureWindow(features)
    rows = [window.push(c) for c in candles.to_candles()]
    assert all(r is None for r in rows[: features.window - 1])
    return np.array(rows[features.window - 1 :])


@pytest.mark.parametrize("features", [BasicFeatures(), BasicFeatures(n_returns=3, volume_window=5)])
def test_live_equals_batch_on_real_history(shared_data: Path, features: BasicFeatures) -> None:
    candles = read_csv(shared_data / "btcusdt_1m_bybit-linear_20250529_20250629.csv.gz")[:4000]
    batch = features.batch(candles)
    live = _live_rows(features, candles)
    np.testing.assert_allclose(live, batch[features.window - 1 :], rtol=1e-9, atol=0)
    assert np.isnan(batch[: features.window - 1]).all() and np.isfinite(batch[features.window - 1 :]).all()


def test_values_follow_their_definitions() -> None:
    candles = read_csv(SAMPLE_CSV)[:200]
    features = BasicFeatures(n_returns=4, volume_window=10)
    row = features.batch(candles)[150]
    c, o, h, lo, v = candles.close, candles.open, candles.high, candles.low, candles.volume
    expected_returns = [np.log(c[150 - k] / c[149 - k]) for k in range(4)]
    np.testing.assert_allclose(row[:4], expected_returns, rtol=1e-9)
    assert row[4] == pytest.approx((h[150] - lo[150]) / c[150], rel=1e-12)
    assert row[5] == pytest.approx((c[150] - o[150]) / c[150], rel=1e-12)
    window = v[141:151]
    assert row[6] == pytest.approx((v[150] - window.mean()) / window.std(), rel=1e-9)
    assert features.names == ["ret_0", "ret_1", "ret_2", "ret_3", "range", "body", "volume_z"]


def test_constant_volume_gives_zero_not_nan() -> None:
    candles = read_csv(SAMPLE_CSV)[:80]
    flat_volume = CandleArray(*candles._columns()[:5], np.full(80, 3.0), candles.turnover)
    z = BasicFeatures(n_returns=2, volume_window=5).batch(flat_volume)[4:, -1]
    assert (z == 0).all()


def test_fingerprint_changes_with_the_config() -> None:
    base = BasicFeatures()
    assert base.fingerprint() == BasicFeatures().fingerprint()
    assert base.fingerprint() != BasicFeatures(n_returns=8).fingerprint()
    assert base.n_features == len(base.names) == 19


def test_short_history_is_all_nan() -> None:
    candles = read_csv(SAMPLE_CSV)[:10]
    assert np.isnan(BasicFeatures(n_returns=16, volume_window=60).batch(candles)).all()
