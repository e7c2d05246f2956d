"""Sweep leaderboard cost: 50 jobs x 100k test candles (and as many validation candles) with 1,000
stationary-bootstrap draws (target: under 10 s on 2 CPU cores), the bootstrap timed apart.

The jobs are synthetic outcomes (random calls, a fifth FLAT) over one shared market; the first
rows of each job differ, as with different feature windows, so the shared candles are intersected
as in a real sweep. The exact binomial tail's one-off import of scipy.stats is paid before timing
(see the evaluation benchmark's first_call_s). CPU time (all threads) is reported beside wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from forecaster.config import EvalConfig
from forecaster.evaluation.leaderboard import Job, Leaderboard, leaderboard
from forecaster.evaluation.multiple_testing import bootstrap_means
from forecaster.evaluation.outcomes import Outcomes
from forecaster.evaluation.statistics import CHANCE, binomial_p_value

JOBS, QUICK_JOBS = 50, 10
CANDLES, QUICK_CANDLES = 100_000, 20_000  # per block
DRAWS, QUICK_DRAWS = 1000, 200
MAX_SKIP = 50  # rows a job may miss at the start of its validation block (a longer feature window)
FLAT_SHARE = 0.2
START_MS, MINUTE_MS = 1_700_000_000_000, 60_000
SEED = 0


def synthetic_jobs(n_jobs: int, n: int, rng: np.random.Generator) -> list[Job]:
    """Jobs with random calls over the same 2n candles: validation first, then test."""
    ts = START_MS + MINUTE_MS * np.arange(2 * n, dtype=np.int64)
    ret = rng.normal(0, 1e-4, 2 * n)
    actual = np.where(ret > 0, "UP", "DOWN")
    persistence = np.concatenate([["FLAT"], actual[:-1]])
    jobs = []
    for k in range(n_jobs):
        calls = np.where(rng.uniform(size=2 * n) < FLAT_SHARE, "FLAT", rng.choice(["UP", "DOWN"], 2 * n))
        p = rng.uniform(size=2 * n)
        skip = int(rng.integers(0, MAX_SKIP))
        blocks = (("val", slice(skip, n)), ("test", slice(n, 2 * n)))
        parts = [
            Outcomes.of_block(
                0, name, ts[rows], (p[rows], 1 - p[rows]), calls[rows], ret[rows], persistence[rows]
            )
            for name, rows in blocks
        ]
        jobs.append(Job(f"job={k}", f"synthetic/{k}", Outcomes.concat(parts), "1m"))
    return jobs


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run(quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    n_jobs, n = (QUICK_JOBS, QUICK_CANDLES) if quick else (JOBS, CANDLES)
    draws = QUICK_DRAWS if quick else DRAWS
    settings = EvalConfig(bootstrap_draws=draws)
    jobs = synthetic_jobs(n_jobs, n, rng)
    binomial_p_value(1, 2, CHANCE)  # the one-off scipy.stats import
    board: Leaderboard
    board, wall, cpu = _timed(lambda: leaderboard(jobs, settings, SEED))
    d = rng.integers(-2, 3, (n_jobs, n)).astype(np.float32)
    _, boot_wall, boot_cpu = _timed(lambda: bootstrap_means(d, draws, settings.mean_block, rng))
    return {
        "jobs": n_jobs,
        "candles_per_block": n,
        "draws": draws,
        "mean_block": settings.mean_block,
        "leaderboard_s": round(wall, 3),
        "leaderboard_cpu_s": round(cpu, 3),
        "bootstrap_s": round(boot_wall, 3),
        "bootstrap_cpu_s": round(boot_cpu, 3),
        "test_candles_shared": board.persistence["test"].n,
        "models_judged": board.best_of_n.n_models,
    }
