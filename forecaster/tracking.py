"""Experiment tracking: MLflow when `tracking=mlflow` (MlflowTracking), nothing with `tracking=off`.

MLflow is imported only when tracking is on (the import alone costs over a second). The default
store keeps everything in one ignored directory: `sqlite:///<paths.mlruns>/mlflow.db` with
artefacts in `<paths.mlruns>/artifacts` (MLflow's file store now refuses to run, and its own
default would scatter `mlflow.db` into whatever directory the command started in). Metrics are
buffered and written in batches: on SQLite every write is one transaction of about 5 ms.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol
from urllib.parse import urlsplit

from forecaster.checks import Check, Status
from forecaster.errors import UserError
from forecaster.reachability import probe
from forecaster.run_labels import sweep_run_name
from forecaster.schema import bounded

if TYPE_CHECKING:
    from forecaster.config import PathsConfig

log = logging.getLogger(__name__)

# MLflow's own batch limits (log_batch accepts at most 1000 metrics and 100 params per call).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")
MODEL_ARTIFACT = "model"
RECORDS_ARTIFACT = "records"
ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
SQLITE_PREFIX = "sqlite:///"
STORE_CHECK = "MLflow store usable"
SERVER_SCHEMES = ("http", "https")  # a tracking server; any other store is a local database or folder
SESSIONS_TAG = "forecaster.sessions"  # sessions of a live run (restarts in its run dir resume it)
END_REASON_TAG = "forecaster.end_reason"


class MetricPoint(NamedTuple):
    """One metric value, in the order of MLflow's Metric(key, value, timestamp, step)."""

    key: str
    value: float
    timestamp_ms: int
    step: int


def metric_points(metrics: Mapping[str, float], step: int) -> list[MetricPoint]:
    now = int(time.time() * 1000)
    return [MetricPoint(key, float(value), now, step) for key, value in metrics.items()]


class Tracker(Protocol):
    run_id: str | None  # the open run; None before start / after finish, and with tracking off

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None: ...
    def resume(self, run_id: str, params: Mapping[str, Any], pinned: tuple[str, ...]) -> str | None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_points(self, points: Sequence[MetricPoint]) -> None: ...
    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None: ...
    def register_model(
        self, model_dir: Path, name: str, tags: Mapping[str, str], description: str
    ) -> str | None: ...
    def finish(self, status: str = "FINISHED") -> None: ...
    def describe(self) -> str: ...


class TrackingBackend(Protocol):
    """What a tracking option builds: trackers for runs, and the store that models and records come from."""

    name: str
    writes: ClassVar[
        bool
    ]  # False: nothing is written to the store (runs, registry, aliases); reads still work

    def open(self, paths: PathsConfig) -> Tracker: ...
    def check_reachable(self, paths: PathsConfig) -> None: ...
    def store_uri(self, paths: PathsConfig) -> str: ...
    def check(self, paths: PathsConfig) -> Check: ...
    def buffering(self) -> Buffering: ...


@dataclass(frozen=True)
class Buffering:
    """How a live session's tracker thread writes (forecaster.live.background); conf/tracking/mlflow.yaml."""

    flush_s: float = 5.0
    buffer_points: int = 100_000
    shutdown_timeout_s: float = 20.0
    retry_max_s: float = 60.0


class NullTracker:
    """tracking=off: every call is accepted and nothing is stored."""

    run_id: str | None = None

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        pass

    def resume(self, run_id: str, params: Mapping[str, Any], pinned: tuple[str, ...]) -> str | None:
        return "tracking is off"

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_points(self, points: Sequence[MetricPoint]) -> None:
        pass

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        pass

    def register_model(
        self, model_dir: Path, name: str, tags: Mapping[str, str], description: str
    ) -> str | None:
        return None

    def finish(self, status: str = "FINISHED") -> None:
        pass

    def describe(self) -> str:
        return "tracking off"


def mlflow_client(uri: str) -> Any:
    """MLflow's client for one store. MLflow is imported only here (over a second) and told first
    not to phone home and not to announce its store migrations."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # nor to print "🏃 View run ... at: http://..." to stdout as a run on a tracking server ends:
    # the results are printed by the mode itself, and `make ui` shows every run
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # urllib3 logs every HTTP retry; a tracker that is down is reported once per outage instead
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class MlflowTracker:
    """One MLflow run at a time, through an explicit client (no global MLflow state)."""

    def __init__(self, uri: str, experiment: str, artifact_root: Path | None, metrics_batch: int) -> None:
        self.uri = uri
        with _store_lock(uri):
            self.client = mlflow_client(uri)
            self.experiment_id = self._experiment_id(experiment, artifact_root)
        self.metrics_batch = metrics_batch
        self.run_id: str | None = None
        self._pending: list[MetricPoint] = []

    def _experiment_id(self, name: str, artifact_root: Path | None) -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.search_registered_models(max_results=1)  # opens (and migrates) the registry store
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            location = artifact_root.resolve().as_uri() if artifact_root else None
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except MlflowException as exc:  # another job of a sweep created it a moment ago
                if (
                    exc.error_code != ALREADY_EXISTS
                    or (found := self.client.get_experiment_by_name(name)) is None
                ):
                    raise
                return found.experiment_id
        except Exception as exc:
            raise UserError(
                f"MLflow store {self.uri} is not usable ({str(exc).splitlines()[0]}); "
                "fix tracking.uri / paths.mlruns or run with tracking=off"
            ) from exc

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        try:
            run = self.client.create_run(
                self.experiment_id, run_name=sweep_run_name(run_name), tags=dict(tags)
            )
            self.run_id = run.info.run_id
            self._log_params(params)
        except Exception as exc:  # a server that went away since the store was opened, a locked db
            raise UserError(
                f"MLflow store {self.uri} did not take a new run ({str(exc).splitlines()[0]}); "
                "check that it is up or run with tracking=off"
            ) from exc

    def _log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for first in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[first : first + MAX_PARAMS_PER_BATCH])

    def resume(self, run_id: str, params: Mapping[str, Any], pinned: tuple[str, ...]) -> str | None:
        """Reopen `run_id` (a restart in the same run dir); None when resumed, else why it cannot be.

        A run whose params under the `pinned` prefixes differ (another model, say) is not resumed:
        its metrics would mix two different sessions. A dead RUNNING one is then marked FAILED with
        that reason, so no run is left RUNNING. Other params keep their first values (MLflow never
        changes a logged param); the new ones are added.
        """
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            return f"MLflow run {run_id} is not in {self.uri} ({str(exc).splitlines()[0]})"
        if run.info.lifecycle_stage != "active" or run.info.experiment_id != self.experiment_id:
            return f"MLflow run {run_id} is deleted or in another experiment"
        logged = run.data.params
        new = {key: str(value) for key, value in params.items()}
        changed = sorted(k for k in new.keys() & logged.keys() if new[k] != logged[k])
        moved = [key for key in changed if key.startswith(pinned)]
        if moved:
            reason = f"the session changed ({', '.join(f'{k}: {logged[k]} -> {new[k]}' for k in moved[:3])})"
            if run.info.status == "RUNNING":
                self.client.set_tag(run_id, END_REASON_TAG, f"not resumable: {reason}")
                self.client.set_terminated(run_id, status="FAILED")
            return reason
        if changed:
            log.info(
                "params kept at the run's first values (MLflow never changes one): %s", ", ".join(changed)
            )
        self.client.update_run(run_id, status="RUNNING")
        sessions = int(run.data.tags.get(SESSIONS_TAG, "1")) + 1
        self.client.set_tag(run_id, SESSIONS_TAG, str(sessions))
        self.run_id = run_id
        self._log_params({key: new[key] for key in new.keys() - logged.keys()})
        log.info(
            "resuming MLflow run %s (session %d; it was %s%s)",
            run_id,
            sessions,
            run.info.status,
            ": its process had died" if run.info.status == "RUNNING" else "",
        )
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._pending.extend(metric_points(metrics, step))
        if len(self._pending) >= self.metrics_batch:
            self.flush()

    def flush(self) -> None:
        self.log_points(self._pending)
        self._pending = []

    def log_points(self, points: Sequence[MetricPoint]) -> None:
        """Write now, in MLflow's largest batches; raises what the store raises."""
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        for first in range(0, len(points), MAX_METRICS_PER_BATCH):
            batch = [Metric(*point) for point in points[first : first + MAX_METRICS_PER_BATCH]]
            self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        if self.run_id is not None:
            self.client.log_artifact(self.run_id, str(path), artifact_dir)

    def register_model(
        self, model_dir: Path, name: str, tags: Mapping[str, str], description: str
    ) -> str | None:
        """Log the weights folder as the run's `model` artefact and register it as a new version of `name`,
        with `tags` and `description` saying what it is and how it scored (forecaster.models.describe)."""
        if self.run_id is None:
            return None
        self.client.log_artifacts(self.run_id, str(model_dir), MODEL_ARTIFACT)
        source = f"{self.client.get_run(self.run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
        from mlflow.exceptions import MlflowException

        with _store_lock(self.uri):
            try:
                self.client.create_registered_model(name)
            except MlflowException as exc:  # parallel sweep jobs register under the same name
                if exc.error_code != ALREADY_EXISTS:
                    raise
            version = self.client.create_model_version(
                name, source, run_id=self.run_id, tags=dict(tags), description=description
            )
        return str(version.version)

    def finish(self, status: str = "FINISHED") -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        if self.run_id is None:
            return
        self.flush()
        self.client.set_terminated(self.run_id, status=status)
        self.run_id = None

    def describe(self) -> str:
        return f"{self.uri} (experiment id {self.experiment_id})"


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise first use of a SQLite store and registry writes: parallel sweep jobs would otherwise
    race to create its tables ("duplicate column name"), the experiment and registered models."""
    if not uri.startswith(SQLITE_PREFIX):
        yield
        return
    lock = Path(uri.removeprefix(SQLITE_PREFIX)).with_suffix(".lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_uri(mlruns: str) -> str:
    return f"{SQLITE_PREFIX}{(Path(mlruns) / 'mlflow.db').resolve()}"


def download_records(store: str, run_id: str, destination: Path) -> Path:
    """The `records/` artefacts of an MLflow run (a live session) -> a local folder of record files
    (uploaded segments assembled)."""
    from forecaster.live.uploads import assemble_records

    try:
        path = mlflow_client(store).download_artifacts(run_id, RECORDS_ARTIFACT, str(destination))
    except Exception as exc:
        raise UserError(
            f"eval.records={run_id} is neither a folder nor an MLflow run with records in {store} "
            f"({str(exc).splitlines()[0]})"
        ) from exc
    assemble_records(Path(path))
    return Path(path)


@dataclass(frozen=True)
class NoTracking:
    """tracking=off: runs are not tracked; `model.uri` still reads the local store under paths.mlruns."""

    name: str = "off"
    writes: ClassVar[bool] = False

    def open(self, paths: PathsConfig) -> Tracker:
        return NullTracker()

    def check_reachable(self, paths: PathsConfig) -> None:
        pass

    def store_uri(self, paths: PathsConfig) -> str:
        return default_uri(paths.mlruns)

    def check(self, paths: PathsConfig) -> Check:
        return Check(STORE_CHECK, Status.SKIP, "tracking=off")

    def buffering(self) -> Buffering:
        return Buffering()


@dataclass(frozen=True)
class MlflowTracking:
    """tracking=mlflow: `uri` (null: the SQLite store under paths.mlruns), one experiment, batched metrics."""

    name: str = "mlflow"
    writes: ClassVar[bool] = True
    uri: str | None = None
    experiment: str = "forecaster"
    metrics_batch: int = bounded(200, ge=1)
    request_timeout_s: int = bounded(10, ge=1)
    max_retries: int = bounded(2, ge=0)
    flush_s: float = bounded(Buffering.flush_s, gt=0)
    buffer_points: int = bounded(Buffering.buffer_points, ge=1)
    shutdown_timeout_s: float = bounded(Buffering.shutdown_timeout_s, gt=0)
    retry_max_s: float = bounded(Buffering.retry_max_s, gt=0)

    def buffering(self) -> Buffering:
        return Buffering(self.flush_s, self.buffer_points, self.shutdown_timeout_s, self.retry_max_s)

    def store_uri(self, paths: PathsConfig) -> str:
        return self.uri or default_uri(paths.mlruns)

    def _limit_http(self) -> None:
        """A tracking server that goes down must cost seconds, not MLflow's default minutes of retries
        (7, doubling from 2 s: about 250 s a call), for every MLflow client this process makes."""
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(self.request_timeout_s)
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.max_retries)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"

    def check_reachable(self, paths: PathsConfig) -> None:
        """One short request to a tracking server before any work (train, eval, live, dryrun's check,
        a sweep's leaderboard): one that is down, or a wrong tracking.uri, then costs seconds."""
        self._limit_http()
        uri = self.store_uri(paths)
        if urlsplit(uri).scheme not in SERVER_SCHEMES:
            return
        why = probe(uri, self.request_timeout_s, "tracking.uri", "the MLflow server")
        if why is not None:
            raise UserError(f"MLflow: {why}; or run with tracking=off")

    def open(self, paths: PathsConfig) -> Tracker:
        """A tracker on the store; a local store is created under paths.mlruns on first use.

        Callers probe a tracking server first (check_reachable), before their work, not here again."""
        self._limit_http()
        artifact_root = None
        if self.uri is None:
            try:
                Path(paths.mlruns).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(
                    f"cannot create the MLflow directory paths.mlruns={paths.mlruns} ({exc.strerror}); "
                    "point paths.mlruns at a writable directory or run with tracking=off"
                ) from exc
            artifact_root = Path(paths.mlruns) / "artifacts"
        return MlflowTracker(self.store_uri(paths), self.experiment, artifact_root, self.metrics_batch)

    def check(self, paths: PathsConfig) -> Check:
        try:
            self.check_reachable(paths)
            return Check(STORE_CHECK, Status.OK, self.open(paths).describe())
        except UserError as exc:
            return Check(STORE_CHECK, Status.FAIL, str(exc))
