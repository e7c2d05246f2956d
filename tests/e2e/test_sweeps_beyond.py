"""Sweeps beyond one process or a grid: Hydra's submitit launcher (local executor) logging to a shared
MLflow server, and the Optuna search of hparams_search."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from forecaster.tracking import default_uri
from tests.conftest import run_cli

SERVER_START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` with a database backend on 127.0.0.1, as a team would share one."""
    port = _free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("w") as log:
        # no job runner (seven huey consumer processes that terminate() would leave behind), as `make ui`
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (
                tmp_path / "server.log"
            ).read_text()
            time.sleep(0.5)
        yield url
        server.terminate()
        server.wait(30)


def test_submitit_local_sweep_logs_to_a_shared_server(tmp_path: Path, mlflow_server: str) -> None:
    result = run_cli(
        "-m",
        "mode=train",
        "source=replay",
        "train.epochs=1",
        "train.progress=false",
        "seed=0,1",
        "hydra/launcher=submitit_local",
        f"tracking.uri={mlflow_server}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    runs = client.search_runs(
        client.get_experiment_by_name("forecaster").experiment_id, "tags.mode = 'train'"
    )
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in runs) and len({r.data.tags["sweep"] for r in runs}) == 1
    versions = client.search_model_versions("name='forecaster-twohead-1m'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert not (tmp_path / "mlruns").exists(), "everything went to the server"
    assert "View run" not in result.stdout, "MLflow's run URL is not printed as runs on a server end"


def test_optuna_search_returns_the_optimized_metric(tmp_path: Path) -> None:
    args = ["mode=train", "source=replay", "hparams_search=twohead_optuna", "hydra.sweeper.n_trials=2"]
    result = run_cli(*args, "train.epochs=1", "train.progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "\x1b[" not in output and "setup plugin" not in output, "no colour codes, no alembic set-up"
    assert "A new study created" not in output and "Study name" not in output and "Best parameters" in output
    (found,) = (tmp_path / "multirun").glob("*/*/optimization_results.yaml")
    best = yaml.safe_load(found.read_text())
    assert set(best["best_params"]) == {
        "train.learning_rate",
        "train.weight_decay",
        "model.dropout",
        "model.hidden",
    }
    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    runs = client.search_runs(
        client.get_experiment_by_name("forecaster").experiment_id, "tags.mode = 'train'"
    )
    losses = [r.data.metrics["val.model.log_loss_up"] for r in runs]
    assert len(runs) == 2 and best["best_value"] == pytest.approx(min(losses))
    name = runs[0].info.run_name
    assert name.startswith("train-twohead-1m[") and "train.learning_rate=" in name, "what the trial chose"
    assert "source=replay" not in name, "what every trial shares is left out"


def test_an_unknown_optimized_metric_is_one_clear_line(tmp_path: Path) -> None:
    args = ["mode=train", "source=replay", "train.epochs=1", "train.progress=false", "tracking=off"]
    result = run_cli(*args, "optimized_metric=val.model.nope", cwd=tmp_path)
    assert result.returncode == 2 and "optimized_metric=val.model.nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_search_may_not_choose_on_the_test_block(tmp_path: Path) -> None:
    """Refused before any work: one line saying why, exit 2."""
    result = run_cli(
        "mode=train", "hparams_search=twohead_optuna", "optimized_metric=test.model.log_loss_up", cwd=tmp_path
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (
        "optimized_metric=test.model.log_loss_up" in result.stderr
        and "val.model.log_loss_up" in result.stderr
    )
    assert not (tmp_path / "multirun").exists()
