"""Training throughput of forecaster.training.loop for twohead [64, 64] on synthetic rows (F=19, batch 1024).

Three views of the same work:
- `train`: the product path, `training.loop.train`, as mode=train runs it (epoch = train + validation).
- `epoch_call`: the same jitted epoch function with its phases timed apart: per-epoch data handling
  (permutation, transfer of the indices), the jitted epoch (block_until_ready), validation.
- `python_loop`: the alternative `train` rejected, a Python loop over a jitted minibatch step fed
  numpy slices, with and without a block_until_ready after each step (the synced run gives the
  share of wall time inside the step; the unsynced run the real throughput, as dispatch overlaps).
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from forecaster.config import TrainConfig
from forecaster.models.network import build
from forecaster.models.normalisation import Standardizer
from forecaster.models.spec import ModelSpec
from forecaster.training.dataset import Dataset
from forecaster.training.loop import chunk_rows, epoch_batches, make_steps, train
from forecaster.training.schedules import WarmupCosine

N_FEATURES = 19
HIDDEN = (64, 64)
BATCH = 1024
SAMPLES = 1_000_000
QUICK_SAMPLES = 100_000
VAL_SAMPLES = 50_000
EPOCHS = 3
QUICK_EPOCHS = 2
LABEL_NOISE = 0.5
SEED = 0


def synthetic(n: int, rng: np.random.Generator, n_features: int = N_FEATURES) -> Dataset:
    """Rows with a noisy linear target, so the loss moves as on real data; timing does not depend on it."""
    X = rng.standard_normal((n, n_features))
    score = X @ rng.standard_normal(n_features) + LABEL_NOISE * rng.standard_normal(n)
    y = np.stack([score > 0, score < 0], axis=1).astype(np.float32)
    return Dataset(X, y, np.arange(n, dtype=np.int64), score, np.full(n, ""))


def _summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 4), "median": round(float(np.median(values)), 4)}


def _product_path(data: Dataset, val: Dataset, epochs: int) -> dict[str, object]:
    config = TrainConfig(
        schedule=WarmupCosine(), epochs=epochs, batch_size=BATCH, patience=epochs, progress=False
    )
    started = time.perf_counter()
    result = train(ModelSpec("twohead", N_FEATURES, HIDDEN), data, val, config, SEED)
    return {
        "total_s": round(time.perf_counter() - started, 3),
        "compile_s": round(result.compile_seconds, 3),
        "epoch_s": _summary([h.seconds for h in result.history]),
        "samples_per_s": round(max(h.samples_per_s for h in result.history)),
        "train_loss": [round(h.train_loss, 4) for h in result.history],
    }


def _epoch_phases(data: Dataset, val: Dataset, epochs: int) -> dict[str, object]:
    """The jitted epoch of `train`, with data handling, the step loop and validation timed apart."""
    spec = ModelSpec("twohead", N_FEATURES, HIDDEN)
    config = TrainConfig(schedule=WarmupCosine(), batch_size=BATCH, epochs=epochs)
    standardizer = Standardizer.fit(data.X)
    steps_per_epoch = len(data) // BATCH
    model = build(spec)
    steps = make_steps(spec, model, config, epochs * steps_per_epoch, SEED)
    params, _ = eqx.partition(model, eqx.is_inexact_array)
    state = steps.init(params)
    rng = np.random.default_rng(SEED)

    started = time.perf_counter()
    X = jax.block_until_ready(jnp.asarray(standardizer(data.X), dtype=jnp.float32))
    Y = jax.block_until_ready(jnp.asarray(data.y))
    val_chunks = jax.block_until_ready(chunk_rows(standardizer(val.X).astype(np.float32), val.y))
    staging = time.perf_counter() - started

    started = time.perf_counter()
    batches = jnp.asarray(epoch_batches(rng, len(data), BATCH))
    step0 = jnp.asarray(0, dtype=jnp.int32)
    run_epoch = (
        jax.jit(steps.epoch, donate_argnums=(0, 1)).lower(params, state, X, Y, batches, step0).compile()
    )
    compile_s = time.perf_counter() - started
    val_loss = jax.jit(steps.eval_loss).lower(params, *val_chunks).compile()

    handling, stepping, validating, walls = [], [], [], []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        batches = jax.block_until_ready(jnp.asarray(epoch_batches(rng, len(data), BATCH)))
        step0 = jnp.asarray(epoch * steps_per_epoch, dtype=jnp.int32)
        t1 = time.perf_counter()
        params, state, _ = jax.block_until_ready(run_epoch(params, state, X, Y, batches, step0))
        t2 = time.perf_counter()
        float(val_loss(params, *val_chunks))
        t3 = time.perf_counter()
        handling.append(t1 - t0)
        stepping.append(t2 - t1)
        validating.append(t3 - t2)
        walls.append(t3 - t0)
    return {
        "staging_once_s": round(staging, 3),
        "compile_s": round(compile_s, 3),
        "epoch_s": _summary(walls),
        "jitted_epoch_s": _summary(stepping),
        "data_handling_s": _summary(handling),
        "validation_s": _summary(validating),
        "in_jit_share": round(sum(stepping) / sum(walls), 3),
        "train_samples_per_s": round(steps_per_epoch * BATCH / min(stepping)),
    }


def _python_loop(data: Dataset, epochs: int) -> dict[str, object]:
    """A Python loop over a jitted single step fed numpy minibatches (the layout `train` did not pick)."""
    spec = ModelSpec("twohead", N_FEATURES, HIDDEN)
    steps_per_epoch = len(data) // BATCH
    model = build(spec)
    steps = make_steps(
        spec, model, TrainConfig(schedule=WarmupCosine(), batch_size=BATCH), epochs * steps_per_epoch, SEED
    )
    X = Standardizer.fit(data.X)(data.X).astype(np.float32)
    Y = data.y
    rng = np.random.default_rng(SEED)
    params, _ = eqx.partition(model, eqx.is_inexact_array)
    state = steps.init(params)
    first = epoch_batches(rng, len(data), BATCH)[0]
    started = time.perf_counter()
    step = (
        jax.jit(steps.step, donate_argnums=(0, 1))
        .lower(params, state, X[first], Y[first], jnp.asarray(0, dtype=jnp.int32))
        .compile()
    )
    compile_s = time.perf_counter() - started

    def epoch(params: object, state: object, number: int, sync: bool) -> tuple[object, object, float, float]:
        in_step = 0.0
        started = time.perf_counter()
        for i, rows in enumerate(epoch_batches(rng, len(data), BATCH)):
            x, y = X[rows], Y[rows]
            t0 = time.perf_counter()
            params, state, loss = step(params, state, x, y, np.int32(number * steps_per_epoch + i))
            if sync:
                jax.block_until_ready(loss)
                in_step += time.perf_counter() - t0
        jax.block_until_ready(params)
        return params, state, time.perf_counter() - started, in_step

    free, synced, inside = [], [], []
    for number in range(epochs):
        params, state, wall, _ = epoch(params, state, number, sync=False)
        free.append(wall)
        params, state, wall, in_step = epoch(params, state, number, sync=True)
        synced.append(wall)
        inside.append(in_step)
    return {
        "compile_s": round(compile_s, 3),
        "epoch_s": _summary(free),
        "samples_per_s": round(steps_per_epoch * BATCH / min(free)),
        "synced_epoch_s": _summary(synced),
        "in_jit_share_synced": round(sum(inside) / sum(synced), 3),
    }


def run(quick: bool) -> dict[str, object]:
    samples = QUICK_SAMPLES if quick else SAMPLES
    epochs = QUICK_EPOCHS if quick else EPOCHS
    rng = np.random.default_rng(SEED)
    data, val = synthetic(samples, rng), synthetic(VAL_SAMPLES, rng)
    return {
        "backend": jax.default_backend(),
        "model": f"twohead {list(HIDDEN)}, F={N_FEATURES}, batch {BATCH}",
        "samples": samples,
        "val_samples": VAL_SAMPLES,
        "epochs": epochs,
        "train": _product_path(data, val, epochs),
        "epoch_call": _epoch_phases(data, val, epochs),
        "python_loop": _python_loop(data, epochs),
    }
