"""Model inference: single-window latency of several ways to call the same weights, ensembles, batches,
cold start. The NumPy forward below exists only here, as a yardstick for JAX's per-call dispatch
overhead; the product always predicts through forecaster.models.inference.CompiledModel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import equinox as eqx
import jax
import numpy as np
from jax import Array

from forecaster.models.card import ModelCard
from forecaster.models.checkpoint import save
from forecaster.models.inference import CompiledModel
from forecaster.models.network import TwoHeadNet, build, summarise
from forecaster.models.spec import ModelSpec

N_FEATURES = 19
HIDDEN = (64, 64)
ENSEMBLE_MEMBERS = 32
BATCH_ROWS = 4096
CALLS = 10_000
QUICK_CALLS = 1_000
WARMUP_CALLS = 200
BATCH_REPEATS = 20
QUICK_BATCH_REPEATS = 5
NS_PER_US = 1_000
NS_PER_S = 1_000_000_000
PERCENTILES = (50, 99)

# Run in a fresh interpreter so that imports, PRNG init and XLA compiles are all paid, as at launch.
COLD_START = """
import json, sys, time
t0 = time.perf_counter()
if sys.argv[2]:
    from forecaster.backend import configure_jax
    configure_jax(sys.argv[2])
import numpy as np
from forecaster.models.checkpoint import load
from forecaster.models.inference import CompiledModel
from forecaster.models.network import build
from forecaster.models.spec import ModelSpec
t1 = time.perf_counter()
if sys.argv[1] == "load":
    model, card = load(sys.argv[3])
else:
    model = build(ModelSpec("twohead", {n_features}, {hidden}))
t2 = time.perf_counter()
compiled = CompiledModel(model)
compiled(np.zeros({n_features}))
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "model_s": t2 - t1, "first_call_s": t3 - t2, "total_s": t3 - t0}}))
"""


def latency_us(call: Callable[[], object], calls: int) -> dict[str, float]:
    """p50/p99 in microseconds of `calls` back-to-back calls, each returning host values."""
    for _ in range(WARMUP_CALLS):
        call()
    samples = np.empty(calls, dtype=np.int64)
    for i in range(calls):
        started = time.perf_counter_ns()
        call()
        samples[i] = time.perf_counter_ns() - started
    return {f"p{q}_us": round(float(np.percentile(samples, q)) / NS_PER_US, 2) for q in PERCENTILES}


def numpy_forward(model: TwoHeadNet) -> Callable[[np.ndarray], tuple[float, float]]:
    """The same network in NumPy, float32, for the overhead ratio only."""
    layers = [(np.asarray(layer.weight), np.asarray(layer.bias)) for layer in model.trunk]
    heads = np.concatenate([np.asarray(model.up.weight), np.asarray(model.down.weight)])
    head_bias = np.concatenate([np.asarray(model.up.bias), np.asarray(model.down.bias)])

    def forward(x: np.ndarray) -> tuple[float, float]:
        h = np.asarray(x, dtype=np.float32)
        for weight, bias in layers:
            h = np.maximum(weight @ h + bias, 0.0)
        p_up, p_down = (1.0 / (1.0 + np.exp(-(heads @ h + head_bias)))).tolist()
        return p_up, p_down

    return forward


def _rows_per_s(compiled: CompiledModel, rows: np.ndarray, repeats: int) -> int:
    compiled.batch(rows)  # compile for this N
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter_ns()
        compiled.batch(rows)
        best = min(best, time.perf_counter_ns() - started)
    return round(len(rows) * NS_PER_S / best)


def _compiled_latencies(calls: int) -> dict[str, dict[str, float]]:
    """Single-window latency of CompiledModel for one model and for a 32-member ensemble."""
    x = np.random.default_rng(0).standard_normal(N_FEATURES).astype(np.float32)
    single = CompiledModel(build(ModelSpec("twohead", N_FEATURES, HIDDEN)))
    ensemble = CompiledModel(build(ModelSpec("ensemble", N_FEATURES, HIDDEN, members=ENSEMBLE_MEMBERS)))
    return {
        "twohead": latency_us(lambda: single(x), calls),
        f"ensemble{ENSEMBLE_MEMBERS}": latency_us(lambda: ensemble(x), calls),
    }


def _sync_dispatch_latencies(calls: int) -> dict[str, dict[str, float]]:
    """The same figures with JAX's CPU async dispatch off: a process-wide flag read when the CPU client
    starts, so it needs a fresh interpreter; the entry point, not model.py, would have to set it."""
    code = (
        "import json, sys, jax; jax.config.update('jax_cpu_enable_async_dispatch', False); "
        "from forecaster.benchmarks.model import _compiled_latencies; "
        "print(json.dumps(_compiled_latencies(int(sys.argv[1]))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(calls)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def _cold_start(kind: str, cache_dir: str, model_dir: str) -> dict[str, float]:
    code = COLD_START.format(n_features=N_FEATURES, hidden=HIDDEN)
    result = subprocess.run(
        [sys.executable, "-c", code, kind, cache_dir, model_dir],
        capture_output=True,
        text=True,
        check=True,
    )
    return {key: round(value, 3) for key, value in json.loads(result.stdout).items()}


def run(quick: bool) -> dict[str, object]:
    calls = QUICK_CALLS if quick else CALLS
    repeats = QUICK_BATCH_REPEATS if quick else BATCH_REPEATS
    spec = ModelSpec("twohead", N_FEATURES, HIDDEN)
    model = build(spec)
    assert isinstance(model, TwoHeadNet)
    compiled = CompiledModel(model)
    x = np.random.default_rng(0).standard_normal(N_FEATURES).astype(np.float32)
    rows = np.random.default_rng(1).standard_normal((BATCH_ROWS, N_FEATURES)).astype(np.float32)

    filter_jitted = eqx.filter_jit(summarise)
    params, static = eqx.partition(model, eqx.is_array)
    partitioned = jax.jit(lambda p, v: summarise(eqx.combine(p, static), v))
    reference = numpy_forward(model)
    numpy_diff = max(abs(a - b) for a, b in zip(reference(x), compiled(x)[:2], strict=True))

    single = {
        "compiled_model": latency_us(lambda: compiled(x), calls),
        "jit_partitioned_params": latency_us(lambda: np.asarray(partitioned(params, x)).tolist(), calls),
        # filter_jit takes the numpy row as it is, as the other paths do; the cast only tells the type checker
        "eqx_filter_jit": latency_us(
            lambda: np.asarray(filter_jitted(model, cast(Array, x))).tolist(), calls
        ),
        "numpy_yardstick": latency_us(lambda: reference(x), calls),
    }
    ratio = single["compiled_model"]["p50_us"] / single["numpy_yardstick"]["p50_us"]

    ensemble = CompiledModel(build(ModelSpec("ensemble", N_FEATURES, HIDDEN, members=ENSEMBLE_MEMBERS)))
    ensemble_latency = latency_us(lambda: ensemble(x), calls)
    with tempfile.TemporaryDirectory() as tmp:
        save(Path(tmp) / "model", model, ModelCard(spec, trained=False))
        cache = str(Path(tmp) / "jax-cache")
        cold = {
            "init_no_cache": _cold_start("init", "", ""),
            "load_no_cache": _cold_start("load", "", str(Path(tmp) / "model")),
            "init_cache_first_run": _cold_start("init", cache, ""),
            "init_cache_warm": _cold_start("init", cache, ""),
            "load_cache_warm": _cold_start("load", cache, str(Path(tmp) / "model")),
        }
    return {
        "backend": jax.default_backend(),
        "model": f"twohead {list(HIDDEN)}, F={N_FEATURES}",
        "calls": calls,
        "single_window_us": single,
        "compiled_over_numpy_p50": round(ratio, 2),
        "numpy_max_abs_diff": float(numpy_diff),
        f"ensemble{ENSEMBLE_MEMBERS}_single_window_us": ensemble_latency,
        "compiled_model_sync_dispatch_us": _sync_dispatch_latencies(calls),
        f"batch{BATCH_ROWS}_rows_per_s": {
            "twohead_exact": _rows_per_s(compiled, rows, repeats),
            "twohead_fast": _rows_per_s(CompiledModel(model, exact=False), rows, repeats),
            f"ensemble{ENSEMBLE_MEMBERS}_exact": _rows_per_s(ensemble, rows, repeats),
            f"ensemble{ENSEMBLE_MEMBERS}_fast": _rows_per_s(
                CompiledModel(ensemble.model, exact=False), rows, repeats
            ),
        },
        "cold_start_s": cold,
    }
