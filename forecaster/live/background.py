"""A live session's tracker, off the hot path: the stream only appends to a bounded buffer.

Only values that changed are queued (counters that stay 0 for weeks cost nothing); each key's
last value is sent at close. One daemon thread writes the buffered metric points to the tracker
in batches and syncs the record uploads. When the store fails (a tracking server down, a locked
database) the session goes on: the thread logs one warning per outage, keeps the newest
`buffer_points` points (the oldest beyond that are dropped and counted), retries with backoff and
catches up when the store answers again. At shutdown it gets `shutdown_timeout_s` to send what is
left and close the run; a run it could not close stays RUNNING, and the next start in the same run
dir resumes it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from forecaster.tracking import MAX_METRICS_PER_BATCH, Buffering, MetricPoint, Tracker, metric_points

log = logging.getLogger(__name__)
FIRST_RETRY_S = 1.0  # the first retry after a failed write; doubled up to Buffering.retry_max_s


class Upload(Protocol):
    """Record files whose new bytes go to the run (forecaster.live.uploads.RecordUploads)."""

    def sync(self, run_id: str, log_artifact: Callable[[Path, str], None], scratch: Path) -> int: ...


class BackgroundTracker:
    """log_metrics / upload from the event loop never wait on the store; close() is bounded."""

    def __init__(self, tracker: Tracker, buffering: Buffering, store: str) -> None:
        self.tracker = tracker
        self.buffering = buffering
        self.store = store
        self.dropped = 0  # metric points lost to a full buffer
        self.sent = 0
        self.uploaded_bytes = 0
        self._points: deque[MetricPoint] = deque()
        self._last: dict[str, float] = {}  # the last value queued per key
        self._held: dict[str, MetricPoint] = {}  # unchanged values not queued since
        self._uploads: dict[int, Upload] = {}  # pending syncs, one per record folder
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._status: str | None = None  # the run's final status, once close() is called
        self._outage_since: float | None = None
        self._scratch = tempfile.TemporaryDirectory(prefix="forecaster-uploads-")
        self._thread = threading.Thread(target=self._work, name="tracker", daemon=True)
        self._thread.start()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue the values that changed since their last point; an unchanged one is held back and
        sent only at close, so every chart still reaches the session's last step."""
        with self._lock:
            for point in metric_points(metrics, step):
                if self._last.get(point.key) == point.value:
                    self._held[point.key] = point
                    continue
                self._last[point.key] = point.value
                self._held.pop(point.key, None)
                self._points.append(point)
            self._bound()
            full = len(self._points) >= MAX_METRICS_PER_BATCH
        if full:
            self._wake.set()

    def upload(self, uploads: Upload) -> None:
        """Ask for a sync of these records; asks made while one is pending coalesce into it."""
        with self._lock:
            self._uploads[id(uploads)] = uploads
        self._wake.set()

    def close(self, status: str) -> bool:
        """Send what is left, close the run as `status`; False when that took past shutdown_timeout_s."""
        with self._lock:
            self._points.extend(self._held.values())
            self._held.clear()
        self._status = status
        self._wake.set()
        self._thread.join(self.buffering.shutdown_timeout_s)
        if self._thread.is_alive():
            log.warning(
                "MLflow did not take the rest within tracking.shutdown_timeout_s=%gs (%d metric points "
                "unsent); the records are complete in the run dir, and the next start in this run dir "
                "resumes the MLflow run",
                self.buffering.shutdown_timeout_s,
                len(self._points),
            )
            return False
        self._scratch.cleanup()
        return True

    def _bound(self) -> None:
        """Keep the newest buffer_points points (called with the lock held)."""
        overflow = len(self._points) - self.buffering.buffer_points
        for _ in range(max(overflow, 0)):
            self._points.popleft()
        self.dropped += max(overflow, 0)

    def _work(self) -> None:
        retry_s = FIRST_RETRY_S
        while True:
            self._wake.wait(self.buffering.flush_s)
            self._wake.clear()
            status = self._status
            try:
                self._write()
                if status is not None:
                    self.tracker.finish(status)
            except Exception as exc:  # whatever the store raises: the session must not care
                self._failed(exc)
                self._wake.wait(retry_s)
                retry_s = min(2 * retry_s, self.buffering.retry_max_s)
                continue
            retry_s = FIRST_RETRY_S
            self._recovered()
            if status is not None:
                return

    def _write(self) -> None:
        """Send every buffered point and pending upload; what failed goes back for the next try."""
        while True:
            with self._lock:
                batch = [self._points.popleft() for _ in range(min(len(self._points), MAX_METRICS_PER_BATCH))]
            if not batch:
                break
            try:
                self.tracker.log_points(batch)
            except Exception:
                with self._lock:
                    self._points.extendleft(reversed(batch))
                    self._bound()
                raise
            self.sent += len(batch)
        with self._lock:
            pending = list(self._uploads.items())
            self._uploads.clear()
        run_id = self.tracker.run_id
        for done, (_, upload) in enumerate(pending):
            try:
                if run_id is not None:
                    self.uploaded_bytes += upload.sync(
                        run_id, self.tracker.log_artifact, Path(self._scratch.name)
                    )
            except Exception:
                with self._lock:
                    for left, undone in pending[done:]:
                        self._uploads.setdefault(left, undone)
                raise

    def _failed(self, exc: Exception) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "MLflow at %s failed (%s): the session goes on predicting and recording; metrics wait "
                "in a buffer of tracking.buffer_points=%d and are sent when it answers again",
                self.store,
                str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                self.buffering.buffer_points,
            )

    def _recovered(self) -> None:
        if self._outage_since is None:
            return
        log.warning(
            "MLflow at %s answers again after %.0fs: caught up (%d metric points sent so far, %d dropped "
            "from a full buffer)",
            self.store,
            time.monotonic() - self._outage_since,
            self.sent,
            self.dropped,
        )
        self._outage_since = None
