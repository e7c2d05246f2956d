"""After the first stop signal, the session winds down once, whatever else arrives.

The first SIGINT / SIGTERM stops intake (forecaster.sources.feed.stop_on_signals). A second one
(what `docker stop` escalation or an impatient Ctrl-C sends) while the current candle, the
records and the tracker are being closed is logged and absorbed: interrupting the upload would
leave the run RUNNING with its last records missing. If the wind-down takes longer than
`live.shutdown_timeout_s` after the first signal, the process exits 0 anyway: every record line
is already on disk, and a run left open is resumed by the next start in the run dir.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from forecaster.interrupts import STOP_SIGNALS

log = logging.getLogger(__name__)


class ShutdownGuard:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._deadline: threading.Timer | None = None

    def signalled(self, signum: int) -> None:
        """Called on every stop signal; the first one starts the deadline."""
        if self._deadline is None:
            self._deadline = threading.Timer(self.timeout_s, self._give_up)
            self._deadline.daemon = True
            self._deadline.start()
            return
        log.warning(
            "%s again: already stopping; the records and the MLflow run are being closed "
            "(at most live.shutdown_timeout_s=%gs)",
            signal.Signals(signum).name,
            self.timeout_s,
        )

    def _give_up(self) -> None:
        log.error(
            "the shutdown took longer than live.shutdown_timeout_s=%gs: exiting now; every record is "
            "on disk, and the next start in this run dir resumes the MLflow run",
            self.timeout_s,
        )
        logging.shutdown()
        os._exit(0)

    @contextlib.contextmanager
    def absorbing(self) -> Iterator[None]:
        """Stop signals during the block are logged, not raised; the deadline is cancelled after it."""

        def absorb(signum: int, frame: FrameType | None) -> None:
            self.signalled(signum)

        previous = {sig: signal.signal(sig, absorb) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._deadline is not None:
                self._deadline.cancel()
