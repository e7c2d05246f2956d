"""TEMPORARY stand-in (whole files) until the records branch lands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path


class RecordUploads:
    def __init__(self, files: Sequence[Path], folder: str, state: Path) -> None:
        self.files = list(files)
        self.folder = folder

    def sync(self, run_id: str, log_artifact: Callable[[Path, str], None], scratch: Path) -> int:
        for path in self.files:
            if path.exists():
                log_artifact(path, self.folder)
        return 0


UPLOADS_STATE = ".uploads.json"
