"""What every mode is: a part built from conf/mode/<name>.yaml whose `run` returns a typed result.

The entry point takes the exit code and, for a search sweeper, the objective from the result; it
never re-reads files the mode wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from forecaster.errors import UserError

if TYPE_CHECKING:
    from forecaster.config import Config

# What train and eval write into their run dir: the same tree as RunResult.metrics.
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class RunResult:
    """A mode's outcome: its exit code and the metrics tree it wrote to metrics.json (if any)."""

    exit_code: int = 0
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def objective(self, key: str) -> float:
        """`key` (dotted, e.g. val.model.log_loss_up) of the metrics, for a search sweeper."""
        value: Any = self.metrics
        try:
            for part in key.split("."):
                value = value[part]
            return float(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"optimized_metric={key} is not a number in this run's {METRICS_FILE}; use a dotted key "
                "of that file, e.g. val.model.log_loss_up for mode=train"
            ) from exc


class Mode(Protocol):
    name: str

    def run(self, config: Config, run_dir: Path) -> RunResult: ...
