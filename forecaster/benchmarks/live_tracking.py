"""What MLflow tracking costs a live session: process CPU per candle with tracking off and on.

The live path of forecaster.benchmarks.live (features -> model -> FLAT -> records) over synthetic
candles, with its tracker thread writing to nothing (tracking=off) or to a real SQLite store in a
temporary dir, at `live.metrics_every=1` (a point per candle, as before issue 14) and at the
default. CPU is the whole process's (every thread), up to the tracker's close, so metric writes
are counted however they are batched. Also the growth of the process's resident memory per 10k
candles once the first candles have settled caches and allocators, and the bytes a day of 1m
records costs to upload (append-only segments) against re-uploading the whole files each time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from forecaster.disk_space import MB

if TYPE_CHECKING:
    from forecaster.config import PathsConfig

CANDLES = 5_000
QUICK_CANDLES = 1_000
SETTLE = 0.2  # the first share of the candles is not counted in the memory growth
PAGE_BYTES = 4096
PER = 10_000  # memory growth is reported per this many candles
SET_KEYS = 27  # metric values of one point of a live session (predictor and stream), none coalesced
RUN_PARAMS = 106  # params of a live run (the flattened config)
WRITE_REPS = 30
DAY_CANDLES = 1440
DEDUPE_WINDOW = 500  # full before the memory is measured, so its growth is the steady state's


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
    from forecaster.tracking import MlflowTracking, NoTracking, NullTracker, metric_points

    every = [] if metrics_every is None else [f"live.metrics_every={metrics_every}"]
    config = compose_config(["tracking=off", f"sink.dedupe_window={DEDUPE_WINDOW}", *every])
    predictor = build_predictor(config, None)
    window = predictor.window.features.window
    history = synthetic_history(candles + window).to_candles()
    settle = int(candles * SETTLE)
    with tempfile.TemporaryDirectory() as tmp, RunRecords(config.sink, Path(tmp) / "run") as records:
        if tracked:
            store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
            tracking = MlflowTracking(uri=store)
            inner = tracking.open(config.paths)
            inner.start("bench", {}, {})
            # MLflow imports its metric and artefact code on first use: not a per-candle cost
            warm = Path(tmp) / "warm.txt"
            warm.write_text("warm\n")
            inner.log_points(metric_points({"warm": 0.0}, 0))
            inner.log_artifact(warm, "warm")
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
        recorded = sum(writer.path.stat().st_size for writer in records.writers())
    out = {
        "cpu_ms_per_candle": round(cpu * 1e3 / candles, 4),
        "rss_mb_per_10k_candles": round(grown / MB * PER / (candles - settle), 2),
    }
    if tracked:
        # one day of 1m records, uploaded append-only vs re-uploaded whole every upload_every
        day = recorded * DAY_CANDLES / candles
        uploads = DAY_CANDLES // config.live.upload_every
        out["upload_mb_per_day"] = round(tracker.uploaded_bytes * DAY_CANDLES / candles / MB, 3)
        out["records_mb_per_day"] = round(day / MB, 3)
        out["whole_files_mb_per_day"] = round(day * (uploads + 1) / 2 / MB, 3)
    return out


def write_costs(keys: int, params: int, lines: int, reps: int) -> dict[str, float]:
    """CPU ms of one metrics write (`keys` values, to a run with `params` params, as a live run has)
    and of one records sync (`lines` new lines in each of the three files), to a SQLite store."""
    from forecaster.live.uploads import RecordUploads
    from forecaster.tracking import MlflowTracking, metric_points

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        tracker = MlflowTracking(uri=f"sqlite:///{home / 'mlflow.db'}").open(_paths(home))
        tracker.start("bench", {f"param{i}": i for i in range(params)}, {})
        assert tracker.run_id is not None
        tracker.log_points(metric_points({"warm": 0.0}, 0))
        started = time.process_time()
        for step in range(reps):
            tracker.log_points(metric_points({f"key{i}": float(step) for i in range(keys)}, step))
        write_ms = (time.process_time() - started) * 1e3 / reps
        files = [home / f"records{i}.jsonl" for i in range(3)]
        uploads = RecordUploads(files, "records", home / "uploads.json")
        line = json.dumps({"candle_ts": 0, "p_up": 0.5, "p_down": 0.5, "direction": "FLAT"}) + "\n"
        started = time.process_time()
        for _ in range(reps):
            for path in files:
                with path.open("a") as handle:
                    handle.write(line * lines)
            uploads.sync(tracker.run_id, tracker.log_artifact, home / "scratch")
        sync_ms = (time.process_time() - started) * 1e3 / reps
    return {"metrics_write_ms": round(write_ms, 2), "records_sync_ms": round(sync_ms, 2)}


def _paths(home: Path) -> PathsConfig:
    from forecaster.config import compose_config

    return compose_config([f"paths.mlruns={home}"]).paths


def _fresh(call: str) -> dict[str, float]:
    code = f"import json, forecaster.benchmarks.live_tracking as b; print(json.dumps(b.{call}))"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict[str, object]:
    from forecaster.config import compose_config

    live = compose_config([]).live
    candles = QUICK_CANDLES if quick else CANDLES
    out: dict[str, object] = {"candles": candles}
    with tempfile.TemporaryDirectory() as cache:
        _fresh(f"measure(100, {cache!r}, None, False)")  # fills the compile cache for every variant
        variants = {"off": (None, False), "on_every_candle": (1, True), "on_default": (None, True)}
        for label, (every, tracked) in variants.items():
            out[label] = _fresh(f"measure({candles}, {cache!r}, {every!r}, {tracked!r})")
        base = out["off"]["cpu_ms_per_candle"]  # type: ignore[index]
        for label in variants:
            cost = out[label]["cpu_ms_per_candle"]  # type: ignore[index]
            out[label]["adds"] = f"{(cost / base - 1):+.0%}"  # type: ignore[index]
        costs = _fresh(f"write_costs({SET_KEYS}, {RUN_PARAMS}, {live.upload_every}, {WRITE_REPS})")
    # At one candle per minute each metrics write and each sync is its own call (nothing to batch):
    per_candle = costs["metrics_write_ms"] / live.metrics_every + costs["records_sync_ms"] / live.upload_every
    out["real_time"] = {
        **costs,
        "metrics_every": live.metrics_every,
        "upload_every": live.upload_every,
        "tracking_ms_per_candle": round(per_candle, 3),
        "adds": f"{per_candle / base:+.0%}",
    }
    return out
