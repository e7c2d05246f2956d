"""The memory behind model=memory: stored windows, their outcomes, the neighbours' vote, the file.

A stored window is a standardised feature row ending at candle t, with the move of t+1 labelled by
the training rule (train.threshold_bps, train.zero_moves) and the minute at which that move is known
(the close of t+1). A query at candle t may use only windows known by t minus `embargo` candles:
the store enforces it (forecaster/models/neighbours.py), so the same code is causal in training,
in a replay of history and live, where every closed candle adds the window before it.

`<dir>/memory.npz` holds the windows oldest first with their outcomes and how they were labelled
(numpy arrays, never pickle); `<dir>/model.json` is the card, with the npz's SHA-256, written last.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forecaster.candles import MINUTE_MS, Candle
from forecaster.errors import ConfigError, UserError
from forecaster.models.base import LoadedModel
from forecaster.models.card import ModelCard, read_weights_card, write_card
from forecaster.models.memory import Memory
from forecaster.models.neighbours import NEVER, window_store
from forecaster.models.normalisation import Standardizer
from forecaster.training.dataset import Dataset, targets
from forecaster.training.splits import SplitError
from forecaster.training.targets import training_rows

if TYPE_CHECKING:
    from forecaster.config import TrainConfig

log = logging.getLogger(__name__)
MEMORY_FILE = "memory.npz"
QUERY_BATCH = 1024  # queries per search call when scoring history: one block's distances stay ~64 MB
EVERYTHING = NEVER - 1  # a limit that allows every stored window (a frozen memory scored on later rows)


@dataclass(frozen=True)
class Labelling:
    """How a settled move becomes a stored outcome: as the model's training rows were labelled."""

    threshold_bps: float
    zero_moves: str
    step_ms: int  # the timeframe's candle, in ms: the outcome of window t is known one candle later

    @property
    def step_minutes(self) -> int:
        return self.step_ms // MINUTE_MS


@dataclass(frozen=True)
class Regime:
    """memory.same_regime: a window's group is the quantile bin of one standardised feature column."""

    column: int
    edges: np.ndarray  # inner bin edges, on training rows

    @classmethod
    def fit(cls, option: Memory, names: tuple[str, ...], rows: np.ndarray) -> Regime:
        if option.regime_feature not in names:
            vols = [name for name in names if name.startswith("vol_")]
            raise ConfigError(
                f"model.same_regime needs the feature {option.regime_feature!r}, which these features lack; "
                f"set model.regime_feature to one of {vols or names[:5]} or use features=rich"
            )
        column = names.index(option.regime_feature)
        inner = np.linspace(0, 1, option.regime_bins + 1)[1:-1]
        return cls(column, np.quantile(rows[:, column], inner))

    def groups(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, rows[:, self.column]).astype(np.int32)


class PatternMemory:
    """Stored windows and their outcomes, slot by slot beside the store, and the neighbours' vote."""

    def __init__(
        self,
        option: Memory,
        dims: int,
        labelling: Labelling,
        base: tuple[float, float],
        regime: Regime | None,
    ) -> None:
        self.option, self.dims, self.labelling, self.base, self.regime = option, dims, labelling, base, regime
        self.store = window_store(
            option.index, dims, option.block, option.metric, option.capacity, option.faiss
        )
        self.outcome = np.zeros((0, 2), np.float32)  # [up, down] per slot
        self.next_ret = np.zeros(0, np.float64)  # per slot
        self.candle_ts = np.zeros(0, np.int64)  # start of the window's last candle, per slot
        self.newest_ts: int | None = None  # the newest window added

    @property
    def size(self) -> int:
        return self.store.size

    def add(self, rows: np.ndarray, candle_ts: np.ndarray, next_ret: np.ndarray) -> int:
        """Windows (standardised rows, oldest first) whose next move is now known; those the training
        rule leaves out (train.zero_moves) and those not newer than the newest stored are skipped.
        Returns how many were stored."""
        ts = np.asarray(candle_ts, np.int64)
        fresh = ts > (self.newest_ts if self.newest_ts is not None else np.iinfo(np.int64).min)
        ret = np.asarray(next_ret, np.float64)[fresh]
        labelled = Dataset(
            np.asarray(rows, np.float64)[fresh],
            targets(ret, self.labelling.threshold_bps),
            ts[fresh],
            ret,
            np.full(len(ret), ""),
        )
        kept = training_rows(labelled, self.labelling.zero_moves, self.labelling.threshold_bps)
        if len(kept) == 0:
            return 0
        known = kept.candle_ts // MINUTE_MS + self.labelling.step_minutes
        groups = None if self.regime is None else self.regime.groups(kept.X)
        self._keep(kept.X, known, groups, kept.y, kept.next_ret, kept.candle_ts)
        return len(kept)

    def vote(self, rows: np.ndarray, limits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p_up, p_down, spread) per standardised row from its k nearest windows known by its limit.

        Each neighbour weighs 1 / (its distance + the mean distance of the k), so a near twin counts
        more without one window deciding alone; the weights are scaled to sum to the neighbours found,
        and `prior` pseudo-counts of the base rates are added. Spread: the weighted standard deviation
        of the neighbours' moves (+1 up, -1 down, 0 neither), 0 without neighbours.
        """
        groups = None if self.regime is None else self.regime.groups(rows)
        found = self.store.nearest(rows, limits, self.option.k, groups)
        valid = found.row >= 0
        distance = np.where(valid, found.distance, 0.0).astype(np.float64)
        distance = np.sqrt(distance) if self.option.metric == "euclidean" else distance
        n = valid.sum(axis=1)
        mean = distance.sum(axis=1) / np.maximum(n, 1)
        weight = np.where(valid, 1.0 / (distance + mean[:, None] + np.finfo(np.float64).tiny), 0.0)
        weight *= (n / np.maximum(weight.sum(axis=1), np.finfo(np.float64).tiny))[:, None]
        outcome = self.outcome[np.where(valid, found.row, 0)].astype(np.float64)  # (q, k, 2)
        votes = np.einsum("qk,qkh->qh", weight, outcome)
        prior = self.option.prior
        total = np.maximum(n + prior, np.finfo(np.float64).tiny)[:, None]
        probabilities = np.where(
            (n + prior)[:, None] > 0, (votes + prior * np.asarray(self.base)) / total, self.base
        )
        moves = outcome[..., 0] - outcome[..., 1]
        centre = np.einsum("qk,qk->q", weight, moves) / np.maximum(n, 1)
        spread = np.sqrt(np.einsum("qk,qk->q", weight, (moves - centre[:, None]) ** 2) / np.maximum(n, 1))
        return probabilities[:, 0], probabilities[:, 1], spread

    def limit(self, candle_ts: np.ndarray) -> np.ndarray:
        """The last minute whose outcomes a query at `candle_ts` may use: its close minus the embargo."""
        minutes = np.asarray(candle_ts, np.int64) // MINUTE_MS
        return (minutes - self.option.embargo * self.labelling.step_minutes).astype(np.int32)

    def save(self, directory: str | os.PathLike[str], card: ModelCard) -> Path:
        """memory.npz (temporary name, then renamed), then the card: a crash leaves the old pair."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        slots, keys, known, groups = self.store.stored()
        path = folder / MEMORY_FILE
        partial = folder / f".{MEMORY_FILE}.part"
        with partial.open("wb") as handle:
            np.savez(
                handle,
                keys=keys,
                known=known,
                groups=groups,
                outcome=self.outcome[slots],
                next_ret=self.next_ret[slots],
                candle_ts=self.candle_ts[slots],
                threshold_bps=np.float64(self.labelling.threshold_bps),
                zero_moves=np.str_(self.labelling.zero_moves),
                step_ms=np.int64(self.labelling.step_ms),
                base=np.asarray(self.base, np.float64),
                metric=np.str_(self.option.metric),
                regime_column=np.int64(-1 if self.regime is None else self.regime.column),
                regime_edges=np.zeros(0) if self.regime is None else self.regime.edges,
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return write_card(folder, card, [path])

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        """The windows of a saved memory back in the store, as saved (the newest `capacity` of them)."""
        keep = slice(-self.option.capacity, None) if self.option.capacity else slice(None)
        saved = {
            name: arrays[name][keep]
            for name in ("keys", "known", "groups", "outcome", "next_ret", "candle_ts")
        }
        if len(saved["known"]) == 0:
            return
        groups = saved["groups"] if self.regime else None
        self._keep(
            saved["keys"], saved["known"], groups, saved["outcome"], saved["next_ret"], saved["candle_ts"]
        )

    def _keep(
        self,
        keys: np.ndarray,
        known: np.ndarray,
        groups: np.ndarray | None,
        outcome: np.ndarray,
        next_ret: np.ndarray,
        candle_ts: np.ndarray,
    ) -> None:
        """Windows into the store, and their outcomes into the same slots (oldest first, at least one)."""
        slots = self.store.add(keys, known, groups)
        self._reserve(int(slots.max()) + 1)
        self.outcome[slots], self.next_ret[slots], self.candle_ts[slots] = outcome, next_ret, candle_ts
        self.newest_ts = int(candle_ts[-1])

    def _reserve(self, needed: int) -> None:
        if needed > len(self.next_ret):
            grow = max(needed, 2 * len(self.next_ret)) - len(self.next_ret)
            self.outcome = np.concatenate([self.outcome, np.zeros((grow, 2), np.float32)])
            self.next_ret = np.concatenate([self.next_ret, np.zeros(grow)])
            self.candle_ts = np.concatenate([self.candle_ts, np.zeros(grow, np.int64)])


@dataclass(eq=False)
class MemoryFit:
    """mode=train's result: the memory of one fold's training rows, scored frozen on later rows."""

    memory: PatternMemory
    standardizer: Standardizer
    best_epoch: int = 0
    epochs: int = 0

    def probabilities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_up, p_down) for raw rows that all come after the training rows (every window allowed)."""
        rows = self.standardizer(np.asarray(X, np.float64))
        batches = [rows[i : i + QUERY_BATCH] for i in range(0, len(rows), QUERY_BATCH)]
        votes = [self.memory.vote(batch, np.full(len(batch), EVERYTHING)) for batch in batches]
        if not votes:
            return np.zeros(0), np.zeros(0)
        return np.concatenate([v[0] for v in votes]), np.concatenate([v[1] for v in votes])

    def save(self, directory: str | os.PathLike[str], card: ModelCard) -> Path:
        return self.memory.save(directory, card)


class LiveMemory:
    """The live predictor: told every closed candle in order (`remember`), it stores the window before
    it once its move is known, and votes on the newest window (`__call__`) with what was known by then.

    A window is stored only when the next candle follows it without a gap (as training rows are), and
    only if newer than the newest stored, so a replay or a restart's catch-up never stores one twice.
    """

    trained = True

    def __init__(self, memory: PatternMemory, card: ModelCard | None = None) -> None:
        self.memory = memory
        self.card = card
        self._pending: tuple[np.ndarray, int] | None = None  # the newest window and its candle
        self._close: float | None = None  # the last candle's close
        self._now: int | None = None  # start of the last candle told

    def remember(self, candle: Candle, row: np.ndarray | None) -> None:
        step = self.memory.labelling.step_ms
        if (
            self._pending is not None
            and self._close is not None
            and candle.start_ms - self._pending[1] == step
        ):
            next_ret = np.log(np.float64(candle.close)) - np.log(np.float64(self._close))
            self.memory.add(self._pending[0][None, :], np.array([self._pending[1]]), np.array([next_ret]))
        self._pending = None if row is None else (np.asarray(row, np.float64), candle.start_ms)
        self._close, self._now = candle.close, candle.start_ms

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]:
        if self._now is None:
            raise ValueError("the memory was asked before any candle was remembered")
        p_up, p_down, spread = self.memory.vote(
            np.asarray(x, np.float64)[None, :], self.memory.limit(np.array([self._now]))
        )
        return float(p_up[0]), float(p_down[0]), float(spread[0])

    def catch_up(self, resume_after: int | None) -> int:
        """Candles of history before `resume_after` (a restart's last recorded candle) whose windows a
        restart must see again: those since the newest stored (lost to a crash since the last save)."""
        newest = self.memory.newest_ts
        if resume_after is None or newest is None or resume_after <= newest:
            return 0
        return (resume_after - newest) // self.memory.labelling.step_ms

    @property
    def save_every(self) -> int:
        return self.memory.option.save_every

    def metrics(self) -> dict[str, float]:
        return {"memory_windows": float(self.memory.size)}

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """The grown memory, with the card it was loaded with (its SHA-256 renewed)."""
        if self.card is None:
            raise ValueError("a memory without a card cannot be saved")
        return self.memory.save(directory, self.card)


def fit(option: Memory, data_train: Dataset, config: TrainConfig) -> MemoryFit:
    """The memory of the training rows (standardised with their own statistics)."""
    if len(data_train) < 2:
        raise SplitError("the training part has fewer than 2 rows; need more history")
    standardizer = Standardizer.fit(data_train.X, config.clip_z)
    rows = standardizer(data_train.X)
    regime = Regime.fit(option, data_train.names, rows) if option.same_regime else None
    steps = np.diff(data_train.candle_ts)
    labelling = Labelling(config.threshold_bps, config.zero_moves, int(steps[steps > 0].min()))
    base = (float(data_train.y[:, 0].mean()), float(data_train.y[:, 1].mean()))
    memory = PatternMemory(option, rows.shape[1], labelling, base, regime)
    stored = memory.add(rows, data_train.candle_ts, data_train.next_ret)
    log.info("memory: %d windows of %d features from the training rows", stored, rows.shape[1])
    return MemoryFit(memory, standardizer)


def load(option: Memory, directory: str | os.PathLike[str], expect: Mapping[str, Any] | None) -> LoadedModel:
    """A memory saved by `PatternMemory.save`, checked against its card and `expect`, as the live
    predictor; the option's query keys (k, embargo, prior, capacity, ...) are this run's."""
    folder = Path(directory)
    path = folder / MEMORY_FILE
    card = read_weights_card(folder, [path], expect)
    if card.normalisation is None:
        raise UserError(f"{folder / 'model.json'} has no normalisation stats; re-train the memory")
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read the memory at {path} ({exc}); re-train it") from exc
    metric = str(arrays["metric"])
    if metric != option.metric:
        raise UserError(f"the memory at {folder} was built with model.metric={metric}; run with that metric")
    column = int(arrays["regime_column"])
    regime = Regime(column, arrays["regime_edges"]) if column >= 0 else None
    if option.same_regime != (regime is not None):
        raise UserError(
            f"the memory at {folder} was built with model.same_regime={regime is not None}; "
            "run with that setting or re-train"
        )
    labelling = Labelling(float(arrays["threshold_bps"]), str(arrays["zero_moves"]), int(arrays["step_ms"]))
    base = arrays["base"]
    memory = PatternMemory(option, card.spec.n_features, labelling, (float(base[0]), float(base[1])), regime)
    memory.restore(arrays)
    return LoadedModel(LiveMemory(memory, replace(card, weights_sha256=None)), card.normalisation, card)
