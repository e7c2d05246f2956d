"""The live path per candle: receipt of a confirmed candle -> features -> model -> FLAT -> records written.

Measured in a fresh interpreter with the settings live mode uses (synchronous CPU dispatch, the
persistent compile cache), against the same path with a NumPy forward of the same weights swapped
in (the yardstick for JAX's dispatch overhead; the product keeps one Equinox code path). Cold start
is measured on the real command: launch of `python -m forecaster mode=live` to its first prediction.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from forecaster.benchmarks.candles import synthetic_history
from forecaster.benchmarks.model import numpy_forward

CANDLES = 10_000
QUICK_CANDLES = 1_000
PERCENTILES = (50, 99)
NS_PER_MS = 1e6
COLD_START_RUNS = 2  # the first fills JAX's persistent compile cache, the second uses it
COLD_START_TIMEOUT_S = 120


class NumpyModel:
    """Benchmark-only stand-in with the ProbabilityModel shape."""

    trained = False

    def __init__(self, forward) -> None:
        self.forward = forward

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]:
        p_up, p_down = self.forward(x)
        return p_up, p_down, 0.0


def measure(candles: int, cache_dir: str) -> dict[str, object]:
    """Per-candle latency of LiveSession.on_minute; run this in a fresh interpreter."""
    from forecaster import backend

    backend.configure_jax(cache_dir, sync_dispatch=True)
    from forecaster.config import Config, TrackingConfig
    from forecaster.modes.live import LiveSession
    from forecaster.predictor import build_predictor
    from forecaster.recording import RunRecords
    from forecaster.tracking import NullTracker

    config = Config(tracking=TrackingConfig(name="off"))
    out: dict[str, object] = {"candles": candles}
    for label in ("equinox", "numpy_forward"):
        predictor = build_predictor(config)
        if label == "numpy_forward":
            predictor.model = NumpyModel(numpy_forward(predictor.model.model))
        window = predictor.window.features.window
        history = synthetic_history(candles + window).to_candles()
        samples = np.empty(candles, dtype=np.int64)
        with tempfile.TemporaryDirectory() as tmp, RunRecords(config.sink, Path(tmp)) as records:
            session = LiveSession(config, predictor, records, NullTracker())
            session.warm_up(history[:window])
            with contextlib.redirect_stdout(io.StringIO()):
                for i, candle in enumerate(history[window:]):
                    received = time.perf_counter_ns()
                    session.on_minute(candle, received)
                    samples[i] = time.perf_counter_ns() - received
        out[label] = {f"p{q}_ms": round(float(np.percentile(samples, q)) / NS_PER_MS, 4) for q in PERCENTILES}
    equinox, yardstick = out["equinox"], out["numpy_forward"]
    out["ratio_p50"] = round(equinox["p50_ms"] / yardstick["p50_ms"], 2)  # type: ignore[index]
    return out


def cold_start(cache_dir: str) -> float:
    """Seconds from launching live mode (replay, no tracking) to its first prediction line."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "forecaster",
            "mode=live",
            "source=replay",
            "tracking=off",
            "live.max_candles=61",
            f"paths.jax_cache={cache_dir}",
        ]
        started = time.perf_counter()
        with subprocess.Popen(
            command, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "p_up=" in line:
                    elapsed = time.perf_counter() - started
                    break
            else:
                raise RuntimeError("live mode printed no prediction")
            proc.wait(COLD_START_TIMEOUT_S)
    return round(elapsed, 3)


def run(quick: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as cache:
        size = QUICK_CANDLES if quick else CANDLES
        code = (
            f"import json, forecaster.benchmarks.live as b; print(json.dumps(b.measure({size}, {cache!r})))"
        )
        answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out = json.loads(answer.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as cache:
        out["cold_start_to_first_prediction_s"] = [cold_start(cache) for _ in range(COLD_START_RUNS)]
    return out
