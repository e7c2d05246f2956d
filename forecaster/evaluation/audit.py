"""The leak audit: recompute on histories truncated or altered after random cut points and prove that
nothing at time t depends on data after t; check target alignment and the embargo between splits.

Each check is one `Check` line. The idea is freqtrade's lookahead / recursive analysis: a feature
computed with a centred window, a normalisation fitted on the future or a target off by one all
show up as a value at t that changes when the future changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from forecaster.candles import CandleArray, timeframe_ms
from forecaster.checks import Check, Status
from forecaster.facts import BPS
from forecaster.features.base import FeatureSet
from forecaster.features.window import FeatureWindow
from forecaster.predictor import Predictor
from forecaster.training.dataset import Dataset
from forecaster.training.splits import Split

# How the future is altered after a cut: prices scaled by up to this fraction, volumes multiplied.
PRICE_SHOCK = 0.1
VOLUME_SHOCK = 3.0
LIVE_BATCH_TOLERANCE = 1e-9


def cut_points(n: int, window: int, cuts: int, rng: np.random.Generator) -> list[int]:
    """Random candle indices t with a full window before them and some future after them."""
    low, high = window, n - 2
    if high <= low:
        return []
    return sorted(set(rng.integers(low, high, size=cuts).tolist()))


def altered_after(candles: CandleArray, t: int, rng: np.random.Generator) -> CandleArray:
    """The same history up to candle t; every later candle's prices, volume and flow changed."""
    n = len(candles)
    scale = np.ones(n)
    scale[t + 1 :] = rng.uniform(1 - PRICE_SHOCK, 1 + PRICE_SHOCK, n - t - 1)
    volume = np.where(np.arange(n) > t, candles.volume * VOLUME_SHOCK, candles.volume)
    flow = candles.flow
    if flow is not None:  # every flow value but `complete` (the last column) scaled like the prices
        flow = flow.copy()
        flow[t + 1 :, :-1] *= scale[t + 1 :, None]
    return replace(
        candles,
        open=candles.open * scale,
        high=candles.high * scale,
        low=candles.low * scale,
        close=candles.close * scale,
        volume=volume,
        flow=flow,
    )


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


def features_check(
    features: FeatureSet, candles: CandleArray, cuts: Sequence[int], rng: np.random.Generator
) -> Check:
    """Rows up to each cut are the same on the full history, the truncated one and an altered future."""
    name = f"features {features.name}: no look-ahead"
    full = features.batch(candles)
    for t in cuts:
        if not _same(features.batch(candles[: t + 1]), full[: t + 1]):
            return Check(
                name, Status.FAIL, f"rows up to candle {t} change when the candles after it are removed"
            )
        if not _same(features.batch(altered_after(candles, t, rng))[: t + 1], full[: t + 1]):
            return Check(name, Status.FAIL, f"rows up to candle {t} change when the candles after it change")
    return Check(name, Status.OK, f"{len(cuts)} cut points, future removed and altered")


def live_batch_check(features: FeatureSet, candles: CandleArray) -> Check:
    """The live window's row of each candle equals the batch row training used (to 1e-9)."""
    name = f"features {features.name}: live equals batch"
    batch = features.batch(candles)
    window = FeatureWindow(features)
    for i, candle in enumerate(candles.to_candles()):
        row = window.push(candle)
        if row is not None and not np.allclose(
            row, batch[i], rtol=0, atol=LIVE_BATCH_TOLERANCE, equal_nan=True
        ):
            return Check(name, Status.FAIL, f"candle {i}: the live row differs from the batch row")
    return Check(name, Status.OK, f"{len(candles)} candles")


def predictions_check(
    make_predictor: Callable[[], Predictor],
    candles: CandleArray,
    cuts: Sequence[int],
    rng: np.random.Generator,
) -> Check:
    """The live path's probabilities up to each cut do not depend on the candles after it."""
    name = "predictions: no look-ahead"

    def predict(history: CandleArray) -> dict[int, tuple[float, float]]:
        predictor = make_predictor()
        records = (predictor.on_candle(c) for c in history.to_candles())
        return {r.candle_ts: (r.p_up, r.p_down) for r in records if r is not None}

    full = predict(candles)
    for t in cuts:
        until = int(candles.start_ms[t])
        expected = {ts: p for ts, p in full.items() if ts <= until}
        for changed in (candles[: t + 1], altered_after(candles, t, rng)):
            got = {ts: p for ts, p in predict(changed).items() if ts <= until}
            if got != expected:
                return Check(
                    name, Status.FAIL, f"a prediction up to candle {t} changes with the candles after it"
                )
    return Check(
        name, Status.OK, f"{len(cuts)} cut points, future removed and altered, {len(full)} predictions"
    )


def target_check(data: Dataset, candles: CandleArray, threshold_bps: float) -> Check:
    """The target of row t is the move from close(t) to close(t+1), the very next candle."""
    name = "targets: row t is judged by the move of t+1"
    step = timeframe_ms(candles.timeframe)
    index = np.searchsorted(candles.start_ms, data.candle_ts)
    following = index + 1 < len(candles)
    nxt = np.minimum(index + 1, len(candles) - 1)
    consecutive = following & (candles.start_ms[nxt] == data.candle_ts + step)
    expected = np.log(candles.close[nxt] / candles.close[index])
    if not consecutive.all() or not np.allclose(data.next_ret, expected, rtol=0, atol=1e-12):
        return Check(name, Status.FAIL, "some row's target is not the next candle's move")
    thr = threshold_bps / BPS
    agree = (data.y[:, 0] == (data.next_ret > thr)) & (data.y[:, 1] == (data.next_ret < -thr))
    if not agree.all():
        return Check(name, Status.FAIL, "some row's up/down labels disagree with its next move")
    return Check(name, Status.OK, f"{len(data)} rows")


def embargo_check(data: Dataset, splits: Sequence[Split], window: int, timeframe: str) -> Check:
    """No training row's target candle falls in a later block's feature windows (nor validation's in
    test's), so neighbouring rows cannot carry a block's outcome into the one before it."""
    name = "splits: embargo between train, validation and test"
    step = timeframe_ms(timeframe)
    for k, split in enumerate(splits):
        blocks = [("train", split.train), ("validation", split.val), ("test", split.test)]
        for (early, a), (late, b) in itertools.pairwise(blocks):
            if a.stop <= a.start or b.stop <= b.start:
                continue
            last_target = int(data.candle_ts[a.stop - 1]) + step
            first_window = int(data.candle_ts[b.start]) - (window - 1) * step
            if last_target >= first_window:
                return Check(
                    name, Status.FAIL, f"fold {k}: the {early} targets reach into the {late} windows"
                )
    return Check(name, Status.OK, f"{len(splits)} fold(s)")
