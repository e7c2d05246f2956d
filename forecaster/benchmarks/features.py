"""Feature set `basic`: the batch path on a long history, and the live window one candle at a time."""

from __future__ import annotations

import time

from forecaster.benchmarks.candles import synthetic_history
from forecaster.features.basic import BasicFeatures
from forecaster.features.window import FeatureWindow

FULL_SIZE = 1_000_000
QUICK_SIZE = 100_000
REPEATS = 3
PUSHES = 5_000


def run(quick: bool) -> dict[str, object]:
    size = QUICK_SIZE if quick else FULL_SIZE
    features = BasicFeatures()
    history = synthetic_history(size)
    timings = []
    for _ in range(REPEATS):  # the first pass also pays for the first touch of the output pages
        started = time.perf_counter()
        features.batch(history)
        timings.append(time.perf_counter() - started)
    window = FeatureWindow(features)
    stream = history[: PUSHES + features.window].to_candles()
    for candle in stream[: features.window]:
        window.push(candle)
    started = time.perf_counter()
    for candle in stream[features.window :]:
        window.push(candle)
    push_us = (time.perf_counter() - started) / PUSHES * 1e6
    return {
        "candles": size,
        "features": features.n_features,
        "batch_s_best": round(min(timings), 4),
        "batch_s_first": round(timings[0], 4),
        "batch_candles_per_s": round(size / min(timings)),
        "live_window_us_per_candle": round(push_us, 2),
    }
