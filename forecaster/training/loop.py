"""The Optax training loop: one jitted call per epoch, early stopping on validation loss.

Pure and I/O-free. Evaluation of a split goes through `models.inference.CompiledModel`, the path
live prediction takes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from forecaster.config import TrainConfig
from forecaster.errors import ConfigError
from forecaster.models.card import ModelCard
from forecaster.models.checkpoint import save
from forecaster.models.inference import CompiledModel
from forecaster.models.network import EnsembleNet, Model, build
from forecaster.models.normalisation import Standardizer
from forecaster.models.spec import ModelSpec
from forecaster.progress import Progress
from forecaster.training.dataset import Dataset
from forecaster.training.splits import SplitError

N_TARGETS = 2  # target columns [up, down], in the model's head order
# Validation rows are scored in fixed-size chunks: one compile for any split size, bounded memory.
EVAL_CHUNK = 8192
# Separates the dropout key stream from model init, which uses PRNGKey(spec.seed) directly.
DROPOUT_STREAM = 1
BOOTSTRAP_STREAM = 2  # seeds the bootstrap counts apart from the minibatch order


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

    @property
    def epochs(self) -> int:
        return len(self.history)

    def probabilities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict_probabilities(self.model, self.standardizer, X)

    def save(self, directory: str | os.PathLike[str], card: ModelCard) -> Path:
        """model.eqx and model.json (forecaster.models.checkpoint)."""
        return save(directory, self.model, card)


def bce_per_member(
    logits: Array, y: Array, weights: Array | None = None, balance: Array | None = None
) -> Array:
    """Mean BCE-with-logits over rows and both heads, per member: logits (B, 2) -> (1,), (B, K, 2) -> (K,).

    `weights` (B, K): each member's weight of each row (the bootstrap); None weighs every row 1.
    `balance` (2, 2): per head, the weight of a positive and of a negative target (class_weights).
    """
    if logits.ndim == y.ndim + 1:
        y = y[:, None, :]
    losses = optax.sigmoid_binary_cross_entropy(logits, y)
    if balance is not None:
        losses = losses * (y * balance[0] + (1.0 - y) * balance[1])
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
    balance: Array | None = None  # (2, 2) class weights of the loss (train.class_balance); None: all 1

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
        per_member = bce_per_member(logits, targets, weights, self.balance)
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
    """Global-norm clipping, then AdamW on the configured learning-rate schedule."""
    rate = config.schedule(config.learning_rate, total_steps)
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip),
        optax.adamw(rate, weight_decay=config.weight_decay),
    )


def class_weights(y: np.ndarray) -> np.ndarray:
    """(2, 2): per head, 0.5 / share of positives and 0.5 / share of negatives, so that both classes
    weigh the same in the loss (1 and 1 when balanced); a class with no rows gets weight 1."""
    positive = np.asarray(y, np.float64).mean(axis=0)
    shares = np.stack([positive, 1.0 - positive])
    return np.where(shares > 0, 0.5 / np.where(shares > 0, shares, 1.0), 1.0).astype(np.float32)


def smoothed(y: np.ndarray, smoothing: float) -> np.ndarray:
    """Targets pulled towards 1/2 by `smoothing` (0: unchanged): y (1 - s) + s / 2."""
    return y * (1.0 - smoothing) + smoothing / 2.0


def make_steps(
    spec: ModelSpec,
    model: Model,
    config: TrainConfig,
    total_steps: int,
    seed: int,
    targets: np.ndarray | None = None,
) -> Steps:
    """The jitted pieces for `model`; `targets` (the training rows' y) set the class weights."""
    _, static = eqx.partition(model, eqx.is_inexact_array)
    balance = jnp.asarray(class_weights(targets)) if config.class_balance and targets is not None else None
    return Steps(
        static=static,
        optimizer=make_optimizer(config, total_steps),
        ensemble=isinstance(model, EnsembleNet),
        dropout=spec.dropout > 0,
        key=jax.random.fold_in(jax.random.PRNGKey(seed), DROPOUT_STREAM),
        bootstrap=config.bootstrap,
        balance=balance,
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

    Standardisation is fitted here, on the training rows only, and returned for the model card.
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
    standardizer = Standardizer.fit(data_train.X, config.clip_z)
    batch = min(config.batch_size, len(data_train))
    steps_per_epoch = len(data_train) // batch
    if config.epochs * steps_per_epoch > np.iinfo(np.int32).max:  # the jitted loop counts steps in int32
        raise ConfigError(
            f"train.epochs={config.epochs} x {steps_per_epoch} steps per epoch is more optimiser steps than "
            "training can count; lower train.epochs or raise train.batch_size"
        )
    model = build(spec)
    steps = make_steps(spec, model, config, config.epochs * steps_per_epoch, seed, data_train.y)
    params, _ = eqx.partition(model, eqx.is_inexact_array)
    state = steps.init(params)
    X = jnp.asarray(standardizer(data_train.X), dtype=jnp.float32)
    targets = smoothed(data_train.y, config.label_smoothing)
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
    bar = Progress(config.epochs, f"train {spec.name}", "epoch", enabled=config.progress)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        batches = jnp.asarray(epoch_batches(rng, len(data_train), batch))
        step0 = jnp.asarray((epoch - 1) * steps_per_epoch, dtype=jnp.int32)
        params, state, total = run_epoch(params, state, X, Y, batches, step0)
        train_loss = float(total) / steps_per_epoch
        val = float(val_loss(params, *val_chunks))
        seconds = time.perf_counter() - started
        stats = EpochStats(epoch, train_loss, val, seconds, steps_per_epoch * batch / seconds)
        history.append(stats)
        bar.update(train=f"{stats.train_loss:.4f}", val=f"{val:.4f}")
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
