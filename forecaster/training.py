"""History -> dataset X(t) -> y(t+1), chronological splits, and the Optax training loop.

Everything here is pure and I/O-free (no files, no MLflow): `modes/train.py` wires it to data,
tracking and saving. Features come from the same `BasicFeatures.batch` that live prediction uses,
and evaluation of a split goes through `model.CompiledModel`, so there is one path from candle to
probability whether training, evaluating or predicting live.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from tqdm import tqdm

from forecaster.candles import CandleArray, timeframe_ms
from forecaster.config import TrainConfig
from forecaster.errors import UserError
from forecaster.facts import BPS
from forecaster.features import BasicFeatures
from forecaster.model import CompiledModel, Ensemble, Model, ModelSpec, Standardizer, build

UP, DOWN = 0, 1  # target columns, in the model's head order
N_TARGETS = 2
# Validation rows are scored in fixed-size chunks: one compile for any split size, bounded memory.
EVAL_CHUNK = 8192
# Separates the dropout key stream from model init, which uses PRNGKey(spec.seed) directly.
DROPOUT_STREAM = 1
BOOTSTRAP_STREAM = 2  # seeds the bootstrap counts apart from the minibatch order


class SplitError(UserError, ValueError):
    """A split part would be empty; the message says what to change."""


@dataclass(frozen=True)
class Dataset:
    """Rows of a supervised problem, one per candle t that has a full window and a next candle.

    X: (N, F) float64 feature rows ending at candle t; y: (N, 2) float32 targets [up, down] for t+1;
    candle_ts: (N,) int64 start of candle t; next_ret: (N,) float64 log return close(t+1)/close(t).
    """

    X: np.ndarray
    y: np.ndarray
    candle_ts: np.ndarray
    next_ret: np.ndarray

    def __len__(self) -> int:
        return len(self.candle_ts)

    def __getitem__(self, index: slice | np.ndarray) -> Dataset:
        return Dataset(self.X[index], self.y[index], self.candle_ts[index], self.next_ret[index])


def make_dataset(candles: CandleArray, features: BasicFeatures, threshold_bps: float) -> Dataset:
    """Feature rows X(t) and targets y(t+1) from an ascending candle history.

    With r = log(close(t+1) / close(t)) and thr = threshold_bps / 1e4 taken as a log-return
    (1 bp ~ 1e-4 in log terms, the same to within 0.005% of itself at these sizes):
    y_up = [r > +thr], y_down = [r < -thr]; a move inside [-thr, +thr] (with thr = 0: no move) has
    both targets 0, the FLAT fact.

    A row exists only where the `features.window` candles ending at t and the candle t+1 are
    consecutive, each exactly one interval after the previous: a gap in the history would put a
    multi-interval return into a feature or the target, which live prediction never sees (live
    backfills gaps), so rows touching one are dropped. X(t) is `features.batch` row t, which reads
    candles <= t only.
    """
    step = timeframe_ms(candles.timeframe)
    n = len(candles)
    rows = features.batch(candles)
    log_close = np.log(candles.close)
    next_ret = np.full(n, np.nan)
    next_ret[:-1] = np.diff(log_close)
    # gap[i]: candle i+1 does not follow candle i; row t needs no gap in pairs t-window+1 .. t.
    gap = np.ones(n, dtype=bool)
    gap[:-1] = np.diff(candles.start_ms) != step
    gaps_before = np.concatenate([[0], np.cumsum(gap)])  # gaps_before[i] = gaps in pairs < i
    first = np.arange(n) - features.window + 1
    contiguous = (first >= 0) & (gaps_before[np.arange(n) + 1] - gaps_before[np.maximum(first, 0)] == 0)
    keep = contiguous & np.isfinite(rows).all(axis=1)
    thr = threshold_bps / BPS
    ret = next_ret[keep]
    y = np.stack([ret > thr, ret < -thr], axis=1).astype(np.float32)
    return Dataset(rows[keep], y, candles.start_ms[keep].astype(np.int64), ret)


@dataclass(frozen=True)
class Split:
    """Contiguous, chronological row ranges of one dataset; embargoed rows between them are unused."""

    train: slice
    val: slice
    test: slice

    def sizes(self) -> tuple[int, int, int]:
        return tuple(part.stop - part.start for part in (self.train, self.val, self.test))  # type: ignore[return-value]


def split(n: int, val_fraction: float, test_fraction: float, embargo: int) -> Split:
    """train | embargo | val | embargo | test over n rows in time order.

    val and test hold int(n * fraction) rows each; the embargo (pass embargo_windows *
    features.window) keeps any candle of a later part's feature windows out of an earlier part's
    targets, so neighbouring rows cannot leak across a boundary.
    """
    return walk_forward(n, 1, val_fraction, test_fraction, embargo)[0]


def walk_forward(n: int, folds: int, val_fraction: float, test_fraction: float, embargo: int) -> list[Split]:
    """Expanding-window folds, oldest first: fold k trains on everything before its val block.

    Every fold's val and test blocks have the sizes `split` gives; the test blocks are consecutive,
    do not overlap, and the last ends at row n, so together they score the newest folds *
    int(n * test_fraction) rows, each by a model that saw only earlier data. folds=1 is `split`.
    """
    if folds < 1 or embargo < 0:
        raise ValueError(f"need folds >= 1 and embargo >= 0, got folds={folds}, embargo={embargo}")
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    if n_val < 1 or n_test < 1:
        raise SplitError(
            f"{n} rows give an empty validation or test part; "
            "need more history or larger train.val_fraction/test_fraction"
        )
    splits = []
    for k in range(folds):
        test_end = n - (folds - 1 - k) * n_test
        test_start = test_end - n_test
        val_start = test_start - embargo - n_val
        train_end = val_start - embargo
        if train_end < 1:
            raise SplitError(
                f"{n} rows leave fold {k + 1} of {folds} no training rows; need more history, "
                "fewer train.folds, smaller val/test fractions or a smaller train.embargo_windows"
            )
        splits.append(
            Split(slice(0, train_end), slice(val_start, val_start + n_val), slice(test_start, test_end))
        )
    return splits


@dataclass(frozen=True)
class EpochStats:
    """One epoch (counted from 1); seconds is its wall time including validation."""

    epoch: int
    train_loss: float
    val_loss: float
    seconds: float
    samples_per_s: float


@dataclass(frozen=True)
class TrainResult:
    """The best epoch's model, the standardizer fitted on the training rows, and the per-epoch history."""

    model: Model
    standardizer: Standardizer
    history: list[EpochStats]
    best_epoch: int  # 1-based; history[best_epoch - 1] describes `model`
    stopped_early: bool
    compile_seconds: float  # jit compile of the epoch and validation functions, before epoch 1


def bce_per_member(logits: Array, y: Array, weights: Array | None = None) -> Array:
    """Mean BCE-with-logits over rows and both heads, per member: logits (B, 2) -> (1,), (B, K, 2) -> (K,).

    `weights` (B, K): each member's weight of each row (the bootstrap); None weighs every row 1.
    """
    if logits.ndim == y.ndim + 1:
        y = y[:, None, :]
    losses = optax.sigmoid_binary_cross_entropy(logits, y)
    members = losses.reshape(losses.shape[0], -1, N_TARGETS)
    if weights is None:
        return members.mean(axis=(0, 2))
    return (members.mean(axis=2) * weights).sum(axis=0) / jnp.maximum(weights.sum(axis=0), 1.0)


@dataclass(frozen=True)
class Steps:
    """The pure pieces of one training run, shared by `train` and the benchmark.

    Parameters and optimiser state live outside (passed in, returned updated), so the jitted
    functions are pure and their buffers can be donated. For an ensemble the optimiser is vmapped
    over the member axis: gradient clipping and the schedule then act per member, and each member
    gets the update it would get if trained alone on the same minibatches (with its own dropout).
    """

    static: Any  # the model with its arrays taken out (eqx.partition)
    optimizer: optax.GradientTransformation
    ensemble: bool
    dropout: bool
    key: Array  # dropout key stream; folded with the global step number
    bootstrap: bool = False  # Y carries one weight column per member after the two targets

    def init(self, params: Any) -> Any:
        return jax.vmap(self.optimizer.init)(params) if self.ensemble else self.optimizer.init(params)

    def loss(self, params: Any, x: Array, y: Array, key: Array | None) -> tuple[Array, Array]:
        """(objective, mean member loss): the objective sums members so none is scaled by K."""
        model = eqx.combine(params, self.static)
        if key is None:
            logits = jax.vmap(model)(x)
        else:
            keys = jax.random.split(key, len(x))
            logits = jax.vmap(lambda row, k: model(row, inference=False, key=k))(x, keys)
        targets, weights = (y[:, :N_TARGETS], y[:, N_TARGETS:]) if self.bootstrap else (y, None)
        per_member = bce_per_member(logits, targets, weights)
        return per_member.sum(), per_member.mean()

    def step(self, params: Any, state: Any, x: Array, y: Array, step_no: Array) -> tuple[Any, Any, Array]:
        """One AdamW update on one minibatch; returns the minibatch's pre-update mean loss."""
        key = jax.random.fold_in(self.key, step_no) if self.dropout else None
        grads, loss = jax.grad(self.loss, has_aux=True)(params, x, y, key)
        update = jax.vmap(self.optimizer.update) if self.ensemble else self.optimizer.update
        updates, state = update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    def epoch(
        self, params: Any, state: Any, X: Array, Y: Array, batches: Array, step0: Array
    ) -> tuple[Any, Any, Array]:
        """All minibatches of one epoch (`batches`: (steps, batch) row indices) in one call.

        Returns the summed minibatch losses. Rows are gathered from device-resident X and Y inside
        the loop, so nothing crosses the host boundary per step.
        """

        def body(i: Array, carry: tuple[Any, Any, Array]) -> tuple[Any, Any, Array]:
            params, state, total = carry
            rows = batches[i]
            params, state, loss = self.step(params, state, X[rows], Y[rows], step0 + i)
            return params, state, total + loss

        return jax.lax.fori_loop(0, batches.shape[0], body, (params, state, jnp.zeros((), jnp.float32)))

    def eval_loss(self, params: Any, X: Array, Y: Array, weight: Array) -> Array:
        """Mean member loss over rows with weight 1 of chunked (C, EVAL_CHUNK, ...) arrays (padding: 0)."""
        model = eqx.combine(params, self.static)

        def chunk(args: tuple[Array, Array, Array]) -> Array:
            x, y, w = args
            logits = jax.vmap(model)(x)
            if logits.ndim == y.ndim + 1:
                y = y[:, None, :]
            losses = optax.sigmoid_binary_cross_entropy(logits, y)
            return (losses.reshape(len(x), -1).mean(axis=1) * w).sum()

        return jax.lax.map(chunk, (X, Y, weight)).sum() / weight.sum()


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW on the configured schedule (cosine: warmup then decay to 0)."""
    if config.schedule == "cosine":
        warmup = int(config.warmup_fraction * total_steps)
        rate: optax.ScalarOrSchedule = optax.warmup_cosine_decay_schedule(
            0.0, config.learning_rate, warmup, max(total_steps, warmup + 1)
        )
    elif config.schedule == "constant":
        rate = config.learning_rate
    else:
        raise ValueError(f"schedule {config.schedule!r} is not one of: cosine, constant")
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip),
        optax.adamw(rate, weight_decay=config.weight_decay),
    )


def make_steps(spec: ModelSpec, model: Model, config: TrainConfig, total_steps: int, seed: int) -> Steps:
    _, static = eqx.partition(model, eqx.is_inexact_array)
    return Steps(
        static=static,
        optimizer=make_optimizer(config, total_steps),
        ensemble=isinstance(model, Ensemble),
        dropout=spec.dropout > 0,
        key=jax.random.fold_in(jax.random.PRNGKey(seed), DROPOUT_STREAM),
        bootstrap=config.bootstrap,
    )


def chunk_rows(X: np.ndarray, Y: np.ndarray, chunk: int = EVAL_CHUNK) -> tuple[Array, Array, Array]:
    """Pad rows to a multiple of `chunk` and reshape to (C, chunk, ...), with a 0/1 weight per row."""
    n = len(X)
    padded = -(-n // chunk) * chunk
    weight = np.zeros(padded, np.float32)
    weight[:n] = 1.0
    Xp = np.zeros((padded, X.shape[1]), np.float32)
    Yp = np.zeros((padded, Y.shape[1]), np.float32)
    Xp[:n], Yp[:n] = X, Y
    return (
        jnp.asarray(Xp.reshape(-1, chunk, X.shape[1])),
        jnp.asarray(Yp.reshape(-1, chunk, Y.shape[1])),
        jnp.asarray(weight.reshape(-1, chunk)),
    )


def epoch_batches(rng: np.random.Generator, n: int, batch: int) -> np.ndarray:
    """A fresh permutation cut into n // batch minibatches; the remainder (< batch) sits out this epoch."""
    steps = n // batch
    return rng.permutation(n)[: steps * batch].astype(np.int32).reshape(steps, batch)


def train(
    spec: ModelSpec,
    data_train: Dataset,
    data_val: Dataset,
    config: TrainConfig,
    seed: int,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Fit a freshly built `spec` model on data_train, early-stopping on data_val's loss.

    Standardisation is fitted here, on the training rows only, and returned for the sidecar.
    Deterministic given `seed` (minibatch order from a numpy Generator, dropout keys from
    fold_in(seed, step)) on a given backend.

    Speed: the training rows are staged on the device once and each epoch runs as one jitted
    call, a `fori_loop` over minibatches that gathers rows by index on the device, with the
    parameter and optimiser buffers donated. On 2 CPU cores (twohead [64, 64], F=19, batch 1024,
    1M rows) this measured 0.32-0.48 s per epoch (~3M samples/s, >95% of it inside the jitted
    call), against 0.55-0.63 s for a Python loop over a jitted minibatch step fed numpy slices
    (per-step dispatch and host gathers; ~22% of its wall time outside the step) and ~0.55 s for
    a per-step call gathering on the device; see forecaster/benchmarks/training.py. 16 steps per
    call or the whole epoch measured the same, so one call per epoch. (The fori_loop lowers to a
    scan; STACK.md's slower whole-epoch scan copied the shuffled epoch on the host first, which
    the on-device gather here avoids, the likely difference.)
    """
    if len(data_train) == 0 or len(data_val) == 0:
        raise SplitError("training and validation parts must both have rows; need more history")
    standardizer = Standardizer.fit(data_train.X)
    batch = min(config.batch_size, len(data_train))
    steps_per_epoch = len(data_train) // batch
    model = build(spec)
    steps = make_steps(spec, model, config, config.epochs * steps_per_epoch, seed)
    params, _ = eqx.partition(model, eqx.is_inexact_array)
    state = steps.init(params)
    X = jnp.asarray(standardizer(data_train.X), dtype=jnp.float32)
    targets = data_train.y
    if config.bootstrap:
        # Online bootstrap: each member weighs each row by its own Poisson(1) count, so members see
        # different resamples of the same minibatches (one vmapped step serves them all).
        counts = np.random.default_rng([seed, BOOTSTRAP_STREAM]).poisson(1.0, (len(data_train), spec.members))
        targets = np.concatenate([targets, counts.astype(np.float32)], axis=1)
    Y = jnp.asarray(targets, dtype=jnp.float32)
    val_chunks = chunk_rows(standardizer(data_val.X).astype(np.float32), data_val.y)
    rng = np.random.default_rng(seed)
    # Compile ahead of the loop so that epoch 1's time and throughput are not the compiler's.
    compiling = time.perf_counter()
    batch_shape = jax.ShapeDtypeStruct((steps_per_epoch, batch), jnp.int32)
    step_shape = jax.ShapeDtypeStruct((), jnp.int32)
    run_epoch = (
        jax.jit(steps.epoch, donate_argnums=(0, 1))
        .lower(params, state, X, Y, batch_shape, step_shape)
        .compile()
    )
    val_loss = jax.jit(steps.eval_loss).lower(params, *val_chunks).compile()
    compile_seconds = time.perf_counter() - compiling

    history: list[EpochStats] = []
    best_params: Any = None
    best_epoch, best_val = 0, float("inf")
    bar = tqdm(
        range(1, config.epochs + 1), desc=f"train {spec.name}", unit="epoch", disable=not config.progress
    )
    for epoch in bar:
        started = time.perf_counter()
        batches = jnp.asarray(epoch_batches(rng, len(data_train), batch))
        step0 = jnp.asarray((epoch - 1) * steps_per_epoch, dtype=jnp.int32)
        params, state, total = run_epoch(params, state, X, Y, batches, step0)
        train_loss = float(total) / steps_per_epoch
        val = float(val_loss(params, *val_chunks))
        seconds = time.perf_counter() - started
        stats = EpochStats(epoch, train_loss, val, seconds, steps_per_epoch * batch / seconds)
        history.append(stats)
        bar.set_postfix(train=f"{stats.train_loss:.4f}", val=f"{val:.4f}")
        if on_epoch is not None:
            on_epoch(stats)
        if val < best_val:
            # The next epoch donates `params`; keep a copy of the best weights.
            best_params, best_epoch, best_val = jax.tree.map(jnp.copy, params), epoch, val
        elif epoch - best_epoch >= config.patience:
            break
    bar.close()
    if best_epoch == 0:  # every validation loss was NaN: nothing to prefer, keep the last weights
        best_params, best_epoch = params, len(history)
    return TrainResult(
        model=eqx.combine(best_params, steps.static),
        standardizer=standardizer,
        history=history,
        best_epoch=best_epoch,
        stopped_early=len(history) < config.epochs,
        compile_seconds=compile_seconds,
    )


def predict_probabilities(
    model: Model, standardizer: Standardizer, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(p_up, p_down) as float64 for raw feature rows X (N, F), through the inference code path.

    exact=False: one vmapped call, equal to the per-window path within float32 rounding.
    """
    probs = CompiledModel(model, trained=True, exact=False).batch(standardizer(X))
    return probs.p_up.astype(np.float64), probs.p_down.astype(np.float64)
