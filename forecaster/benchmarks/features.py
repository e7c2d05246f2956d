"""Feature presets `basic` and `rich`: the batch path on a long history, and the live window one
candle at a time (goals for rich on 2 cores: batch over 1M candles < 1 s, live < 50 us per candle)."""

from __future__ import annotations

import time

import numpy as np

from forecaster.benchmarks.candles import synthetic_history
from forecaster.candles import CandleArray
from forecaster.config import compose_config
from forecaster.features.base import FeatureSet
from forecaster.features.window import FeatureWindow

FULL_SIZE = 1_000_000
QUICK_SIZE = 100_000
REPEATS = 3
PUSHES = 5_000
PRESETS = ("basic", "rich")
TAIL_PERCENTILE = 99


def run(quick: bool) -> dict[str, object]:
    size = QUICK_SIZE if quick else FULL_SIZE
    history = synthetic_history(size)
    return {name: _preset(compose_config([f"features={name}"]).features, history) for name in PRESETS}


def _preset(features: FeatureSet, history: CandleArray) -> dict[str, object]:
    timings = []
    for _ in range(REPEATS):  # the first pass also pays for the first touch of the output pages
        started = time.perf_counter()
        features.batch(history)
        timings.append(time.perf_counter() - started)
    window = FeatureWindow(features)
    stream = history[: PUSHES + features.window].to_candles()
    for candle in stream[: features.window]:
        window.push(candle)
    pushes = []
    for candle in stream[features.window :]:
        started = time.perf_counter()
        window.push(candle)
        pushes.append(time.perf_counter() - started)
    return {
        "candles": len(history),
        "features": features.n_features,
        "batch_s_best": round(min(timings), 4),
        "batch_s_first": round(timings[0], 4),
        "batch_candles_per_s": round(len(history) / min(timings)),
        "live_window_us_per_candle": round(float(np.mean(pushes)) * 1e6, 2),
        f"live_window_us_p{TAIL_PERCENTILE}": round(float(np.percentile(pushes, TAIL_PERCENTILE)) * 1e6, 2),
    }
