"""The live path per candle: receipt of a confirmed candle -> features -> model -> FLAT -> records written.

Measured in a fresh interpreter with the settings live mode uses (synchronous CPU dispatch, the
persistent compile cache), against the same path with a NumPy forward of the same weights swapped
in (the yardstick for JAX's dispatch overhead; the product keeps one Equinox code path). Cold start
is measured on the real command: launch of `python -m forecaster mode=live` to its first prediction.
`rich_twohead`: the same path with features=rich (42 inputs from the incremental feature blocks).
`gbm` and `rich_gbm`: the same path with model=gbm (LightGBM boosters fitted on synthetic history,
saved and loaded as mode=train and mode=live do), on the basic and the rich features.
`flow_gbm`: model=gbm with features=[rich,flow] and, beside it, features=rich, both on candles
carrying the emulator's flow bars (forecaster/benchmarks/flow_bars.py): what the flow block adds.

`many_predictors`: one LiveSession per entry of `live.predictors` (32-member ensembles at 1m, 5m,
15m and 60m), the time from receipt of a 1m candle until every predictor it closes a candle for
has written its records; `all_close` keeps only the minutes that close a candle of every timeframe
(the top of each hour), the worst case the 2 ms target is about. Each predictor makes its own
model call: stacking the four ensembles' weights into one vmapped call was measured 15% faster on
the bare call (0.066 vs 0.077 ms for four) but no longer bit-equal to a predictor run alone.
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
from typing import TYPE_CHECKING

import numpy as np

from forecaster.benchmarks.candles import synthetic_history
from forecaster.benchmarks.flow_bars import with_emulated_flow
from forecaster.benchmarks.model import numpy_forward
from forecaster.predictor import NS_PER_MS

if TYPE_CHECKING:
    from forecaster.candles import Candle, CandleArray
    from forecaster.config import Config
    from forecaster.live.background import BackgroundTracker
    from forecaster.live.runner import Session
    from forecaster.predictor import Predictor
    from forecaster.recording import RunRecords

CANDLES = 10_000
QUICK_CANDLES = 1_000
PERCENTILES = (50, 99)
COLD_START_RUNS = 2  # the first fills JAX's persistent compile cache, the second uses it
COLD_START_TIMEOUT_S = 120
MANY_TIMEFRAMES = ("1m", "5m", "15m", "60m")
MANY_MEMBERS = 32
HOURS = 500  # top-of-the-hour minutes measured (every predictor closes a candle there)
QUICK_HOURS = 20
GBM_TRAIN_CANDLES = 20_000  # model=gbm's history: enough rows for its trees, quick to fit
GBM_TRAIN_SHARE = 0.8  # the rest is its validation block
FLOW_TRAIN_CANDLES = 5_000  # the emulator's flow costs about 0.5 ms a candle to generate


class NumpyModel:
    """Benchmark-only stand-in with the RowPredictor shape."""

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
    from forecaster.config import compose_config
    from forecaster.models.inference import CompiledModel
    from forecaster.models.network import TwoHeadNet
    from forecaster.predictor import build_predictor

    config = compose_config(["tracking=off"])
    out: dict[str, object] = {"candles": candles}
    for label in ("equinox", "numpy_forward"):
        predictor = build_predictor(config, None)
        if label == "numpy_forward":
            assert isinstance(predictor.model, CompiledModel) and isinstance(
                predictor.model.model, TwoHeadNet
            )
            predictor.model = NumpyModel(numpy_forward(predictor.model.model))
        out[label] = _percentiles(_per_candle(predictor, config, candles))
    rich = compose_config(["tracking=off", "features=rich"])
    out["rich_twohead"] = _percentiles(_per_candle(build_predictor(rich, None), rich, candles))
    for label, features in (("gbm", "basic"), ("rich_gbm", "rich")):
        gbm = compose_config(["tracking=off", "model=gbm", f"features={features}"])
        out[label] = _gbm_per_candle(gbm, synthetic_history(GBM_TRAIN_CANDLES), candles, flow=False)
    out["flow_gbm"] = {
        label: _gbm_per_candle(
            compose_config(["tracking=off", "model=gbm", f"features={features}"]),
            with_emulated_flow(synthetic_history(FLOW_TRAIN_CANDLES)),
            candles,
            flow=True,
        )
        for label, features in (("rich", "rich"), ("rich_flow", "[rich,flow]"))
    }
    equinox, yardstick = out["equinox"], out["numpy_forward"]
    out["ratio_p50"] = round(equinox["p50_ms"] / yardstick["p50_ms"], 2)  # type: ignore[index]
    return out


def _gbm_per_candle(config: Config, train: CandleArray, candles: int, flow: bool) -> dict[str, float]:
    """model=gbm fitted on `train`, then its live path's percentiles over `candles` candles."""
    from forecaster.predictor import build_predictor

    with tempfile.TemporaryDirectory() as tmp:
        predictor = build_predictor(config, _trained_gbm(config, train, Path(tmp)))
        samples = _per_candle(predictor, config, candles, flow)
    predicted = predictor.metrics()["predictor_predictions"]
    if predicted < candles:  # a skipped row (a missing feature) would time a shorter path
        raise RuntimeError(f"{config.features.name}: {predicted:.0f} predictions from {candles} candles")
    return _percentiles(samples)


def _per_candle(predictor: Predictor, config: Config, candles: int, flow: bool = False) -> np.ndarray:
    """Nanoseconds from receipt to records written, for each of `candles` synthetic candles (carrying
    the emulator's flow bars with `flow`)."""
    from forecaster.recording import RunRecords

    window = predictor.window.features.window
    history = synthetic_history(candles + window)
    history = (with_emulated_flow(history) if flow else history).to_candles()
    samples = np.empty(candles, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp, RunRecords(config.sink, Path(tmp)) as records:
        session = _session("", predictor, config, records)
        session.loop.warm_up(history[:window])
        with contextlib.redirect_stdout(io.StringIO()):
            for i, candle in enumerate(history[window:]):
                received = time.perf_counter_ns()
                _handle(session, candle, received)
                samples[i] = time.perf_counter_ns() - received
    return samples


def _trained_gbm(config: Config, history: CandleArray, folder: Path) -> Path:
    """model=gbm fitted on `history` (as mode=train fits it) and saved in `folder`."""
    from forecaster.models.card import ModelCard
    from forecaster.training.dataset import make_dataset

    features = config.features
    data = make_dataset(history, features, config.train.threshold_bps)
    cut = int(len(data) * GBM_TRAIN_SHARE)
    fitted = config.model.fit(data[:cut], data[cut:], config.train, config.seed)
    card = ModelCard(
        config.model.spec(features.n_features, config.seed),
        trained=True,
        feature_set=features.name,
        feature_fingerprint=features.fingerprint(),
        timeframe=config.timeframe.name,
    )
    return fitted.save(folder / "gbm", card)


def _session(
    name: str,
    predictor: Predictor,
    config: Config,
    records: RunRecords,
    tracker: BackgroundTracker | None = None,
) -> Session:
    """A live session's loop and sinks as mode=live builds them; tracking off unless `tracker`."""
    from forecaster.disk_space import DiskFloor
    from forecaster.live.background import BackgroundTracker
    from forecaster.live.loop import PredictorLoop
    from forecaster.live.runner import Session
    from forecaster.live.session_state import SessionState, Steps
    from forecaster.live.sinks import ConsoleSink, RecordsSink, TrackerSink
    from forecaster.live.uploads import RecordUploads
    from forecaster.tracking import NoTracking, NullTracker

    run_dir = records.candles.path.parent
    if tracker is None:
        tracker = BackgroundTracker(NullTracker(), NoTracking().buffering(), NoTracking.name)
    files = RecordUploads([writer.path for writer in records.writers()], "records", run_dir / ".uploads")
    uploads = TrackerSink(tracker, files, Steps(SessionState(), run_dir), name, config.live)
    floor = DiskFloor(run_dir, config.live.min_free_mb, config.live.disk_check_s)
    return Session(
        PredictorLoop(name, predictor, config.live), [RecordsSink(records, floor), ConsoleSink(), uploads]
    )


def _handle(session: Session, minute: Candle, received_ns: int) -> None:
    """One minute through the loop and its sinks: what the runner does per session."""
    event = session.loop.on_minute(minute, received_ns)
    if event is not None:
        for sink in session.sinks:
            sink.handle(event)


def _percentiles(samples_ns: np.ndarray) -> dict[str, float]:
    return {f"p{q}_ms": round(float(np.percentile(samples_ns, q)) / NS_PER_MS, 4) for q in PERCENTILES}


def measure_many(hours: int, cache_dir: str) -> dict[str, object]:
    """Per-minute latency of every LiveSession of a multi-predictor run; run in a fresh interpreter."""
    from forecaster import backend

    backend.configure_jax(cache_dir, sync_dispatch=True)
    from forecaster.candles import MINUTE_MS, aggregate, timeframe_ms
    from forecaster.config import compose_config
    from forecaster.modes.live import predictor_configs
    from forecaster.predictor import build_predictor
    from forecaster.recording import RunRecords

    entries = ", ".join(
        f"{{model: ensemble, timeframe: {tf}, members: {MANY_MEMBERS}}}" for tf in MANY_TIMEFRAMES
    )
    config = compose_config(["tracking=off", f"live.predictors=[{entries}]"])
    hour = timeframe_ms(MANY_TIMEFRAMES[-1])
    warm_minutes = config.features.window * hour // MINUTE_MS
    # the first hour is not measured: caches and allocators settle (compiling happens in warm_up)
    history = synthetic_history(warm_minutes + (hours + 1) * hour // MINUTE_MS)
    minutes = history[warm_minutes:].to_candles()
    samples = np.empty(len(minutes), dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        sessions = []
        for name, each in predictor_configs(config).items():
            records = stack.enter_context(RunRecords(config.sink, Path(tmp) / name))
            session = _session(name, build_predictor(each, None), config, records)
            session.loop.warm_up(aggregate(history[:warm_minutes], each.timeframe.name).candles.to_candles())
            sessions.append(session)
        with contextlib.redirect_stdout(io.StringIO()):
            for i, minute in enumerate(minutes):
                received = time.perf_counter_ns()
                for session in sessions:
                    _handle(session, minute, received)
                samples[i] = time.perf_counter_ns() - received
    measured = slice(hour // MINUTE_MS, None)
    samples = samples[measured]
    top = np.array([(m.start_ms + MINUTE_MS) % hour == 0 for m in minutes[measured]])
    predictions = {s.loop.name: s.loop.predictor.metrics()["predictor_predictions"] for s in sessions}
    if min(predictions.values()) < hours:
        raise RuntimeError(f"every predictor should predict each of {hours} hours, got {predictions}")
    return {
        "predictors": [s.loop.name for s in sessions],
        "members": MANY_MEMBERS,
        "minutes": len(samples),
        "per_minute": _percentiles(samples),
        "all_close": {"minutes": int(top.sum()), **_percentiles(samples[top])},
    }


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


def _fresh(call: str) -> dict[str, object]:
    """`forecaster.benchmarks.live.<call>` in a fresh interpreter (no compile or import left warm)."""
    code = f"import json, forecaster.benchmarks.live as b; print(json.dumps(b.{call}))"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as cache:
        out = _fresh(f"measure({QUICK_CANDLES if quick else CANDLES}, {cache!r})")
    with tempfile.TemporaryDirectory() as cache:
        out["many_predictors"] = _fresh(f"measure_many({QUICK_HOURS if quick else HOURS}, {cache!r})")
    with tempfile.TemporaryDirectory() as cache:
        out["cold_start_to_first_prediction_s"] = [cold_start(cache) for _ in range(COLD_START_RUNS)]
    return out
