"""The sweep leaderboard: every job of a training sweep judged on the same candles, the best chosen
on validation, and its significance corrected for the number of configurations tried.

Per job and block (validation, test): decided accuracy with its Wilson interval, FLAT share, the
mean score per candle (+1 right call, -1 wrong call, 0 FLAT), and against persistence the exact
paired test and the edge: per candle, +1 where only the job's call was right, -1 where only
persistence's was, 0 elsewhere (on the candles both decide, as the paired test counts them; an
abstention neither wins nor loses). The choice is made on validation only; on the test block the
paired p-values are Holm-adjusted over the N jobs, and "the best of N beats persistence" (a mean edge
above 0) gets a Reality Check and an SPA p-value from a stationary bootstrap of the edges, which
keeps the dependence between jobs and between neighbouring candles. Pure numpy on the outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Any

import numpy as np

from forecaster.config import EvalConfig
from forecaster.errors import UserError
from forecaster.evaluation.comparisons import paired_codes
from forecaster.evaluation.multiple_testing import BestOfN, best_of_n, holm
from forecaster.evaluation.outcomes import BLOCKS, Outcomes
from forecaster.evaluation.sections import PERSISTENCE, REVERSAL, Paired, Section
from forecaster.evaluation.statistics import (
    CHANCE,
    DOWN_CODE,
    FLAT_CODE,
    UP_CODE,
    binomial_p_value,
    wilson_interval,
)

VALIDATION, TEST = BLOCKS
JUDGED = "judged"  # a job's status when its outcomes are on the board
NOTHING_DECIDED = "no decided call"


@dataclass(frozen=True)
class Registered(Section):
    """A registered model version (MLflow) the leaderboard can alias."""

    name: str
    version: str

    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Job:
    """One job of a sweep as found: its label (what it changed), where it is, and its outcomes, or
    why it has none (unfinished, failed)."""

    label: str
    source: str
    outcomes: Outcomes | None = None
    timeframe: str | None = None
    registered: Registered | None = None
    problem: str | None = None


@dataclass(frozen=True)
class BlockFigures(Section):
    """One predictor on one block's shared candles."""

    n: int
    decided: int
    hits: int
    flat_share: float
    score: float  # mean per candle: +1 right call, -1 wrong call (a call against a zero move too), 0 FLAT
    edge: float | None = None  # mean per candle of the edge over persistence (see the module docstring)
    accuracy: float | None = None
    wilson_low: float | None = None
    wilson_high: float | None = None
    p_vs_chance: float | None = None  # exact one-sided binomial p of the decided hits against 50 %
    vs_persistence: Paired | None = None
    moved: int = 0  # decided calls on candles whose next candle moved
    moved_accuracy: float | None = None  # accuracy of those: zero moves left out, as persistence's bar
    undefined: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FoldFigures(Section):
    """One predictor on one walk-forward fold's test candles (the candles every job scored)."""

    fold: int
    first_ms: int  # the first and last candle t of the fold's rows
    last_ms: int
    figures: BlockFigures


@dataclass(frozen=True)
class JobResult(Section):
    label: str
    source: str
    status: str
    val: BlockFigures | None = None
    test: BlockFigures | None = None
    holm_p: float | None = None  # the test block's paired p vs persistence, Holm-adjusted over the jobs
    registered: Registered | None = None
    folds: tuple[FoldFigures, ...] = ()  # the test block by walk-forward fold
    vs_reversal: Paired | None = (
        None  # the test block paired with the reversal baseline: beyond mean reversion?
    )


@dataclass(frozen=True)
class Leaderboard:
    jobs: tuple[JobResult, ...]
    persistence: Mapping[str, BlockFigures]  # by block, on the same shared candles
    persistence_folds: tuple[FoldFigures, ...]  # the test block by fold, on the same candles
    reversal: Mapping[str, BlockFigures]  # persistence reversed (mean reversion alone), by block
    reversal_folds: tuple[FoldFigures, ...]
    select: str
    best_of: str
    chosen: int | None  # index into jobs of the best on validation; None: no job decided enough
    best_of_n: BestOfN
    min_decided: int

    @property
    def judged(self) -> list[JobResult]:
        return [job for job in self.jobs if job.status == JUDGED]

    @property
    def chosen_job(self) -> JobResult | None:
        return None if self.chosen is None else self.jobs[self.chosen]

    @property
    def corrected_p(self) -> float:
        """The p-value of "the best of N beats persistence" that eval.best_of names."""
        return self.best_of_n.spa_p if self.best_of == "spa" else self.best_of_n.reality_check_p

    def to_json(self) -> dict[str, Any]:
        best = self.best_of_n
        return {
            "select": self.select,
            "chosen": None if (job := self.chosen_job) is None else job.label,
            "best_of_n": {**best.to_json(), "best_label": self.judged[best.best].label},
            "corrected_by": self.best_of,
            "corrected_p": self.corrected_p,
            PERSISTENCE: {block: figures.to_json() for block, figures in self.persistence.items()},
            "persistence_folds": [fold.to_json() for fold in self.persistence_folds],
            REVERSAL: {block: figures.to_json() for block, figures in self.reversal.items()},
            "reversal_folds": [fold.to_json() for fold in self.reversal_folds],
            "jobs": [job.to_json() for job in self.jobs],
        }


def scores(called: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per candle (direction codes): +1 a right call, -1 a wrong one, 0 an abstention."""
    decided = called != FLAT_CODE
    return np.where(decided, np.where(called == actual, 1, -1), 0).astype(np.int8)


def edges(called: np.ndarray, bar: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per candle (direction codes): +1 only `called` right, -1 only `bar` right, 0 otherwise; only
    where both decide, so the sum is the paired test's only_first - only_other."""
    both = (called != FLAT_CODE) & (bar != FLAT_CODE)
    return (both * ((called == actual).astype(np.int8) - (bar == actual).astype(np.int8))).astype(np.int8)


def figures(called: np.ndarray, actual: np.ndarray, bar: np.ndarray | None) -> BlockFigures:
    """A predictor's figures on one block (codes); `bar`: persistence's calls to pair it with."""
    n = len(called)
    decided_mask = called != FLAT_CODE
    decided, hits = int(decided_mask.sum()), int((decided_mask & (called == actual)).sum())
    moved_mask = decided_mask & (actual != FLAT_CODE)
    moved = int(moved_mask.sum())
    base = BlockFigures(
        n=n,
        decided=decided,
        hits=hits,
        flat_share=1 - decided / n,
        score=float(scores(called, actual).mean(dtype=np.float64)),
        edge=None if bar is None else float(edges(called, bar, actual).mean(dtype=np.float64)),
        vs_persistence=None if bar is None else paired_codes(called, bar, actual),
        moved=moved,
        moved_accuracy=hits / moved if moved else None,
    )
    if not decided:
        return replace(base, undefined={"accuracy": NOTHING_DECIDED})
    low, high = wilson_interval(hits, decided)
    chance = binomial_p_value(hits, decided, CHANCE)
    return replace(base, accuracy=hits / decided, wilson_low=low, wilson_high=high, p_vs_chance=chance)


def reversed_codes(codes: np.ndarray) -> np.ndarray:
    """UP and DOWN codes swapped, FLAT kept: persistence's calls -> the reversal baseline's."""
    return np.where(codes == UP_CODE, DOWN_CODE, np.where(codes == DOWN_CODE, UP_CODE, codes)).astype(
        codes.dtype
    )


def by_fold(rows: Outcomes, called: np.ndarray, bar: np.ndarray | None) -> tuple[FoldFigures, ...]:
    """`figures` of `called` (one code per row of `rows`) on each fold's rows, oldest fold first."""
    out = []
    for fold in np.unique(rows.fold):
        mine = rows.fold == fold
        times = rows.candle_ts[mine]
        part = figures(called[mine], rows.actual[mine], None if bar is None else bar[mine])
        out.append(FoldFigures(int(fold), int(times.min()), int(times.max()), part))
    return tuple(out)


def _shared(rows: Sequence[Outcomes], block: str) -> list[Outcomes]:
    """Each job's rows of the candles every job scored in this block, in the same candle order."""
    common = reduce(lambda a, b: np.intersect1d(a, b, assume_unique=True), (r.candle_ts for r in rows))
    if len(common) == 0:
        raise UserError(
            f"the jobs share no {block} candles (different data ranges or splits); "
            "sweep over settings that keep train.val_fraction/test_fraction and the data the same"
        )
    shared = [r.take(np.searchsorted(r.candle_ts, common)) for r in rows]
    first = shared[0]
    for other in shared[1:]:
        if not np.array_equal(other.actual, first.actual):
            raise UserError(
                f"the jobs disagree on what the same {block} candles did: they were not trained on the "
                "same market (symbol, source); judge each market's sweep apart"
            )
    return shared


def _choose(results: Sequence[JobResult], select: str, min_decided: int) -> int | None:
    """The best job on validation by `select`, among those with at least `min_decided` decided calls."""
    best, best_value = None, -np.inf
    for index, job in enumerate(results):
        val = job.val
        if job.status != JUDGED or val is None or val.decided < min_decided:
            continue
        value = {"edge": val.edge, "score": val.score, "decided_accuracy": val.accuracy}[select]
        if value is not None and value > best_value:
            best, best_value = index, value
    return best


def leaderboard(jobs: Sequence[Job], settings: EvalConfig, seed: int) -> Leaderboard:
    """Judge the jobs on the candles they all scored; raise UserError when nothing can be judged."""
    finished = [job for job in jobs if job.outcomes is not None]
    if not finished:
        raise UserError(f"none of the {len(jobs)} jobs has outcomes to judge (unfinished or failed)")
    timeframes = sorted({str(job.timeframe) for job in finished})
    if len(timeframes) > 1:
        raise UserError(
            f"the jobs predict different timeframes ({', '.join(timeframes)}); candles of different "
            "lengths cannot be paired: judge each timeframe's jobs apart"
        )
    per_block: dict[str, list[BlockFigures]] = {}
    bar: dict[str, BlockFigures] = {}
    mirror: dict[str, BlockFigures] = {}
    test_edges: list[np.ndarray] = []
    folds: list[tuple[FoldFigures, ...]] = []
    beyond: list[Paired] = []
    bar_folds: tuple[FoldFigures, ...] = ()
    mirror_folds: tuple[FoldFigures, ...] = ()
    for block in BLOCKS:
        shared = _shared([job.outcomes.block_rows(block) for job in finished if job.outcomes], block)
        persistence = shared[0].persistence
        reversal = reversed_codes(persistence)
        bar[block] = figures(persistence, shared[0].actual, None)
        mirror[block] = figures(reversal, shared[0].actual, None)
        per_block[block] = [figures(rows.called, rows.actual, persistence) for rows in shared]
        if block == TEST:
            test_edges = [edges(rows.called, persistence, rows.actual) for rows in shared]
            folds = [by_fold(rows, rows.called, persistence) for rows in shared]
            beyond = [paired_codes(rows.called, reversal, rows.actual) for rows in shared]
            bar_folds = by_fold(shared[0], persistence, None)
            mirror_folds = by_fold(shared[0], reversal, None)
    differentials = np.stack(test_edges).astype(np.float32)
    best = best_of_n(
        differentials, settings.bootstrap_draws, settings.mean_block, np.random.default_rng(seed)
    )
    adjusted = holm([f.vs_persistence.p_value if f.vs_persistence else None for f in per_block[TEST]])
    judged = iter(range(len(finished)))
    results = []
    for job in jobs:
        if job.outcomes is None:
            results.append(
                JobResult(job.label, job.source, job.problem or "no outcomes", registered=job.registered)
            )
            continue
        k = next(judged)
        results.append(
            JobResult(
                job.label,
                job.source,
                JUDGED,
                per_block[VALIDATION][k],
                per_block[TEST][k],
                adjusted[k],
                job.registered,
                folds[k],
                beyond[k],
            )
        )
    return Leaderboard(
        jobs=tuple(results),
        persistence=bar,
        persistence_folds=bar_folds,
        reversal=mirror,
        reversal_folds=mirror_folds,
        select=settings.select,
        best_of=settings.best_of,
        chosen=_choose(results, settings.select, settings.min_decided),
        best_of_n=best,
        min_decided=settings.min_decided,
    )
