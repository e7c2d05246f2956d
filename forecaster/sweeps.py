"""A finished training sweep judged: its jobs found (a multirun dir or an MLflow sweep tag), the
leaderboard written (leaderboard.md/.csv/.json/.png), tracked as one MLflow run, the version of the
job chosen on validation aliased `champion`, and the table with one verdict line printed.

Used by `mode=eval eval.sweep=...` and by the Hydra callback at the end of every `-m` sweep.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from forecaster.config import Config
from forecaster.errors import UserError
from forecaster.evaluation.leaderboard import Job, Leaderboard, Registered, leaderboard
from forecaster.evaluation.leaderboard_report import console_lines, render_csv, render_markdown
from forecaster.evaluation.outcomes import OUTCOMES_FILE, load_outcomes
from forecaster.evaluation.sections import named_scalars
from forecaster.modes.base import METRICS_FILE
from forecaster.run_labels import SWEEP_OVERRIDES_TAG, flatten, run_tags
from forecaster.show import show
from forecaster.tracking import mlflow_client

log = logging.getLogger(__name__)
BOARD = "leaderboard"  # file stem of every output, and the MLflow run's name after "eval-"
HYDRA_DIR = ".hydra"
OVERRIDES_FILE = "overrides.yaml"
JOB_CONFIG_FILE = "config.yaml"
TRAIN = "train"
UNFINISHED = f"unfinished or failed (no {OUTCOMES_FILE})"
DOWNLOADS = "downloaded"


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a multirun dir (0, 1, ..., 10 in numeric order), the mode=train ones only."""
    found = [d for d in sweep_dir.iterdir() if (d / HYDRA_DIR / OVERRIDES_FILE).is_file()]
    found.sort(key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name))
    return [d for d in found if _job_mode(d) == TRAIN]


def _job_mode(job_dir: Path) -> str | None:
    try:
        config = yaml.safe_load((job_dir / HYDRA_DIR / JOB_CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return None
    mode = config.get("mode") if isinstance(config, dict) else None
    return mode.get("name") if isinstance(mode, dict) else None


def is_training_sweep(sweep_dir: Path) -> bool:
    return sweep_dir.is_dir() and bool(_job_dirs(sweep_dir))


def labels(settings: Sequence[Sequence[str]], fallback: Sequence[str]) -> list[str]:
    """Each job by what sets it apart: its `key=value` settings that not every job shares."""
    common = set.intersection(*(set(s) for s in settings)) if len(settings) > 1 else set()
    return [
        " ".join(s for s in mine if s not in common) or name
        for mine, name in zip(settings, fallback, strict=True)
    ]


def _registered(metrics_file: Path) -> Registered | None:
    try:
        found = json.loads(metrics_file.read_text()).get("registered")
    except (OSError, ValueError):
        return None
    return Registered(str(found["name"]), str(found["version"])) if isinstance(found, dict) else None


def _job(label: str, source: str, outcomes_file: Path, metrics_file: Path, problem: str | None) -> Job:
    if problem is None and not outcomes_file.is_file():
        problem = UNFINISHED
    if problem is not None:
        return Job(label, source, problem=problem)
    try:
        outcomes, timeframe = load_outcomes(outcomes_file)
    except (OSError, ValueError, KeyError) as exc:
        return Job(label, source, problem=f"unreadable {OUTCOMES_FILE} ({exc})")
    return Job(label, source, outcomes, timeframe, _registered(metrics_file))


def jobs_in_dir(sweep_dir: Path) -> list[Job]:
    """The mode=train jobs of a multirun dir, labelled by their overrides."""
    dirs = _job_dirs(sweep_dir)
    if not dirs:
        raise UserError(
            f"eval.sweep={sweep_dir}: no mode=train jobs in this folder (subfolders with "
            f"{HYDRA_DIR}/{OVERRIDES_FILE}); give a multirun dir such as multirun/DATE/TIME"
        )
    overrides = [yaml.safe_load((d / HYDRA_DIR / OVERRIDES_FILE).read_text()) or [] for d in dirs]
    names = labels(overrides, [d.name for d in dirs])
    return [
        _job(name, str(d), d / OUTCOMES_FILE, d / METRICS_FILE, None)
        for name, d in zip(names, dirs, strict=True)
    ]


def jobs_in_store(store: str, tag: str, downloads: Path) -> list[Job]:
    """The mode=train runs of an MLflow store with this `sweep` tag, their files downloaded; labelled by
    the overrides of their run dir where it is still here, else by the parameters that differ."""
    client = mlflow_client(store)
    try:
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(
            experiments, f"tags.sweep = '{tag}' and tags.mode = '{TRAIN}'", order_by=["attributes.start_time"]
        )
    except Exception as exc:
        raise UserError(f"cannot search the MLflow store {store} ({str(exc).splitlines()[0]})") from exc
    if not runs:
        raise UserError(
            f"eval.sweep={tag} is neither a multirun folder nor the sweep tag of any mode=train run "
            f"in {store}"
        )
    jobs = []
    for run, name in zip(runs, _run_labels(runs), strict=True):
        run_id = run.info.run_id
        where = downloads / run_id
        where.mkdir(parents=True, exist_ok=True)
        problem = None if run.info.status == "FINISHED" else f"run {run.info.status.lower()}"
        for file in (OUTCOMES_FILE, METRICS_FILE):
            try:
                client.download_artifacts(run_id, file, str(where))
            except Exception:  # an unfinished run has no files: the job says so below
                log.debug("run %s has no %s", run_id, file)
        jobs.append(_job(name, f"run {run_id}", where / OUTCOMES_FILE, where / METRICS_FILE, problem))
    return jobs


def _run_labels(runs: Sequence[Any]) -> list[str]:
    """The overrides of each run's dir where all are still here (as for a multirun dir), else each
    run's tag of the overrides its sweep varied, else the parameters that differ between runs."""
    ids = [run.info.run_id for run in runs]
    dirs = [run.data.tags.get("run_dir") for run in runs]
    files = [Path(d) / HYDRA_DIR / OVERRIDES_FILE for d in dirs if d]
    if len(files) == len(runs) and all(f.is_file() for f in files):
        return labels([yaml.safe_load(f.read_text()) or [] for f in files], ids)
    varied = [run.data.tags.get(SWEEP_OVERRIDES_TAG) for run in runs]
    if all(varied):
        return [str(tag) for tag in varied]
    params = [sorted(f"{key}={value}" for key, value in run.data.params.items()) for run in runs]
    return labels(params, ids)


def find_jobs(config: Config, sweep: str, out_dir: Path) -> list[Job]:
    where = Path(sweep)
    if where.is_dir():
        return jobs_in_dir(where)
    return jobs_in_store(config.tracking.store_uri(config.paths), sweep, out_dir / DOWNLOADS)


def set_champion(config: Config, board: Leaderboard) -> str:
    """Alias the chosen job's registered version (eval.champion); the note says what was done."""
    alias, job = config.eval.champion, board.chosen_job
    if alias is None:
        return "champion alias: not set (eval.champion=null)"
    if not config.tracking.writes:
        return f"champion alias: not set (tracking={config.tracking.name})"
    if job is None or job.registered is None:
        return "champion alias: not set (no job chosen, or the chosen job registered no model version)"
    found = job.registered
    try:
        mlflow_client(config.tracking.store_uri(config.paths)).set_registered_model_alias(
            found.name, alias, found.version
        )
    except Exception as exc:
        return f"champion alias: not set ({str(exc).splitlines()[0]})"
    return f"champion alias: models:/{found.name}@{alias} -> version {found.version}"


def track(config: Config, sweep: str, out_dir: Path, board: Leaderboard, files: Sequence[Path]) -> None:
    """One MLflow run `eval-leaderboard`: the config, the corrected p and the chosen job's figures."""
    tags = {**run_tags(config, out_dir), "mode": "eval", BOARD: sweep}
    tags.pop(SWEEP_OVERRIDES_TAG, None)  # in the callback: the last job's, not the leaderboard's
    tracker = config.tracking.open(config.paths)
    tracker.start(f"eval-{BOARD}", flatten(asdict(config)), tags)
    best = board.best_of_n
    metrics = {
        "best_of_n.n_models": float(best.n_models),
        "best_of_n.reality_check_p": best.reality_check_p,
        "best_of_n.spa_p": best.spa_p,
        "corrected_p": board.corrected_p,
        **named_scalars(dict(board.persistence), "persistence."),
    }
    if (job := board.chosen_job) is not None and job.val is not None and job.test is not None:
        metrics |= named_scalars({"val": job.val, "test": job.test}, "chosen.")
    tracker.log_metrics(metrics, step=0)
    for path in files:
        tracker.log_artifact(path)
    tracker.finish()


def judge_sweep(config: Config, sweep: str, out_dir: Path) -> Leaderboard:
    """The leaderboard of a sweep into out_dir (files, MLflow, champion alias), printed."""
    jobs = find_jobs(config, sweep, out_dir)
    board = leaderboard(jobs, config.eval, config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = None
    if config.eval.plots:
        from forecaster.evaluation.plots import leaderboard as plot_leaderboard  # matplotlib: slow import

        plot = plot_leaderboard(board, out_dir / f"{BOARD}.png")
    champion = set_champion(config, board)
    files = [out_dir / f"{BOARD}.{suffix}" for suffix in ("md", "csv", "json")]
    files[0].write_text(render_markdown(board, sweep, plot, [champion]))
    files[1].write_text(render_csv(board))
    files[2].write_text(
        json.dumps({**board.to_json(), "champion": champion}, indent=2, allow_nan=False) + "\n"
    )
    track(config, sweep, out_dir, board, [*files, *([plot] if plot else [])])
    show(*console_lines(board), champion, f"leaderboard: {files[0]}", of_job=False)
    return board
