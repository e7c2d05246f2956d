"""Learning-rate schedules, one class per option: called as schedule(learning_rate, total_steps).

Light at import: Optax loads inside `__call__`, when the optimiser is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from forecaster.schema import bounded

if TYPE_CHECKING:
    import optax


class Schedule(Protocol):
    """A learning rate, constant or per step, for a run of `total_steps` optimiser steps."""

    def __call__(self, learning_rate: float, total_steps: int) -> optax.ScalarOrSchedule: ...


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warmup from 0 over `warmup_fraction` of the steps, then cosine decay to 0."""

    warmup_fraction: float = bounded(0.05, ge=0, lt=1)

    def __call__(self, learning_rate: float, total_steps: int) -> optax.ScalarOrSchedule:
        import optax

        warmup = int(self.warmup_fraction * total_steps)
        return optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup, max(total_steps, warmup + 1))


@dataclass(frozen=True)
class Constant:
    """The same learning rate at every step."""

    def __call__(self, learning_rate: float, total_steps: int) -> optax.ScalarOrSchedule:
        return learning_rate
