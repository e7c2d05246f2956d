"""model=gbm: LightGBM training throughput and the single-row predict latency the live path pays.

Synthetic rows with ~40 features (the size of features=rich), default options of conf/model/gbm.yaml
except that early stopping is off, so every run boosts the same number of rounds.
"""

from __future__ import annotations

import time

import numpy as np

from forecaster.benchmarks.model import latency_us
from forecaster.benchmarks.training import SEED, synthetic
from forecaster.config import TrainConfig
from forecaster.models.gbm import GBM
from forecaster.training.schedules import WarmupCosine

N_FEATURES = 40
ROWS = 100_000
QUICK_ROWS = 20_000
VAL_ROWS = 20_000
ROUNDS = 200
QUICK_ROUNDS = 50
CALLS = 10_000
QUICK_CALLS = 1_000


def run(quick: bool) -> dict[str, object]:
    rng = np.random.default_rng(SEED)
    n, rounds = (QUICK_ROWS, QUICK_ROUNDS) if quick else (ROWS, ROUNDS)
    data, val = synthetic(n, rng, N_FEATURES), synthetic(VAL_ROWS, rng, N_FEATURES)
    option = GBM(n_estimators=rounds, early_stopping_rounds=rounds)
    started = time.perf_counter()
    model = option.fit(data, val, TrainConfig(schedule=WarmupCosine()), SEED)
    seconds = time.perf_counter() - started
    x = val.X[0]
    batch_started = time.perf_counter()
    model.probabilities(val.X)
    batch_seconds = time.perf_counter() - batch_started
    return {
        "train": {
            "rows": n,
            "features": N_FEATURES,
            "rounds_per_head": model.epochs,
            "seconds": round(seconds, 3),
            # both heads, validation scoring included: what mode=train pays per fold
            "rows_per_s": round(n / seconds),
            "row_rounds_per_s": round(2 * n * model.epochs / seconds),
        },
        "predict_row": latency_us(lambda: model(x), QUICK_CALLS if quick else CALLS),
        "predict_batch_rows_per_s": round(len(val) / batch_seconds),
    }
