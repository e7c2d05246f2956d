"""Test figures per file or venue: does the model beat persistence on each, not only on all together?

Pooled over folds, from the same per-candle outcomes the overall figures come from: rows, decided
accuracy (a call against a zero move is a miss) with its Wilson interval, and the exact paired test
against persistence on the candles both decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecaster.evaluation.comparisons import paired_codes
from forecaster.evaluation.outcomes import Outcomes
from forecaster.evaluation.report import paired_line
from forecaster.evaluation.sections import VS_PERSISTENCE, Paired
from forecaster.evaluation.statistics import CONFIDENCE, FLAT_CODE, wilson_interval


@dataclass(frozen=True)
class VenueFigures:
    """One label's test rows pooled over folds."""

    n: int
    decided: int
    hits: int
    interval: tuple[float, float] | None  # Wilson, at CONFIDENCE; None without a decided call
    vs_persistence: Paired

    @classmethod
    def of(cls, rows: Outcomes) -> VenueFigures:
        decided = rows.called != FLAT_CODE
        n_decided = int(decided.sum())
        hits = int((rows.called == rows.actual)[decided].sum())
        interval = wilson_interval(hits, n_decided) if n_decided else None
        paired = paired_codes(rows.called, rows.persistence, rows.actual)
        return cls(len(rows), n_decided, hits, interval, paired)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "decided": self.decided, "hits": self.hits}
        if self.interval is not None:
            out |= {
                "decided_accuracy": self.hits / self.decided,
                "wilson_low": self.interval[0],
                "wilson_high": self.interval[1],
                "confidence": CONFIDENCE,
            }
        return out | {VS_PERSISTENCE: self.vs_persistence.to_json()}

    def line(self) -> str:
        if self.interval is None:
            accuracy = "no decided call"
        else:
            low, high = (100 * x for x in self.interval)
            accuracy = (
                f"decided {100 * self.hits / self.decided:.2f}% [{low:.2f}, {high:.2f}] of {self.decided}"
            )
        return f"{self.n} rows, {accuracy}; {paired_line(VS_PERSISTENCE, self.vs_persistence)}"


def venue_figures(blocks: Sequence[tuple[Outcomes, np.ndarray]]) -> dict[str, VenueFigures]:
    """Per label, the test blocks' (outcomes, row labels) of every fold pooled; {} for a single label."""
    outcomes = Outcomes.concat([o for o, _ in blocks])
    labels = np.concatenate([np.asarray(lab) for _, lab in blocks])
    names = sorted(set(labels.tolist()))
    if len(names) < 2:
        return {}
    return {name: VenueFigures.of(outcomes.take(np.flatnonzero(labels == name))) for name in names}
