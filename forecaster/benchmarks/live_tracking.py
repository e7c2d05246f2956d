"""What MLflow tracking costs a live session: process CPU per candle with tracking off and on.

The live path of forecaster.benchmarks.live (features -> model -> FLAT -> records) over synthetic
candles, with its tracker thread writing to nothing (tracking=off) or to a real SQLite store in a
temporary dir, at `live.metrics_every=1` (a point per candle, as before issue 14) and at the
default. CPU is the whole process's (every thread), up to the tracker's close, so metric writes
are counted however they are batched. Also the growth of the process's resident memory per 10k
candles once the first candles have settled caches and allocators.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDLES = 5_000
QUICK_CANDLES = 1_000
SETTLE = 0.2  # the first share of the candles is not counted in the memory growth
PAGE_BYTES = 4096
MB = 2**20
PER = 10_000  # memory growth is reported per this many candles


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_BYTES


def measure(candles: int, cache_dir: str, metrics_every: int | None, tracked: bool) -> dict[str, float]:
    """CPU ms per candle and RSS growth of one variant; run in a fresh interpreter."""
    import contextlib
    import io

    from forecaster import backend

    backend.configure_jax(cache_dir, sync_dispatch=True)
    from forecaster.benchmarks.candles import synthetic_history
    from forecaster.benchmarks.live import _handle, _session
    from forecaster.config import compose_config
    from forecaster.live.background import BackgroundTracker
    from forecaster.predictor import build_predictor
    from forecaster.recording import RunRecords
    from forecaster.tracking import MlflowTracking, NoTracking, NullTracker

    every = [] if metrics_every is None else [f"live.metrics_every={metrics_every}"]
    config = compose_config(["tracking=off", *every])
    predictor = build_predictor(config, None)
    window = predictor.window.features.window
    history = synthetic_history(candles + window).to_candles()
    settle = int(candles * SETTLE)
    with tempfile.TemporaryDirectory() as tmp, RunRecords(config.sink, Path(tmp) / "run") as records:
        if tracked:
            tracking = MlflowTracking()
            store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
            inner = MlflowTracking(uri=store).open(config.paths)
            inner.start("bench", {}, {})
            tracker = BackgroundTracker(inner, tracking.buffering(), store)
        else:
            tracker = BackgroundTracker(NullTracker(), NoTracking().buffering(), NoTracking.name)
        session = _session("", predictor, config, records, tracker)
        session.loop.warm_up(history[:window])
        with contextlib.redirect_stdout(io.StringIO()):
            started, settled = time.process_time(), _rss_bytes()
            for i, candle in enumerate(history[window:]):
                if i == settle:
                    settled = _rss_bytes()
                _handle(session, candle, time.perf_counter_ns())
            tracker.close("FINISHED")
            cpu = time.process_time() - started
        grown = _rss_bytes() - settled
    return {
        "cpu_ms_per_candle": round(cpu * 1e3 / candles, 4),
        "rss_mb_per_10k_candles": round(grown / MB * PER / (candles - settle), 2),
    }


def _fresh(call: str) -> dict[str, float]:
    code = f"import json, forecaster.benchmarks.live_tracking as b; print(json.dumps(b.{call}))"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict[str, object]:
    candles = QUICK_CANDLES if quick else CANDLES
    out: dict[str, object] = {"candles": candles}
    with tempfile.TemporaryDirectory() as cache:
        _fresh(f"measure(100, {cache!r}, None, False)")  # fills the compile cache for every variant
        variants = {
            "off": (None, False),
            "on_every_candle": (1, True),
            "on_default": (None, True),
            "on_every_60": (60, True),
        }
        for label, (every, tracked) in variants.items():
            out[label] = _fresh(f"measure({candles}, {cache!r}, {every!r}, {tracked!r})")
    base = out["off"]["cpu_ms_per_candle"]  # type: ignore[index]
    for label in ("on_every_candle", "on_default", "on_every_60"):
        cost = out[label]["cpu_ms_per_candle"]  # type: ignore[index]
        out[f"{label}_adds"] = f"{(cost / base - 1):+.0%}"
    return out
