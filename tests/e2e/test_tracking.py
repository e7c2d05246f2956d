"""The MLflow wrapper against a real SQLite tracking store in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from forecaster import run_labels
from forecaster.config import PathsConfig
from forecaster.errors import UserError
from forecaster.run_labels import MAX_RUN_NAME, flatten, sweep_run_name
from forecaster.tracking import MlflowTracking, NoTracking, NullTracker, Tracker, default_uri


def _open(tmp_path: Path, tracking: MlflowTracking | NoTracking) -> Tracker:
    return tracking.open(PathsConfig(mlruns=str(tmp_path / "mlruns")))


def test_a_run_with_params_batched_metrics_and_an_artifact(tmp_path: Path) -> None:
    tracker = _open(tmp_path, MlflowTracking(metrics_batch=7))
    tracker.start("unit", {"flat.min_prob": 0.55, "model.hidden": [64, 64]}, {"sweep": "none"})
    for step in range(20):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5}, step)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    tracker.log_artifact(note, "records")
    run_id = tracker.run_id
    tracker.finish("KILLED")

    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.params == {"flat.min_prob": "0.55", "model.hidden": "[64, 64]"}
    assert run.data.tags["sweep"] == "none"
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(20)), "buffered points must all arrive, in order"
    assert [a.path for a in client.list_artifacts(run_id, "records")] == ["records/note.txt"]
    artifacts = tmp_path / "mlruns" / "artifacts"
    assert list(artifacts.rglob("note.txt")), "artefacts belong under paths.mlruns"


def test_a_registered_version_carries_its_tags_and_description(tmp_path: Path) -> None:
    tracker = _open(tmp_path, MlflowTracking())
    tracker.start("unit", {}, {})
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "model.json").write_text("{}")
    tags = {"val.decided_accuracy": "0.5312", "data_first": "2024-12-01T00:00Z"}
    version = tracker.register_model(
        weights, "forecaster-unit-1m", tags, "twohead on BTCUSDT 1m\nvalidation: ..."
    )
    run_id = tracker.run_id
    tracker.finish()

    uri = default_uri(str(tmp_path / "mlruns"))
    (found,) = MlflowClient(uri, registry_uri=uri).search_model_versions("name='forecaster-unit-1m'")
    assert str(found.version) == version == "1" and found.run_id == run_id
    assert found.tags == tags and found.description == "twohead on BTCUSDT 1m\nvalidation: ..."


def test_sweep_run_names_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sweep_run_name("train-twohead-1m") == "train-twohead-1m"
    monkeypatch.setattr(run_labels, "_sweep_tag", lambda: {"overrides": "seed=1," + "x" * 500})
    name = sweep_run_name("train-twohead-1m")
    assert name.startswith("train-twohead-1m[seed=1,xx") and name.endswith("...]")
    assert len(name) == MAX_RUN_NAME


def test_tracking_off_stores_nothing(tmp_path: Path) -> None:
    tracker = _open(tmp_path, NoTracking())
    assert isinstance(tracker, NullTracker)
    tracker.start("x", {}, {})
    tracker.log_metrics({"a": 1.0}, 0)
    assert tracker.register_model(tmp_path, "forecaster-x-1m", {"a": "b"}, "text") is None
    tracker.finish()
    assert not (tmp_path / "mlruns").exists()


def test_an_unusable_store_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="tracking=off"):
        MlflowTracking().open(PathsConfig(mlruns=str(tmp_path / "file" / "mlruns")))


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": None}) == {"a.b": 1, "a.c.d": [2], "e": None}
