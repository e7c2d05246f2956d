"""Evaluation results as frozen dataclasses: one source for metrics.json and for MLflow's names.

`to_json()` is a section's part of metrics.json: its fields in order, a metric that is None (not
defined on the input) left out, tables as lists of rows in which an empty cell is null.
`scalars()` is its numbers under dotted names for MLflow; tables stay in the JSON. A section with
an `undefined` field names each metric it could not define and why (metrics.json and report.md
show the reason); `scalars()` gives each of them as NaN under its usual name, so every job of a
sweep logs the same metric names.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from forecaster.direction import Direction
from forecaster.evaluation.statistics import DOWN_CODE, FLAT_CODE, LABELS, UP_CODE, confusion_counts

UNDEFINED = "undefined"  # the field (and JSON key) naming what a section left out, and why
JOIN = "join"  # EvaluationSet's JSON key of the join report
MODEL = "model"  # who of the evaluated model; the baselines and compared models are judged beside it
PAIRED = "paired"  # EvaluationSet's JSON key of the paired tests
PERSISTENCE = "persistence"  # the baseline every model is paired against: the bar, not 50 %
REVERSAL = "reversal"  # persistence's mirror, the last move reversed: what mean reversion alone scores
VS_PERSISTENCE = f"{MODEL}_vs_{PERSISTENCE}"  # the paired test every evaluation and training run has


def _json(value: Any) -> Any:
    if isinstance(value, Section | Row):
        return value.to_json()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_json(key): _json(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    return value


def named_scalars(sections: Mapping[str, Section], prefix: str = "") -> dict[str, float]:
    """`{prefix}{name}.{scalar}` for each named section: how nested results become flat MLflow names."""
    return {
        f"{prefix}{name}.{key}": value
        for name, section in sections.items()
        for key, value in section.scalars().items()
    }


@dataclass(frozen=True)
class Section:
    """Base of the results: JSON and scalars follow the dataclass fields (see the module docstring)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not (f.name == UNDEFINED and not value):
                out[f.name] = _json(value)
        return out

    def scalars(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Section):
                out |= named_scalars({f.name: value})
            elif isinstance(value, Mapping) and f.name != UNDEFINED:  # counts by direction
                out |= {f"{f.name}.{_json(key)}": float(count) for key, count in value.items()}
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out[f.name] = float(value)
        return out | dict.fromkeys(getattr(self, UNDEFINED, {}), math.nan)


@dataclass(frozen=True)
class Row:
    """One row of a table (reliability bins, coverage points, hours): every field, null when empty."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class Scores(Section):
    """Train's summary of one predictor (eval repeats it as `summary`), every value a float.

    A metric that is not defined (decided accuracy with nothing decided; all but n without rows) is
    None and left out of the JSON and of `scalars()`, as train has always reported it.
    """

    n: float
    decided: float | None = None
    flat_share: float | None = None
    accuracy: float | None = None
    zero_moves: float | None = None
    brier_up: float | None = None
    brier_down: float | None = None
    log_loss_up: float | None = None
    log_loss_down: float | None = None
    decided_accuracy: float | None = None

    @classmethod
    def mean(cls, folds: Sequence[Scores]) -> Scores:
        """Per metric, the mean over the folds where it is defined (train's test block)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            defined = [value for fold in folds if (value := getattr(fold, f.name)) is not None]
            values[f.name] = float(np.mean(defined)) if defined else None
        return cls(**values)


@dataclass(frozen=True)
class Confusion(Section):
    """Counts of predicted (rows) against fact (columns), both in LABELS order.

    JSON `{"pred_UP": {"fact_UP": n, ...}, ...}`: self-describing, and flat as `pred_UP.fact_UP`.
    """

    counts: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, pred: np.ndarray, fact: np.ndarray) -> Confusion:
        """From direction codes (see `statistics.direction_codes`)."""
        return cls(tuple(tuple(int(c) for c in row) for row in confusion_counts(pred, fact)))

    def array(self) -> np.ndarray:
        return np.array(self.counts, np.int64)

    @property
    def n(self) -> int:
        return sum(map(sum, self.counts))

    @property
    def decided(self) -> int:
        return self.n - sum(self.counts[FLAT_CODE])

    @property
    def hits(self) -> int:
        """Decided predictions that met their direction (FLAT is never a hit)."""
        return self.counts[UP_CODE][UP_CODE] + self.counts[DOWN_CODE][DOWN_CODE]

    def to_json(self) -> dict[str, Any]:
        return {
            f"pred_{p}": {f"fact_{a}": self.counts[i][j] for j, a in enumerate(LABELS)}
            for i, p in enumerate(LABELS)
        }

    def scalars(self) -> dict[str, float]:
        return {f"{p}.{a}": float(c) for p, row in self.to_json().items() for a, c in row.items()}


@dataclass(frozen=True)
class Overall(Section):
    """All predictions: accuracy counts FLAT as not right; the facts by direction."""

    n: int
    hits: int
    facts: Mapping[Direction, int]
    zero_moves: int
    accuracy: float | None = None
    flat_share: float | None = None
    undefined: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decided(Section):
    """The decided predictions: accuracy, its Wilson interval, exact one-sided p-values against chance
    and against the in-sample majority direction."""

    n: int
    hits: int
    zero_moves: int
    confidence: float
    accuracy: float | None = None
    wilson_low: float | None = None
    wilson_high: float | None = None
    majority_direction: Direction | None = None
    majority_rate: float | None = None
    p_value_vs_chance: float | None = None
    p_value_vs_majority: float | None = None
    # the decided calls on non-zero moves: a call against a zero move is a miss above, and left out here
    nonzero_n: int | None = None
    nonzero_accuracy: float | None = None
    nonzero_wilson_low: float | None = None
    nonzero_wilson_high: float | None = None
    undefined: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Paired(Section):
    """Two predictors on the candles both decide: the exact one-sided McNemar test that the first is the
    better. Only the candles where exactly one of them is right carry information (`only_first`,
    `only_other`); p is P(X >= only_first) for X ~ Binomial(only_first + only_other, 1/2)."""

    n: int
    hits: int
    other_hits: int
    only_first: int
    only_other: int
    accuracy: float | None = None
    other_accuracy: float | None = None
    p_value: float | None = None
    undefined: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Economics(Section):
    """The size of the calls, for evaluation only (nothing trades): the next candle's move in bps in the
    called direction per decided call, its normal-approximation interval, and what is left of it after
    a round-trip trading cost (`after_cost_bps` < 0: the edge, if any, would not survive costs)."""

    n: int
    cost_bps: float
    confidence: float
    mean_bps: float | None = None
    low_bps: float | None = None
    high_bps: float | None = None
    after_cost_bps: float | None = None
    undefined: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReliabilityBin(Row):
    bin_low: float
    bin_high: float
    count: int
    mean_predicted: float | None
    observed: float | None


@dataclass(frozen=True)
class Head(Section):
    """One probability head: Brier score, log loss, base rate, calibration and its reliability table."""

    n: int
    brier: float | None = None
    log_loss: float | None = None
    base_rate: float | None = None
    mean_predicted: float | None = None
    ece: float | None = None
    mce: float | None = None
    reliability: tuple[ReliabilityBin, ...] = ()
    undefined: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Heads(Section):
    up: Head
    down: Head

    def named(self) -> dict[str, Head]:
        return {"up": self.up, "down": self.down}


@dataclass(frozen=True)
class CoveragePoint(Row):
    """Coverage and decided accuracy had the FLAT rule been (min_prob, min_margin)."""

    min_prob: float
    min_margin: float
    decided: int
    hits: int
    coverage: float | None
    accuracy: float | None


@dataclass(frozen=True)
class RulePoint(Row):
    """A named FLAT rule's point on the coverage curve."""

    name: str
    point: CoveragePoint

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.point.to_json()}


@dataclass(frozen=True)
class Coverage(Section):
    """Accuracy against coverage: min_prob swept with min_margin 0, the reverse, and the named rules."""

    by_min_prob: tuple[CoveragePoint, ...]
    by_min_margin: tuple[CoveragePoint, ...]
    rules: tuple[RulePoint, ...] = ()
    # the most confident 100 %, 50 %, 20 %, ... of these candles by |p_up - p_down|: descriptive (the
    # margins are this data's own quantiles), the table to read a flat=coverage choice from
    by_share: tuple[CoveragePoint, ...] = ()


@dataclass(frozen=True)
class HourRow(Row):
    """One UTC hour of day: predictions, decided, hits, decided accuracy (null where none was decided)."""

    hour: int
    n: int
    decided: int
    hits: int
    accuracy: float | None


@dataclass(frozen=True)
class JoinReport(Section):
    """How the predictions met their facts; nothing unmatched is ever paired with the wrong candle."""

    predictions: int = 0
    facts: int = 0
    matched: int = 0
    unmatched: int = 0  # predictions whose fact is not in the records (not known yet, or a gap)
    duplicate_predictions: int = 0  # further lines for a candle already predicted (the first is kept)
    duplicate_facts: int = 0
    out_of_order: int = 0  # lines not in ascending candle order (sorted before joining)


@dataclass(frozen=True)
class Evaluation(Section):
    """Everything eval reports about one predictor on one set of candles."""

    n: int
    summary: Scores
    confusion: Confusion
    overall: Overall
    decided: Decided
    heads: Heads
    coverage: Coverage
    by_hour: tuple[HourRow, ...] | None = None
    economics: Economics | None = None
    # the heads before the model's calibration, on the same candles (None: uncalibrated model)
    uncalibrated: Heads | None = None

    def scalars(self) -> dict[str, float]:
        out = super().scalars()
        # Train's summary leaves an undefined decided accuracy out; eval logs it as NaN, as every other.
        if self.summary.n and self.summary.decided_accuracy is None:
            out["summary.decided_accuracy"] = math.nan
        return out


@dataclass(frozen=True)
class EvaluationSet:
    """eval's results: the join, then each judged predictor by who, in report order (the model, the
    baselines on the same candles, any compared model)."""

    join: JoinReport
    judged: Mapping[str, Evaluation]
    # paired tests on the candles both decide, e.g. "model_vs_persistence": persistence is the bar
    paired: Mapping[str, Paired] = field(default_factory=dict)

    @property
    def model(self) -> Evaluation:
        return self.judged[MODEL]

    def with_judged(self, who: str, evaluation: Evaluation) -> EvaluationSet:
        return replace(self, judged={**self.judged, who: evaluation})

    def with_paired(self, name: str, paired: Paired) -> EvaluationSet:
        return replace(self, paired={**self.paired, name: paired})

    def to_json(self) -> dict[str, Any]:
        judged = {who: result.to_json() for who, result in self.judged.items()}
        paired = {PAIRED: {name: test.to_json() for name, test in self.paired.items()}} if self.paired else {}
        return {JOIN: self.join.to_json(), **judged, **paired}

    def scalars(self) -> dict[str, float]:
        return named_scalars({JOIN: self.join, **self.judged}) | named_scalars(self.paired, f"{PAIRED}.")
