"""A record write that cannot go on ends the session with one line, and the records stay intact.

Records are append-only JSONL: after a failed write (disk full, read-only, no permission) a session
that went on would leave a gap before its later lines, so the first OSError on a record file stops
it. A floor of free space (`live.min_free_mb`, checked every `live.disk_check_s`) stops it before
the disk is full at all, while its lines are still whole.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from forecaster.errors import UserError


class Written(Protocol):
    """A file writer as `writing` needs it: what it writes, and a close that flushes it."""

    @property
    def path(self) -> Path: ...

    def close(self) -> None: ...


UNITS = ("B", "KB", "MB", "GB", "TB")
STEP = 1024  # bytes per unit of UNITS
MB = STEP * STEP


def free_bytes(path: Path) -> int:
    """Free space of the disk that holds `path`, or would hold it once created."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    return shutil.disk_usage(existing).free


def size_text(n: float) -> str:
    """12288 -> '12 KB'."""
    for unit in UNITS[:-1]:
        if n < STEP:
            return f"{n:.0f} {unit}"
        n /= STEP
    return f"{n:.0f} {UNITS[-1]}"


@contextlib.contextmanager
def writing(writer: Written) -> Iterator[None]:
    """Turn an OSError of a write to `writer` into a one-line UserError that ends the session.

    The writer is closed at once: its unwritten bytes would fail again, as a second error, when it
    is closed on the way out.
    """
    try:
        yield
    except OSError as exc:
        with contextlib.suppress(OSError):
            writer.close()
        raise UserError(
            f"cannot write {writer.path}: {exc.strerror or exc} ({size_text(free_bytes(writer.path))} "
            "free on that disk); free space and restart in the same run dir to resume"
        ) from exc


class DiskFloor:
    """Raises UserError from `check()` once the run dir's disk has less than `min_free_mb` free.

    Checks at most every `every_s` seconds (the first call always checks); `min_free_mb` 0: never.
    """

    def __init__(self, run_dir: Path, min_free_mb: float, every_s: float) -> None:
        self.run_dir = run_dir
        self.min_free_mb = min_free_mb
        self.every_s = every_s
        self._next = -float("inf")

    def check(self) -> None:
        now = time.monotonic()
        if not self.min_free_mb or now < self._next:
            return
        self._next = now + self.every_s
        free = free_bytes(self.run_dir)
        if free < self.min_free_mb * MB:
            raise UserError(
                f"{self.run_dir}: only {size_text(free)} free on its disk, below "
                f"live.min_free_mb={self.min_free_mb:g}; free space (or lower live.min_free_mb) "
                "and restart in the same run dir to resume"
            )
