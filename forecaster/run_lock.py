"""One writer per run dir: a lock file naming its holder (pid, host, start time, mode).

Two processes appending to the same JSONL records would interleave and duplicate them, so the
modes that write records take this lock first. It is an `fcntl.flock` on the file, which the
kernel releases when the holder dies, SIGKILL included: a lock is never stuck. The file's text only
names the holder for the message; text left by a killed holder is reported as stale and replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from forecaster.errors import UserError

log = logging.getLogger(__name__)

LOCK_FILE = ".forecaster.lock"


def _holder_text(holder: dict[str, Any]) -> str:
    since = datetime.fromisoformat(holder["since"]).strftime("%Y-%m-%d %H:%M UTC")
    return f"pid {holder['pid']} on host {holder['host']} since {since} (mode={holder['mode']})"


def _read_holder(handle: int) -> dict[str, Any] | None:
    """What the file says about its holder; None when empty or not ours (a holder still writing it)."""
    os.lseek(handle, 0, os.SEEK_SET)
    raw = os.read(handle, os.fstat(handle).st_size)
    try:
        holder = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    needed = {"pid", "host", "since", "mode"}
    return holder if isinstance(holder, dict) and needed <= holder.keys() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class RunLock:
    """`with RunLock(run_dir, "live"):` ... ; raises UserError naming the holder when it is taken."""

    def __init__(self, run_dir: Path, mode: str) -> None:
        self.path = run_dir / LOCK_FILE
        self.mode = mode
        self._handle: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(handle)
            os.close(handle)
            who = _holder_text(holder) if holder else "another process"
            raise UserError(
                f"run dir {self.path.parent} is in use by {who}; "
                "stop that process or choose another hydra.run.dir"
            ) from None
        previous = _read_holder(handle)
        if previous is not None:
            here = previous["host"] == socket.gethostname()
            state = "stale (that process is gone)" if here and not _alive(int(previous["pid"])) else "unheld"
            log.info("%s: lock of %s is %s; taking it over", self.path, _holder_text(previous), state)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": self.mode,
        }
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps(me).encode("utf-8"), 0)
        self._handle = handle

    def release(self) -> None:
        """Empty the file, then unlock: the file stays, so that no one locks a file that is gone."""
        if self._handle is None:
            return
        with contextlib.suppress(OSError):  # a full disk cannot stop the unlock
            os.ftruncate(self._handle, 0)
        os.close(self._handle)
        self._handle = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
