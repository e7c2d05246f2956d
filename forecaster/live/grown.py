"""A model that grows live (model=memory) keeps what it learns in the run dir and in the MLflow run.

It is saved atomically every `save_every` new candles and at shutdown into `<run dir>/<name>/memory/`
(the same files as a trained model: a restart in the run dir loads it instead of model.path), and
logged to the session's MLflow run at shutdown. A SIGKILL loses only the windows since the last
save, and the restart's warm-up brings back the candles they came from (Predictor.history_needed).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from forecaster.live.background import BackgroundTracker
from forecaster.live.loop import CandleEvent
from forecaster.models.base import Remembering
from forecaster.models.card import SIDECAR_FILE

log = logging.getLogger(__name__)
GROWN_DIR = "memory"  # in the predictor's records folder


def grown_weights(records: Path) -> Path | None:
    """The model a previous session in this folder grew and saved, if any: a restart resumes it."""
    folder = records / GROWN_DIR
    return folder if (folder / SIDECAR_FILE).is_file() else None


class GrownUpload:
    """The saved folder's files, logged whole to the run (each session's last save)."""

    def __init__(self, directory: Path, folder: str) -> None:
        self.directory = directory
        self.folder = folder

    def sync(self, run_id: str, log_artifact: Callable[[Path, str], None], scratch: Path) -> int:
        copy = scratch / GROWN_DIR
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(self.directory, copy, ignore=shutil.ignore_patterns(".*"))
        sent = 0
        for path in sorted(copy.iterdir()):
            log_artifact(path, self.folder)
            sent += path.stat().st_size
        shutil.rmtree(copy, ignore_errors=True)
        return sent


class GrownSaver:
    """Saves the growing model every `save_every` new candles (its own key) and at close, then uploads it."""

    def __init__(self, model: Remembering, directory: Path, tracker: BackgroundTracker, folder: str) -> None:
        self.model = model
        self.directory = directory
        self.save_every = model.save_every
        self.tracker = tracker
        self.upload = GrownUpload(directory, folder)
        self._unsaved = 0
        self._saved = False

    def handle(self, event: CandleEvent) -> None:
        """Saved at the first new candle too: a restart then catches up from this session's start,
        not from the end of the model's training history (which this session never replayed)."""
        if not event.new:
            return
        self._unsaved += 1
        if self._unsaved >= self.save_every or not self._saved:
            self._save()

    def close(self) -> None:
        self._save()
        self.tracker.upload(self.upload)
        log.info("%s: %s", self.directory, ", ".join(f"{k} {v:g}" for k, v in self.model.metrics().items()))

    def _save(self) -> None:
        self.model.save(self.directory)
        self._unsaved, self._saved = 0, True
