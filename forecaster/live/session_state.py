"""What a run dir remembers between the live sessions run in it: its MLflow run, and where steps start.

A restart in the same run dir resumes the same MLflow run (forecaster.tracking.MlflowTracker.resume)
instead of opening another, and its metric steps continue where they stopped: a step is the
number of the candle's interval since the UTC day of the run's first candle, so it depends on the
candle alone, never on how many sessions came before.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from forecaster.candles import DAY_MS

log = logging.getLogger(__name__)
STATE_FILE = "session.json"


def write_json_atomically(path: Path, value: object) -> None:
    """A crash leaves the old file or the new one, never half of one."""
    part = path.with_name(f".{path.name}.part")
    part.write_text(json.dumps(value, indent=1))
    os.replace(part, path)


@dataclass
class SessionState:
    store: str | None = None  # the MLflow store run_id lives in
    run_id: str | None = None
    origin_ms: int | None = None  # UTC midnight of the day of the run's first candle

    @classmethod
    def load(cls, run_dir: Path) -> SessionState:
        path = run_dir / STATE_FILE
        if not path.exists():
            return cls()
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            log.warning("%s is unreadable (%s): this session starts a new MLflow run", path, exc)
            return cls()

    def save(self, run_dir: Path) -> None:
        write_json_atomically(run_dir / STATE_FILE, asdict(self))

    def run_to_resume(self, store: str) -> str | None:
        return self.run_id if self.store == store else None


class Steps:
    """Metric steps of a run dir: each candle's interval index since the origin, saved on first use."""

    def __init__(self, state: SessionState, run_dir: Path) -> None:
        self.state = state
        self.run_dir = run_dir

    def of(self, start_ms: int, interval_ms: int) -> int:
        if self.state.origin_ms is None:
            self.state.origin_ms = start_ms - start_ms % DAY_MS
            self.state.save(self.run_dir)
        return max((start_ms - self.state.origin_ms) // interval_ms, 0)
