"""Record files go to the MLflow run append-only: each sync uploads only the bytes added since the last.

A segment is the bytes of a record file from the last uploaded offset up to its last complete line,
logged as `<folder>/<file>.parts/<start offset, 12 digits>.jsonl`. The uploaded offsets are kept in
the records folder (`.uploads.json`) with the run they belong to: a new run starts again from 0.
A crash between an upload and saving its offset re-uploads a longer segment under the same name,
so assembling the segments by offset (assemble_records) gives back the file exactly. Uploads thus
cost O(new bytes), not O(file) as whole-file re-uploads did (O(n^2) over a session).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from forecaster.live.session_state import write_json_atomically
from forecaster.recording import READ_BLOCK

log = logging.getLogger(__name__)
UPLOADS_STATE = ".uploads.json"
PARTS_SUFFIX = ".parts"
OFFSET_DIGITS = 12


def segment_name(offset: int) -> str:
    return f"{offset:0{OFFSET_DIGITS}d}.jsonl"


def complete_end(path: Path, start: int) -> int:
    """The offset just past the file's last newline at or after `start` (`start` when there is none)."""
    size = path.stat().st_size if path.exists() else 0
    with path.open("rb") as handle:
        end = size
        while end > start:
            begin = max(start, end - READ_BLOCK)
            handle.seek(begin)
            block = handle.read(end - begin)
            found = block.rfind(b"\n")
            if found >= 0:
                return begin + found + 1
            end = begin
    return start


class RecordUploads:
    """The record files of one folder and how much of each the current run already has."""

    def __init__(self, files: Sequence[Path], folder: str, state: Path) -> None:
        self.files = list(files)
        self.folder = folder
        self.state = state

    def _load(self, run_id: str) -> dict[str, int]:
        try:
            saved = json.loads(self.state.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            log.warning(
                "%s is unreadable (%s): the records are uploaded again from the start", self.state, exc
            )
            return {}
        return dict(saved.get("offsets", {})) if saved.get("run_id") == run_id else {}

    def sync(self, run_id: str, log_artifact: Callable[[Path, str], None], scratch: Path) -> int:
        """Upload every file's new complete lines as one segment each; the bytes uploaded.

        Each offset is saved as soon as its segment is logged, so a failure (raised) leaves the
        files not yet done where they were.
        """
        offsets = self._load(run_id)
        sent = 0
        for path in self.files:
            start = offsets.get(path.name, 0)
            if not path.exists() or path.stat().st_size <= start:
                continue
            end = complete_end(path, start)
            if end == start:
                continue
            folder = scratch / f"{path.name}{PARTS_SUFFIX}"
            folder.mkdir(parents=True, exist_ok=True)
            segment = folder / segment_name(start)
            with path.open("rb") as source, segment.open("wb") as target:
                source.seek(start)
                target.write(source.read(end - start))
            log_artifact(segment, f"{self.folder}/{path.name}{PARTS_SUFFIX}")
            segment.unlink()
            offsets[path.name] = end
            write_json_atomically(self.state, {"run_id": run_id, "offsets": offsets})
            sent += end - start
        return sent


def assemble_records(folder: Path) -> None:
    """In a downloaded records folder, every `X.parts/` becomes the file X, each segment written at
    its offset; folders of whole files (runs recorded before segments) stay as they are."""
    for parts in sorted(folder.rglob(f"*{PARTS_SUFFIX}")):
        if not parts.is_dir():
            continue
        target = parts.with_name(parts.name.removesuffix(PARTS_SUFFIX))
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for segment in sorted(parts.glob("*.jsonl")):
                os.pwrite(fd, segment.read_bytes(), int(segment.stem))
        finally:
            os.close(fd)
        shutil.rmtree(parts)
