"""A training run's per-candle outcomes on its validation and test blocks (outcomes.npz in its run dir).

The sweep leaderboard judges every job of a sweep on the same candles from these files alone: the
model's probabilities and call, the fact, the move, and persistence's call per candle, without
loading any model. Directions are stored as codes (statistics.LABELS order), probabilities and
moves as float32: a month of 1m candles is well under a megabyte.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from forecaster.direction import actual_directions
from forecaster.evaluation.statistics import direction_codes
from forecaster.facts import BPS

OUTCOMES_FILE = "outcomes.npz"
BLOCKS = ("val", "test")  # block codes 0 and 1; validation is what "best of" chooses on


@dataclass(frozen=True)
class Outcomes:
    """Rows of candles t, each judged by the move of t+1; `fold` and `block` say where they were scored."""

    candle_ts: np.ndarray  # int64, start of candle t (ms)
    fold: np.ndarray  # int16
    block: np.ndarray  # int8, index into BLOCKS
    p_up: np.ndarray  # float32
    p_down: np.ndarray  # float32
    called: np.ndarray  # int8 direction code of the model's call (FLAT: abstained)
    actual: np.ndarray  # int8 direction code of the move of t+1 (FLAT: no move)
    ret_bps: np.ndarray  # float32, the move of t+1 in bps
    persistence: np.ndarray  # int8 direction code of persistence's call, the bar

    @classmethod
    def of_block(
        cls,
        fold: int,
        block: str,
        candle_ts: np.ndarray,
        probabilities: tuple[np.ndarray, np.ndarray],
        called: np.ndarray,
        next_ret: np.ndarray,
        persistence: np.ndarray,
    ) -> Outcomes:
        """One block of one fold, from train's arrays (directions as UP/DOWN/FLAT, next_ret a log return)."""
        n = len(candle_ts)
        return cls(
            candle_ts=np.asarray(candle_ts, np.int64),
            fold=np.full(n, fold, np.int16),
            block=np.full(n, BLOCKS.index(block), np.int8),
            p_up=np.asarray(probabilities[0], np.float32),
            p_down=np.asarray(probabilities[1], np.float32),
            called=direction_codes(called, "called").astype(np.int8),
            actual=direction_codes(actual_directions(next_ret), "actual").astype(np.int8),
            ret_bps=(np.asarray(next_ret, np.float64) * BPS).astype(np.float32),
            persistence=direction_codes(persistence, "persistence").astype(np.int8),
        )

    @classmethod
    def concat(cls, parts: list[Outcomes]) -> Outcomes:
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def __len__(self) -> int:
        return len(self.candle_ts)

    def block_rows(self, block: str) -> Outcomes:
        """The rows of one block, one per candle in ascending time. Validation blocks of later folds
        can overlap earlier folds' blocks; a candle scored twice keeps its latest fold's row (the
        model that had seen the most history)."""
        mine = np.flatnonzero(self.block == BLOCKS.index(block))
        newest_first = mine[np.lexsort((-self.fold[mine].astype(np.int64), self.candle_ts[mine]))]
        ts = self.candle_ts[newest_first]
        first = np.ones(len(ts), bool)
        first[1:] = ts[1:] != ts[:-1]
        return self.take(newest_first[first])

    def take(self, rows: np.ndarray) -> Outcomes:
        return Outcomes(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def save_outcomes(path: Path, outcomes: Outcomes, timeframe: str) -> Path:
    arrays = {f.name: getattr(outcomes, f.name) for f in fields(outcomes)}
    np.savez_compressed(path, timeframe=np.array(timeframe), **arrays)
    return path


def load_outcomes(path: Path) -> tuple[Outcomes, str]:
    """(the outcomes, their timeframe); raises OSError/ValueError/KeyError on a missing or torn file."""
    with np.load(path, allow_pickle=False) as data:
        outcomes = Outcomes(**{f.name: data[f.name] for f in fields(Outcomes)})
        return outcomes, str(data["timeframe"])
