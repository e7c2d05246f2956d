"""The flow feature block: values from the bars, live equals batch (1m and 5m), the leak audit, holes
where a bar is incomplete, and a history without flow refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.candles import aggregate, read_csv
from forecaster.config import compose_config
from forecaster.data import SAMPLE_CSV
from forecaster.errors import UserError
from forecaster.features.composed import ComposedFeatures
from forecaster.features.flow import Flow
from forecaster.features.window import FeatureWindow
from forecaster.flow.bars import COLUMN
from tests.flow_synthetic import with_flow

TOLERANCE = 1e-9


def _live(features: ComposedFeatures, candles) -> np.ndarray:
    window = FeatureWindow(features)
    rows = [window.push(c) for c in candles.to_candles()]
    return np.array([np.full(features.n_features, np.nan) if r is None else r for r in rows])


@pytest.mark.parametrize("timeframe", ["1m", "5m"])
def test_live_equals_batch_with_incomplete_bars(timeframe: str) -> None:
    candles = with_flow(read_csv(SAMPLE_CSV)[:900])
    if timeframe != "1m":
        candles = aggregate(candles, timeframe).candles
    features = ComposedFeatures([Flow(windows=[3, 6])])
    batch = features.batch(candles)
    np.testing.assert_allclose(_live(features, candles), batch, rtol=0, atol=TOLERANCE)
    assert candles.flow is not None
    incomplete = np.flatnonzero(candles.flow[:, COLUMN["complete"]] == 0)
    assert len(incomplete) >= 2
    for i in incomplete[incomplete + features.window < len(candles)]:  # no row until the window passed it
        assert np.isnan(batch[i : i + features.window]).all()
        assert np.isfinite(batch[i + features.window]).all()


def test_values_come_from_the_bars() -> None:
    candles = with_flow(read_csv(SAMPLE_CSV)[:60])
    block = Flow(windows=[2, 4])
    rows = dict(zip(block.names, ComposedFeatures([block]).batch(candles).T, strict=True))
    flow, t = candles.flow, 40
    assert flow is not None and flow[t - 4 : t + 1, COLUMN["complete"]].all()
    bar = candles.candle(t).flow
    assert bar is not None
    mid = (bar.bid + bar.ask) / 2
    assert rows["flow_imb"][t] == pytest.approx(bar.imbalance)
    assert rows["spread_bps"][t] == pytest.approx(bar.spread_bps)
    assert rows["micro_bps"][t] == pytest.approx((bar.microprice - mid) / mid * 1e4)
    assert rows["book_imb_25"][t] == pytest.approx(bar.book_imb_25)
    buy, sell = flow[t - 1 : t + 1, COLUMN["buy_volume"]], flow[t - 1 : t + 1, COLUMN["sell_volume"]]
    assert rows["flow_imb_2"][t] == pytest.approx((buy - sell).sum() / (buy + sell).sum())
    volume = flow[t - 3 : t + 1, COLUMN["buy_volume"]] + flow[t - 3 : t + 1, COLUMN["sell_volume"]]
    assert rows["flow_volume_ratio_4"][t] == pytest.approx(volume[-1] / volume.mean())
    assert rows["book_imb_10_mean_4"][t] == pytest.approx(flow[t - 3 : t + 1, COLUMN["book_imb_10"]].mean())


def test_flow_combines_with_rich() -> None:  # the leak audit of rich+flow: tests/unit/test_feature_blocks.py
    features = compose_config(["features=[rich,flow]"]).features
    assert features.name == "rich+flow" and features.names[-1] == "spread_ratio_15"


def test_candles_without_flow_are_refused_in_one_line() -> None:
    candles = read_csv(SAMPLE_CSV)[:100]
    features = ComposedFeatures([Flow()])
    with pytest.raises(UserError, match="source=flow_store"):
        features.batch(candles)
    with pytest.raises(UserError, match="source=flow_store"):
        features.live().push(candles.candle(0))
