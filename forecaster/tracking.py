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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from forecaster.checks import Check, Status
from forecaster.errors import UserError
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


class Tracker(Protocol):
    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
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
    def store_uri(self, paths: PathsConfig) -> str: ...
    def check(self, paths: PathsConfig) -> Check: ...


class NullTracker:
    """tracking=off: every call is accepted and nothing is stored."""

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
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
        self._pending: list[Any] = []

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
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=sweep_run_name(run_name), tags=dict(tags))
        self.run_id = run.info.run_id
        items = [Param(key, str(value)) for key, value in params.items()]
        for first in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[first : first + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(key, float(value), now, step) for key, value in metrics.items())
        if len(self._pending) >= self.metrics_batch:
            self.flush()

    def flush(self) -> None:
        if self.run_id is None:
            return
        while self._pending:
            batch, self._pending = (
                self._pending[:MAX_METRICS_PER_BATCH],
                self._pending[MAX_METRICS_PER_BATCH:],
            )
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
    """The `records/` artefacts of an MLflow run (a live session) -> a local folder."""
    try:
        path = mlflow_client(store).download_artifacts(run_id, RECORDS_ARTIFACT, str(destination))
    except Exception as exc:
        raise UserError(
            f"eval.records={run_id} is neither a folder nor an MLflow run with records in {store} "
            f"({str(exc).splitlines()[0]})"
        ) from exc
    return Path(path)


@dataclass(frozen=True)
class NoTracking:
    """tracking=off: runs are not tracked; `model.uri` still reads the local store under paths.mlruns."""

    name: str = "off"
    writes: ClassVar[bool] = False

    def open(self, paths: PathsConfig) -> Tracker:
        return NullTracker()

    def store_uri(self, paths: PathsConfig) -> str:
        return default_uri(paths.mlruns)

    def check(self, paths: PathsConfig) -> Check:
        return Check(STORE_CHECK, Status.SKIP, "tracking=off")


@dataclass(frozen=True)
class MlflowTracking:
    """tracking=mlflow: `uri` (null: the SQLite store under paths.mlruns), one experiment, batched metrics."""

    name: str = "mlflow"
    writes: ClassVar[bool] = True
    uri: str | None = None
    experiment: str = "forecaster"
    metrics_batch: int = bounded(200, ge=1)

    def store_uri(self, paths: PathsConfig) -> str:
        return self.uri or default_uri(paths.mlruns)

    def open(self, paths: PathsConfig) -> Tracker:
        """A tracker on the store; a local store is created under paths.mlruns on first use."""
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
            return Check(STORE_CHECK, Status.OK, self.open(paths).describe())
        except UserError as exc:
            return Check(STORE_CHECK, Status.FAIL, str(exc))
