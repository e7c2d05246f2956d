"""mode=live: stream -> predict -> record, until Ctrl-C / SIGTERM or `live.max_candles`.

Confirmed 1m candles come from the source (Bybit's WebSocket with REST warm-up and gap backfill,
or a replayed file); higher timeframes are aggregated from them on UTC boundaries. Every candle is
recorded, predicted, and settles the previous prediction; one console line says so. A signal
finishes the current candle, flushes the records, closes the MLflow run as KILLED and exits 0.

`live.predictors` runs several predictors (model x timeframe x FLAT rule) off one connection and
one 1m stream: each has its own loop, records (in `<run dir>/<name>/`), scoreboard and metrics
(prefixed `<name>/` in the session's one MLflow run). With the list empty the run's own
model/timeframe/flat is the one predictor, recorded at the top of the run dir. A combining entry
(model=combiner) runs after the members it names and is fed their predictions as they are made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from forecaster import backend
from forecaster.config import Config, check_predictors
from forecaster.disk_space import DiskFloor
from forecaster.features.base import reads_flow
from forecaster.flat import describe
from forecaster.live.background import BackgroundTracker
from forecaster.live.grown import GROWN_DIR, GrownSaver, grown_weights
from forecaster.live.loop import PredictorLoop
from forecaster.live.runner import FAILED, Session, run_sessions, summary_line
from forecaster.live.session_state import SessionState, Steps
from forecaster.live.shutdown import ShutdownGuard
from forecaster.live.sinks import ConsoleSink, MemberFeed, RecordsSink, Sink, TrackerSink
from forecaster.live.uploads import UPLOADS_STATE, RecordUploads
from forecaster.models.base import Combining, Remembering
from forecaster.modes.base import RunResult
from forecaster.predictor import CandlePredictor, CombiningPredictor, Predictor, build_predictor
from forecaster.recording import RunRecords
from forecaster.registry import weights_path
from forecaster.run_labels import flatten, run_tags
from forecaster.run_lock import RunLock
from forecaster.tracking import RECORDS_ARTIFACT, Tracker

log = logging.getLogger(__name__)
# said once at the start, before the first console line
CONSOLE_LINE = "p_up and p_down come from two heads (an up move; a down move) and need not sum to 1; "
# A restart in the run dir resumes its MLflow run unless one of these changed: it is another session.
PINNED_PARAMS = ("model.", "timeframe.", "features.", "flat.", "predictor.", "live.predictors")


def predictor_configs(config: Config) -> dict[str, Config]:
    """Name -> the full config of each predictor, combiners last; {"": config} without live.predictors."""
    if not config.live.predictors:
        return {"": config}
    configs = check_predictors(config)
    return dict(sorted(configs.items(), key=lambda item: isinstance(item[1].model, Combining)))


def build_predictors(
    configs: dict[str, Config], run_dir: Path
) -> tuple[dict[str, CandlePredictor], dict[str, list[CombiningPredictor]]]:
    """Each predictor by name, and the combiners that each member feeds."""
    predictors: dict[str, CandlePredictor] = {}
    feeds: dict[str, list[CombiningPredictor]] = {}
    for name, each in configs.items():
        if isinstance(each.model, Combining):
            members = each.model.members(name, each.timeframe.name, configs)
            combiner = each.model.combined(each, members, run_dir / name)
            for member in members:
                feeds.setdefault(member, []).append(combiner)
            predictors[name] = combiner
        else:
            predictors[name] = build_predictor(each, _weights(each, run_dir / name))
    return predictors, feeds


def _params(config: Config, configs: dict[str, Config]) -> dict[str, object]:
    params = flatten(asdict(config))
    if "" not in configs:
        for name, each in configs.items():
            resolved = {
                "model": asdict(each.model),
                "flat": asdict(each.flat),
                "timeframe": each.timeframe.name,
            }
            params.update(flatten(resolved, f"predictor.{name}."))
    return params


@dataclass(frozen=True)
class Live:
    name: str = "live"

    def run(self, config: Config, run_dir: Path) -> RunResult:
        with RunLock(run_dir, self.name):
            return self._run(config, run_dir)

    def _run(self, config: Config, run_dir: Path) -> RunResult:
        floor = DiskFloor(run_dir, config.live.min_free_mb, config.live.disk_check_s)
        floor.check()
        config.tracking.check_reachable(config.paths)
        backend.configure_jax(config.paths.jax_cache, sync_dispatch=True)
        configs = predictor_configs(config)
        predictors, feeds = build_predictors(configs, run_dir)
        for name, predictor in predictors.items():
            log.info("%s%s", f"{name}: " if name else "", CONSOLE_LINE + describe(predictor.rule))
        store = config.tracking.store_uri(config.paths)
        state = SessionState.load(run_dir)
        tracker = config.tracking.open(config.paths)
        _open_run(tracker, state, store, config, configs, run_dir)
        background = BackgroundTracker(tracker, config.tracking.buffering(), store)
        steps = Steps(state, run_dir)
        guard = ShutdownGuard(config.live.shutdown_timeout_s)
        console = ConsoleSink()
        status = FAILED
        with contextlib.ExitStack() as stack:
            sessions: list[Session] = []
            uploaders: list[Sink] = []  # closed before the tracker: their last uploads
            flowing = False  # a predictor reads order flow: the stream's minutes get their flow bars
            try:
                for name, predictor in predictors.items():
                    flow = isinstance(predictor, Predictor) and reads_flow(predictor.window.features)
                    flowing |= flow
                    records = stack.enter_context(RunRecords(config.sink, run_dir / name, flow))
                    loop = PredictorLoop(name, predictor, config.live, records.candles.last_key)
                    files = [writer.path for writer in records.writers()]
                    folder = f"{RECORDS_ARTIFACT}/{name}" if name else RECORDS_ARTIFACT
                    uploads = RecordUploads(files, folder, run_dir / name / UPLOADS_STATE)
                    sinks: list[Sink] = [RecordsSink(records, floor), console]
                    sinks.append(TrackerSink(background, uploads, steps, name, config.live))
                    if isinstance(predictor, Predictor) and isinstance(predictor.model, Remembering):
                        grown = f"{name}/{GROWN_DIR}" if name else GROWN_DIR
                        sinks.append(GrownSaver(predictor.model, run_dir / grown, background, grown))
                    uploaders += sinks[2:]
                    if name in feeds:
                        sinks.append(MemberFeed(feeds[name]))
                    sessions.append(Session(loop, sinks))
                status = asyncio.run(
                    run_sessions(config, sessions, background, steps, guard.signalled, flowing)
                )
            finally:
                with guard.absorbing():
                    for uploader in uploaders:
                        uploader.close()
                    background.close(status)
                    for session in sessions:
                        log.info("%s", summary_line(session.loop))
                    log.info("records in %s; %s", run_dir, tracker.describe())
        return RunResult()


def _weights(config: Config, records: Path) -> Path | None:
    """The model a previous session in this records folder grew (model=memory), else the configured one."""
    grown = grown_weights(records)
    if grown is None:
        return weights_path(config.model, config.tracking, config.paths)
    log.info("resuming the memory this run dir grew: %s (instead of model.path / model.uri)", grown)
    return grown


def _open_run(
    tracker: Tracker,
    state: SessionState,
    store: str,
    config: Config,
    configs: dict[str, Config],
    run_dir: Path,
) -> None:
    """Resume the run dir's MLflow run, or start one; either way the run dir remembers it."""
    params = _params(config, configs)
    previous = state.run_to_resume(store)
    why = tracker.resume(previous, params, PINNED_PARAMS) if previous else None
    if previous is None or why is not None:
        if why is not None:
            log.info("starting a new MLflow run: %s", why)
        single = f"live-{config.model.name}-{config.timeframe.name}"
        run_name = single if "" in configs else f"live-{len(configs)}-predictors"
        tracker.start(run_name, params, run_tags(config, run_dir))
    if tracker.run_id is not None:
        state.store, state.run_id = store, tracker.run_id
        state.save(run_dir)
