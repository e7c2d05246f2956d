"""Append-only record uploads: segments of new complete lines that assemble back into the file,
through the real MLflow client and a SQLite store in tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forecaster.live.uploads import UPLOADS_STATE, RecordUploads, assemble_records
from forecaster.tracking import MlflowTracker, default_uri, download_records


class Uploaded:
    """A folder that log_artifact copies into, as an artefact store does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bytes = 0

    def log_artifact(self, path: Path, artifact_dir: str) -> None:
        target = self.root / artifact_dir
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)
        self.bytes += path.stat().st_size


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


@pytest.fixture
def records(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    return folder


def test_segments_hold_only_new_complete_lines_and_assemble_exactly(records: Path, tmp_path: Path) -> None:
    path = records / "candles.jsonl"
    uploads = RecordUploads([path, records / "facts.jsonl"], "records", records / UPLOADS_STATE)
    store = Uploaded(tmp_path / "store")
    _append(path, '{"a":1}\n{"a":2}\n{"a":')  # a torn tail waits until it is complete
    assert uploads.sync("run1", store.log_artifact, tmp_path / "scratch") == 16
    _append(path, '3}\n{"a":4}\n')
    assert uploads.sync("run1", store.log_artifact, tmp_path / "scratch") == len('{"a":3}\n{"a":4}\n')
    assert uploads.sync("run1", store.log_artifact, tmp_path / "scratch") == 0, "nothing new: nothing sent"
    assert store.bytes == path.stat().st_size, "every byte once"
    parts = sorted(p.name for p in (store.root / "records" / "candles.jsonl.parts").iterdir())
    assert parts == ["000000000000.jsonl", "000000000016.jsonl"]
    assemble_records(store.root)
    assert (store.root / "records" / "candles.jsonl").read_bytes() == path.read_bytes()
    assert not (store.root / "records" / "candles.jsonl.parts").exists()


def test_a_crash_before_the_offset_is_saved_reuploads_under_the_same_name(
    records: Path, tmp_path: Path
) -> None:
    path = records / "candles.jsonl"
    uploads = RecordUploads([path], "records", records / UPLOADS_STATE)
    store = Uploaded(tmp_path / "store")
    _append(path, '{"a":1}\n')
    uploads.sync("run1", store.log_artifact, tmp_path / "scratch")
    saved = (records / UPLOADS_STATE).read_text()
    _append(path, '{"a":2}\n')
    uploads.sync("run1", store.log_artifact, tmp_path / "scratch")
    (records / UPLOADS_STATE).write_text(saved)  # killed after the upload, before the save
    _append(path, '{"a":3}\n')
    uploads.sync("run1", store.log_artifact, tmp_path / "scratch")
    assemble_records(store.root)
    assert (store.root / "records" / "candles.jsonl").read_bytes() == path.read_bytes()


def test_a_new_run_starts_from_the_first_byte(records: Path, tmp_path: Path) -> None:
    path = records / "candles.jsonl"
    uploads = RecordUploads([path], "records", records / UPLOADS_STATE)
    _append(path, '{"a":1}\n')
    uploads.sync("run1", Uploaded(tmp_path / "one").log_artifact, tmp_path / "scratch")
    again = Uploaded(tmp_path / "two")
    assert uploads.sync("run2", again.log_artifact, tmp_path / "scratch") == path.stat().st_size


def test_a_failed_upload_keeps_the_offset(records: Path, tmp_path: Path) -> None:
    path = records / "candles.jsonl"
    uploads = RecordUploads([path], "records", records / UPLOADS_STATE)
    _append(path, '{"a":1}\n')

    def refuse(segment: Path, artifact_dir: str) -> None:
        raise ConnectionError("tracking server down")

    with pytest.raises(ConnectionError):
        uploads.sync("run1", refuse, tmp_path / "scratch")
    store = Uploaded(tmp_path / "store")
    assert uploads.sync("run1", store.log_artifact, tmp_path / "scratch") == path.stat().st_size


def test_segments_through_a_real_mlflow_run_download_as_whole_files(records: Path, tmp_path: Path) -> None:
    (tmp_path / "mlruns").mkdir()
    tracker = MlflowTracker(default_uri(str(tmp_path / "mlruns")), "tests", tmp_path / "artifacts", 1)
    tracker.start("live-test", {}, {})
    assert tracker.run_id is not None
    paths = [records / "p1" / name for name in ("candles.jsonl", "facts.jsonl")]
    paths[0].parent.mkdir()
    uploads = RecordUploads(paths, "records/p1", records / "p1" / UPLOADS_STATE)
    for i in range(5):
        for path in paths:
            _append(path, f'{{"candle_ts":{i}}}\n')
        uploads.sync(tracker.run_id, tracker.log_artifact, tmp_path / "scratch")
    folder = download_records(tracker.uri, tracker.run_id, tmp_path / "download")
    for path in paths:
        assert (folder / "p1" / path.name).read_bytes() == path.read_bytes()
