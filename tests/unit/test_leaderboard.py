"""The sweep leaderboard on synthetic jobs: shared candles, figures against a direct computation, the
choice on validation, Holm over the test tests, job discovery in a multirun dir, the text outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from forecaster.config import EvalConfig, compose_config
from forecaster.errors import ConfigError, UserError
from forecaster.evaluation.comparisons import paired_test
from forecaster.evaluation.leaderboard import JUDGED, Job, Registered, leaderboard
from forecaster.evaluation.leaderboard_report import console_lines, render_csv, render_markdown
from forecaster.evaluation.multiple_testing import holm
from forecaster.evaluation.outcomes import OUTCOMES_FILE, Outcomes, load_outcomes, save_outcomes
from forecaster.evaluation.statistics import FLAT_CODE, wilson_interval
from forecaster.sweeps import jobs_in_dir, labels

MINUTE = 60_000
SETTINGS = EvalConfig(bootstrap_draws=200, min_decided=50)
UP, DOWN, FLAT = "UP", "DOWN", "FLAT"


def _market(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ret = rng.normal(0, 1e-4, n)
    ret[rng.uniform(size=n) < 0.03] = 0.0
    actual = np.where(ret > 0, UP, np.where(ret < 0, DOWN, FLAT))
    persistence = np.concatenate([[FLAT], actual[:-1]])
    return np.arange(n, dtype=np.int64) * MINUTE, ret, persistence


def _calls(rng: np.random.Generator, ret: np.ndarray, edge: float, flat: float) -> np.ndarray:
    right = np.where(ret >= 0, UP, DOWN)
    calls = np.where(rng.uniform(size=len(ret)) < edge, right, rng.choice([UP, DOWN], len(ret)))
    return np.where(rng.uniform(size=len(ret)) < flat, FLAT, calls)


def _job(
    label: str, edge: float, skip: int = 0, seed: int = 1, flat: float = 0.2, n: int = 2000, folds: int = 1
) -> Job:
    """A job whose validation block is the first half of the market and test block the second (cut
    into `folds` walk-forward folds); `skip` drops its first rows (a longer feature window)."""
    ts, ret, persistence = _market(n)
    rng = np.random.default_rng(seed)
    calls = _calls(rng, ret, edge, flat)
    p = rng.uniform(size=n)
    half = n // 2
    step = (n - half) // folds
    tests = [
        ("test", k, slice(half + k * step, n if k == folds - 1 else half + (k + 1) * step))
        for k in range(folds)
    ]
    parts = [
        Outcomes.of_block(
            fold, block, ts[rows], (p[rows], 1 - p[rows]), calls[rows], ret[rows], persistence[rows]
        )
        for block, fold, rows in (("val", 0, slice(skip, half)), *tests)
    ]
    return Job(label, f"/sweep/{label}", Outcomes.concat(parts), "1m", Registered("forecaster-x-1m", label))


def test_outcomes_survive_the_file(tmp_path: Path) -> None:
    outcomes = _job("a", 0.1).outcomes
    assert outcomes is not None
    loaded, timeframe = load_outcomes(save_outcomes(tmp_path / OUTCOMES_FILE, outcomes, "5m"))
    assert timeframe == "5m"
    for name, value in outcomes.__dict__.items():
        np.testing.assert_array_equal(getattr(loaded, name), value)


def test_a_candle_scored_by_two_folds_keeps_the_latest_fold() -> None:
    def block(fold: int, ts: np.ndarray) -> Outcomes:
        n = len(ts)
        probabilities = (np.full(n, 0.6), np.full(n, 0.4))
        return Outcomes.of_block(
            fold, "val", ts, probabilities, np.full(n, UP), np.full(n, 1e-4), np.full(n, UP)
        )

    ts = np.arange(3, dtype=np.int64) * MINUTE
    rows = Outcomes.concat([block(1, ts[1:]), block(0, ts)]).block_rows("val")
    assert rows.candle_ts.tolist() == ts.tolist() and rows.fold.tolist() == [0, 1, 1]


def test_jobs_are_judged_on_the_candles_all_of_them_scored() -> None:
    jobs = [_job("a", 0.0, seed=1), _job("b", 0.05, skip=30, seed=2), _job("c", 0.3, seed=3)]
    board = leaderboard(jobs, SETTINGS, seed=0)
    assert [j.status for j in board.jobs] == [JUDGED] * 3
    assert {j.val.n for j in board.jobs if j.val} == {970} and board.persistence["val"].n == 970
    # against a direct computation on b's validation candles
    job = jobs[1].outcomes
    assert job is not None
    rows = job.block_rows("val")
    labels_ = np.array([UP, DOWN, FLAT])
    called, actual, bar = labels_[rows.called], labels_[rows.actual], labels_[rows.persistence]
    decided = called != FLAT
    hits = int((decided & (called == actual)).sum())
    val = board.jobs[1].val
    assert val is not None and (val.decided, val.hits) == (int(decided.sum()), hits)
    assert (val.wilson_low, val.wilson_high) == wilson_interval(hits, int(decided.sum()))
    assert val.score == pytest.approx((hits - (decided.sum() - hits)) / len(rows))
    paired = paired_test(called, bar, actual)
    assert val.vs_persistence == paired
    assert val.edge == pytest.approx((paired.only_first - paired.only_other) / len(rows))
    # the choice is on validation, Holm is over the test tests, and the real edge stands out
    assert board.chosen_job is board.jobs[2]
    tests = [j.test.vs_persistence.p_value for j in board.jobs if j.test and j.test.vs_persistence]
    assert [j.holm_p for j in board.jobs] == holm(tests)
    assert board.best_of_n.best == 2 and board.corrected_p < 0.01


def test_abstaining_never_beats_persistence_however_bad_persistence_is() -> None:
    """Persistence right on only ~40 % of the moves: a job that always says FLAT scores better per
    candle (0 against a negative score), but has no edge over persistence: the calls it never made
    cannot have been right."""
    job = _job("silent", 0.0, flat=1.0)
    assert job.outcomes is not None
    outcomes = job.outcomes
    rng = np.random.default_rng(9)
    wrong = np.where(outcomes.actual == 0, 1, 0).astype(np.int8)  # UP <-> DOWN (codes 0, 1)
    bad = np.where(rng.uniform(size=len(outcomes)) < 0.6, wrong, outcomes.actual).astype(np.int8)
    board = leaderboard([replace(job, outcomes=replace(outcomes, persistence=bad))], SETTINGS, seed=0)
    test = board.jobs[0].test
    assert test is not None and board.persistence["test"].score < -0.1 < test.score == 0
    assert test.edge == 0 and board.best_of_n.reality_check_p == board.best_of_n.spa_p == 1


def test_the_choice_ignores_jobs_with_too_few_decided_calls() -> None:
    jobs = [_job("lucky", 0.9, flat=0.99), _job("steady", 0.1)]
    board = leaderboard(jobs, replace(SETTINGS, select="decided_accuracy"), seed=0)
    assert board.jobs[0].val is not None and board.jobs[0].val.decided < SETTINGS.min_decided
    assert board.chosen_job is board.jobs[1]
    alone = leaderboard(jobs[:1], SETTINGS, seed=0)
    assert alone.chosen is None and "no job decided 50 validation calls" in console_lines(alone)[-1]


def test_unfinished_jobs_are_listed_not_judged() -> None:
    jobs = [_job("a", 0.1), Job("b", "/sweep/b", problem="unfinished or failed"), _job("c", 0.0)]
    board = leaderboard(jobs, SETTINGS, seed=0)
    assert [j.status for j in board.jobs] == [JUDGED, "unfinished or failed", JUDGED]
    assert board.best_of_n.n_models == 2 and board.jobs[1].holm_p is None
    with pytest.raises(UserError, match="none of the 1 jobs"):
        leaderboard(jobs[1:2], SETTINGS, seed=0)


def test_jobs_that_cannot_be_paired_are_one_clear_error() -> None:
    other = replace(_job("b", 0.1), timeframe="5m")
    with pytest.raises(UserError, match="different timeframes"):
        leaderboard([_job("a", 0.1), other], SETTINGS, seed=0)
    late = _job("c", 0.1)
    assert late.outcomes is not None
    moved = replace(late, outcomes=replace(late.outcomes, candle_ts=late.outcomes.candle_ts + 10**9))
    with pytest.raises(UserError, match="share no val candles"):
        leaderboard([_job("a", 0.1), moved], SETTINGS, seed=0)


def test_the_text_names_every_job_and_ends_with_one_verdict() -> None:
    board = leaderboard(
        [_job("lr=0.1", 0.0), _job("lr=0.01", 0.3), Job("lr=1", "/x", problem="failed")], SETTINGS, 0
    )
    lines = console_lines(board)
    assert lines[-1].startswith("verdict: best on validation (edge): lr=0.01: test ")
    assert "best of 2 on the test block: SPA p=" in lines[-1] and "beats persistence" in lines[-1]
    assert sum(line.startswith("*") for line in lines) == 1 and any("failed" in line for line in lines)
    markdown = render_markdown(board, "multirun/x", None, ["champion alias: set"])
    assert "| **chosen** | lr=0.01 | judged |" in markdown and "champion alias: set" in markdown
    rows = render_csv(board).splitlines()
    assert len(rows) == 4 and rows[2].startswith("lr=0.01,judged,") and rows[2].endswith(",True")
    json.dumps(board.to_json(), allow_nan=False)


def test_the_test_block_is_also_judged_fold_by_fold_on_non_zero_moves() -> None:
    board = leaderboard([_job("a", 0.0, folds=3), _job("b", 0.3, seed=2, folds=3)], SETTINGS, 0)
    job = board.jobs[1]
    assert job.test is not None and [f.fold for f in job.folds] == [0, 1, 2]
    assert sum(f.figures.decided for f in job.folds) == job.test.decided
    assert sum(f.figures.hits for f in job.folds) == job.test.hits
    assert sum(f.figures.n for f in board.persistence_folds) == board.persistence["test"].n
    first = job.folds[0]
    assert first.first_ms == 1000 * MINUTE and first.last_ms < job.folds[1].first_ms
    outcomes = _job("b", 0.3, seed=2, folds=3).outcomes
    assert outcomes is not None
    rows = outcomes.block_rows("test")
    mine = rows.fold == 0
    decided = rows.called[mine] != FLAT_CODE
    moved = decided & (rows.actual[mine] != FLAT_CODE)
    assert first.figures.moved == int(moved.sum()) < first.figures.decided
    assert first.figures.moved_accuracy == pytest.approx(first.figures.hits / moved.sum())
    lines = console_lines(board)
    assert sum(line.startswith("  fold ") for line in lines) == 3 and "reversal" in lines[4]
    mirror = board.reversal["test"]
    assert mirror.n == board.persistence["test"].n and mirror.decided == board.persistence["test"].decided
    moved = board.persistence["test"].moved
    beyond = job.vs_reversal
    assert job.test.vs_persistence is not None and beyond is not None
    assert beyond.n == job.test.vs_persistence.n, "reversal decides where persistence does"
    assert beyond.hits == job.test.vs_persistence.hits, "the job's calls on the same candles"
    assert f"vs reversal p={beyond.p_value:.3g}" in lines[-1]
    assert mirror.hits + board.persistence["test"].hits == moved, "on a move, exactly one of the two is right"
    markdown = render_markdown(board, "multirun/x", None, [])
    assert "## The test block by walk-forward fold" in markdown
    assert markdown.count("| **b** (chosen) | ") == 3 and markdown.count("| persistence | 2 |") == 1
    assert markdown.count("| reversal | ") == 4 and "| reversal | the last move reversed |" in markdown
    json.dumps(board.to_json(), allow_nan=False)


def _write_job(job_dir: Path, overrides: list[str], mode: str, job: Job | None) -> None:
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"mode": {"name": mode}}))
    if job is not None and job.outcomes is not None:
        save_outcomes(job_dir / OUTCOMES_FILE, job.outcomes, "1m")
        registered = {"name": "forecaster-twohead-1m", "version": "7"}
        (job_dir / "metrics.json").write_text(json.dumps({"registered": registered}))


def test_a_multirun_dir_gives_its_training_jobs_labelled_by_what_they_change(tmp_path: Path) -> None:
    for name, lr, job in (("0", "0.1", _job("x", 0.1)), ("1", "0.01", None), ("10", "1", _job("y", 0.0))):
        _write_job(tmp_path / name, ["mode=train", f"train.learning_rate={lr}"], "train", job)
    _write_job(tmp_path / "2", ["mode=eval"], "eval", None)
    jobs = jobs_in_dir(tmp_path)
    assert [j.label for j in jobs] == [
        "train.learning_rate=0.1",
        "train.learning_rate=0.01",
        "train.learning_rate=1",
    ]
    assert jobs[1].outcomes is None and "unfinished" in str(jobs[1].problem)
    assert jobs[0].registered == Registered("forecaster-twohead-1m", "7")
    with pytest.raises(UserError, match="no mode=train jobs"):
        jobs_in_dir(tmp_path / "2")


def test_labels_keep_what_differs() -> None:
    assert labels([["a=1", "b=2"], ["a=1", "b=3"]], ["0", "1"]) == ["b=2", "b=3"]
    assert labels([["a=1"], ["a=1"]], ["0", "1"]) == ["0", "1"]
    assert labels([["a=1"]], ["0"]) == ["a=1"]


def test_sweep_and_records_together_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"eval\.sweep judges"):
        compose_config(["mode=eval", "eval.sweep=multirun/x", "eval.records=outputs/y"])


def test_the_sweep_callback_is_light_at_import() -> None:
    """Hydra builds it for every run: it may not pull in JAX, MLflow, matplotlib or the leaderboard."""
    heavy = ("jax", "mlflow", "matplotlib", "forecaster.sweeps")
    code = f"import sys, forecaster.sweep_callback; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_plot_is_a_png_even_with_a_job_that_decided_little(tmp_path: Path) -> None:
    from forecaster.evaluation.plots import leaderboard as plot_leaderboard

    board = leaderboard([_job("a", 0.1), _job("b", 0.9, flat=0.99)], SETTINGS, 0)
    path = plot_leaderboard(board, tmp_path / "leaderboard.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
