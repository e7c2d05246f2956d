"""mode=train through the real entry point: weights, sidecar, MLflow run and registry, sweeps."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from forecaster.candles import read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.recording import read_jsonl
from forecaster.tracking import default_uri
from tests.conftest import emulator_process, run_cli
from tests.unit.test_datasets import write_csv

QUICK = ["mode=train", "source=replay", "train.epochs=2", "train.progress=false"]


def _client(tmp_path: Path) -> MlflowClient:
    uri = default_uri(str(tmp_path / "mlruns"))
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(tmp_path: Path) -> list:
    client = _client(tmp_path)
    experiment = client.get_experiment_by_name("forecaster").experiment_id
    # the training runs (a -m sweep adds its leaderboard's eval run)
    return client.search_runs(experiment, "tags.mode = 'train'", order_by=["start_time"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One QUICK training with MLflow on, in its own folder: (that folder, the finished command).
    Its run dir is <folder>/train, and it stays the only training run in <folder>/mlruns."""
    home = tmp_path_factory.mktemp("trained")
    result = run_cli(*QUICK, f"hydra.run.dir={home / 'train'}", cwd=home)
    assert result.returncode == 0, result.stderr[-2000:]
    return home, result


def test_train_then_live_with_the_registered_model(
    trained: tuple[Path, subprocess.CompletedProcess],
) -> None:
    tmp_path, result = trained
    run_dir = tmp_path / "train"
    assert "persistence" in result.stdout and "majority" in result.stdout
    log = (run_dir / "train.log").read_text()  # the log file is named after the mode, and has the tables
    assert "validation split" in log and "test block, per fold and pooled:" in log
    assert "job " not in result.stdout, "a single run's tables carry no sweep job label"
    sidecar = json.loads((run_dir / "model" / "model.json").read_text())
    assert sidecar["trained"] is True and sidecar["timeframe"] == "1m" and sidecar["feature_set"] == "basic"
    assert (
        len(sidecar["normalisation"]["mean"]) == 19
        and sidecar["data_range"]["first_candle_ts"] == 1733011200000
    )
    written = json.loads((run_dir / "metrics.json").read_text())
    metrics = written["test"]
    assert set(metrics) == {"model", "persistence", "reversal", "majority", "yardstick"}, (
        "train.yardstick is on by default"
    )
    assert "model vs yardstick on the" in result.stdout or "model vs yardstick: no candle" in result.stdout
    assert set(written["vs_yardstick"]) == {"val", "test", "folds"}
    assert all(math.isfinite(v) for scores in metrics.values() for v in scores.values())
    assert set(written["val"]) == set(metrics) and len(written["val_folds"]) == len(written["folds"])
    assert written["val"]["model"]["n"] == metrics["model"]["n"], "validation and test blocks are as large"
    assert sidecar["val"] == written["val"] and sidecar["test"] == metrics

    (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.params["train.epochs"] == "2"
    assert "test.model.brier_up" in run.data.metrics and "fold0/val_loss" in run.data.metrics
    assert "val.model.brier_up" in run.data.metrics and "fold0/val.persistence.accuracy" in run.data.metrics
    assert (
        "test.yardstick.brier_up" in run.data.metrics
        and "test.paired.model_vs_yardstick.n" in run.data.metrics
    )
    (version,) = _client(tmp_path).search_model_versions("name='forecaster-twohead-1m'")
    assert version.run_id == run.info.run_id
    tags = version.tags
    assert tags["data_first"] == "2024-12-01T00:00Z" and tags["feature_set"] == "basic"
    assert float(tags["test.flat_share"]) == pytest.approx(metrics["model"]["flat_share"], abs=1e-4)
    assert tags["test.n"] == str(round(metrics["model"]["n"]))
    assert tags["weights_sha256"] == sidecar["weights_sha256"] and "val.flat_share" in tags
    assert version.description.startswith("twohead (64x64, 1 member(s)) on BTCUSDT 1m candles")
    assert "test, pooled over folds: model vs persistence" in version.description

    live_dir = tmp_path / "live"
    live = run_cli(
        "mode=live",
        "source=replay",
        "model.uri=models:/forecaster-twohead-1m/latest",
        "live.max_candles=11",
        f"hydra.run.dir={live_dir}",
        cwd=tmp_path,
    )
    assert live.returncode == 0, live.stderr[-2000:]
    predictions = read_jsonl(live_dir / "predictions.jsonl").records
    assert len(predictions) == 11 and all(p["trained"] for p in predictions), "max_candles counts predictions"
    assert "INFO loaded twohead weights from " in live.stderr and "sha256 " in live.stderr
    assert "(untrained)" not in live.stdout


def test_models_lists_registered_versions_and_local_weights_folders(
    trained: tuple[Path, subprocess.CompletedProcess],
) -> None:
    home = trained[0]
    _client(home).set_registered_model_alias("forecaster-twohead-1m", "champion", "1")
    result = run_cli("mode=models", "mode.folders=[train]", "hydra.run.dir=models", cwd=home)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    header = ["where", "aliases", "model", "tf", "features", "validation", "test", "test", "p", "history"]
    assert lines[1].split() == header
    registered, local = lines[2].split(), lines[3].split()
    assert registered[:5] == ["models:/forecaster-twohead-1m/1", "champion", "twohead", "1m", "basic"]
    assert local[0] == "train/model" and local[2:] == registered[2:], "the folder and its version agree"
    assert registered[-1] == "2024-12-01T00:00Z..2024-12-05T23:59Z"
    assert "validation split" not in result.stdout and (home / "models" / "models.log").is_file()


def test_a_model_for_another_timeframe_or_model_option_is_refused(
    tmp_path: Path, trained: tuple[Path, subprocess.CompletedProcess]
) -> None:
    run_dir = trained[0] / "train"
    result = run_cli(
        "mode=live", "source=replay", "timeframe=5m", f"model.path={run_dir / 'model'}", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "timeframe='1m' but this run uses timeframe='5m'" in result.stderr
    assert "Traceback" not in result.stderr
    other = run_cli(
        "mode=live", "source=replay", "model=logreg", f"model.path={run_dir / 'model'}", cwd=tmp_path
    )
    assert other.returncode == 2 and "Traceback" not in other.stderr
    (line,) = [line for line in other.stderr.splitlines() if "ERROR" in line]
    assert line.endswith(
        f"the weights at {run_dir / 'model'} were trained as twohead, not logreg; run with model=twohead"
    )


def test_sweep_makes_one_tagged_run_per_job(tmp_path: Path) -> None:
    result = run_cli("-m", *QUICK, "train.epochs=1", "model=twohead,logreg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = _runs(tmp_path)
    assert sorted(r.data.params["model.name"] for r in runs) == ["logreg", "twohead"]
    assert sorted(r.info.run_name for r in runs) == [
        "train-logreg-1m[model=logreg]",
        "train-twohead-1m[model=twohead]",
    ]
    assert len({r.data.tags["sweep"] for r in runs}) == 1
    assert all(r.info.status == "FINISHED" for r in runs)


def test_sweep_in_parallel_processes_with_joblib(tmp_path: Path) -> None:
    result = run_cli(
        "-m",
        *QUICK,
        "train.epochs=1",
        "seed=0,1",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = _runs(tmp_path)
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    assert sorted(r.info.run_name for r in runs) == ["train-twohead-1m[seed=0]", "train-twohead-1m[seed=1]"]
    # parallel jobs' tables are told apart by a label, in Hydra's job numbering; no colour codes
    assert result.stdout.count("job 0: seed=0\nvalidation split") == 1
    assert result.stdout.count("job 1: seed=1\nvalidation split") == 1
    assert "\x1b[" not in result.stdout + result.stderr and "\r" not in result.stderr


def test_real_history_trains_with_finite_metrics(tmp_path: Path, shared_data: Path) -> None:
    path = shared_data / "btcusdt_1m_bybit-linear_20250529_20250629.csv.gz"
    result = run_cli(
        *QUICK,
        f"source.path={path}",
        "data.start=2025-06-01",
        "data.end=2025-06-08",
        "timeframe=5m",
        "tracking=off",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert all(math.isfinite(v) for scores in metrics.values() for v in scores.values())


def test_memory_features_feed_the_twohead_network_and_the_gbm(tmp_path: Path) -> None:
    result = run_cli(
        *QUICK,
        "tracking=off",
        "model=twohead",
        "features=[rich,memory]",
        "features.blocks.memory.0.capacity=300",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert card["feature_set"] == "rich+memory" and card["n_features"] == 46
    assert card["feature_names"][-4:] == ["mem_up", "mem_ret_bps", "mem_dist", "mem_dist_k"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert all(math.isfinite(v) for scores in metrics.values() for v in scores.values())
    assert metrics["yardstick"]["n"] == metrics["model"]["n"] > 0, "the gbm trained on the same rows"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model=persistence"], "needs no training"),
        (["features=[basic,memory]"], "basic is not a composed feature set"),
        (["data.start=2030-01-01"], "no 1m candles"),
        (["data.start=yesterday"], "data.start"),
    ],
)
def test_bad_training_requests_are_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli(*QUICK, "tracking=off", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_train_from_bybit_rest_history(tmp_path: Path) -> None:
    """source=bybit: the history comes through the real REST client (here from the emulator) and its cache."""
    with emulator_process("--now", "2024-12-04T00:00") as emulator:
        args = ["mode=train", "train.epochs=1", "train.progress=false", "tracking=off", *emulator]
        args += ["data.start=2024-12-01", "data.end=2024-12-03"]
        result = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    sidecar = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert sidecar["data_range"] == {
        "first_candle_ts": 1733011200000,
        "last_candle_ts": 1733184000000 - 60_000,
    }
    assert list((tmp_path / ".cache" / "forecaster" / "klines").rglob("*")), "the history was cached"


def test_bybit_history_with_a_hole_is_two_segments(tmp_path: Path) -> None:
    """A long REST download is segmented by its gaps the same way a file is: no window spans the hole."""
    candles = read_csv(SAMPLE_CSV)
    hole = (candles.start_ms >= 1733097600000) & (candles.start_ms < 1733104800000)  # 12-02 00:00..02:00
    data = write_csv(tmp_path / "holed.csv.gz", candles[~hole])
    with emulator_process("--now", "2024-12-04T00:00", "--data", str(data)) as emulator:
        args = ["mode=train", "train.epochs=1", "train.progress=false", "tracking=off", *emulator]
        args += ["data.start=2024-12-01", "data.end=2024-12-03"]
        result = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "segment bybit-spot" in result.stderr and "in 2 segment(s) of 1 file(s)" in result.stderr


def test_two_venues_train_with_an_explicit_test_block_and_per_venue_figures(
    tmp_path: Path, shared_data: Path
) -> None:
    """source.path as a list: each file its own segment; the chosen test block spans both venues."""
    files = [
        shared_data / "btcusdt_1m_binance-spot_20250101_20250128.csv.gz",
        shared_data / "btcusdt_1m_bybit-linear_20250529_20250629.csv.gz",
    ]
    result = run_cli(
        "mode=train",
        "source=replay",
        "train.epochs=1",
        "train.progress=false",
        "tracking=off",
        f"source.path=[{','.join(map(str, files))}]",
        "data.start=2025-01-12",
        "data.test_start=2025-01-26",
        "data.test_end=2025-06-01",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "in 2 segment(s) of 2 file(s)" in result.stderr
    assert "test block per file, pooled over folds:" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    venues = metrics["venues"]
    assert set(venues) == {path.name.removesuffix(".csv.gz") for path in files}
    assert sum(v["n"] for v in venues.values()) == metrics["test"]["model"]["n"]
    assert all("p_value" in v["model_vs_persistence"] or v["decided"] == 0 for v in venues.values())
    outcomes = np.load(tmp_path / "run" / "outcomes.npz")
    tested = outcomes["candle_ts"][outcomes["block"] == 1]
    assert tested.min() >= 1737849600000 and tested.max() < 1748736000000  # 2025-01-26 .. 2025-06-01


def test_an_empty_test_block_is_one_line(tmp_path: Path) -> None:
    result = run_cli(*QUICK, "tracking=off", "data.test_start=2030-01-01", cwd=tmp_path)
    assert result.returncode == 2 and "no rows in the test block" in result.stderr
    assert "Traceback" not in result.stderr
