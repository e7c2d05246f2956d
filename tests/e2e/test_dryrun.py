"""mode=dryrun through the real entry point, and the package working when installed from a wheel."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli


def test_dryrun_reports_cpu_backend_and_passes(tmp_path: Path) -> None:
    result = run_cli("mode=dryrun", "tracking=off", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "backend=cpu devices=[CpuDevice(id=0)]" in result.stdout
    assert "jax=" in result.stdout and "jaxlib=" in result.stdout
    assert "rest_url: https://api.bybit.com" in result.stdout, "resolved config missing"
    assert "[ok  ] output dir writable" in result.stdout
    assert "[skip] MLflow store usable: tracking=off" in result.stdout
    assert "[skip] Bybit REST reachable" in result.stdout
    assert "all required checks passed" in result.stdout
    assert not (tmp_path / "mlruns").exists()


def test_dryrun_creates_and_checks_the_mlflow_store(tmp_path: Path) -> None:
    result = run_cli("mode=dryrun", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"[ok  ] MLflow store usable: sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db" in result.stdout
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert not (tmp_path / "mlflow.db").exists(), "MLflow's own default leaked into the cwd"


def test_dryrun_fails_when_the_mlflow_store_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    result = run_cli("mode=dryrun", "paths.mlruns=blocker/mlruns", cwd=tmp_path)
    assert result.returncode == 1
    assert "[fail] MLflow store usable" in result.stdout
    assert "tracking=off" in result.stdout, "the failure should say what to do"


def test_dryrun_finds_the_configured_data(tmp_path: Path) -> None:
    result = run_cli("mode=dryrun", "tracking=off", "paths.shared_data=nowhere", cwd=tmp_path)
    assert result.returncode == 0
    assert "[warn] data present: nowhere not found" in result.stdout
    result = run_cli(
        "mode=dryrun", "tracking=off", "source=replay", "source.path=missing.csv.gz", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "[fail] replay data present: missing.csv.gz not found" in result.stdout


def test_dryrun_loads_the_model_a_live_run_would(tmp_path: Path, trained_logreg: Path) -> None:
    """Weights that would fail a live session (missing, another model option) fail the dryrun first."""
    weights = f"model.path={trained_logreg}"
    ok = run_cli("mode=dryrun", "model=logreg", weights, "tracking=off", cwd=tmp_path)
    assert ok.returncode == 0 and "[ok  ] model weights: loaded logreg weights from" in ok.stdout
    wrong = run_cli("mode=dryrun", "model=twohead", weights, "tracking=off", cwd=tmp_path)
    assert wrong.returncode == 1 and "[fail] model weights: " in wrong.stdout
    assert "were trained as logreg, not twohead" in wrong.stdout
    missing = run_cli("mode=dryrun", f"model.path={tmp_path / 'nowhere'}", "tracking=off", cwd=tmp_path)
    assert missing.returncode == 1 and "model.json is missing" in missing.stdout
    untrained = run_cli("mode=dryrun", "tracking=off", cwd=tmp_path)
    assert (
        untrained.returncode == 0
        and "[warn] model weights: model=twohead has no model.path" in untrained.stdout
    )
    refused = run_cli("mode=dryrun", "model=gbm", "tracking=off", cwd=tmp_path)
    assert (
        refused.returncode == 1 and "[fail] model weights: model=gbm has nothing to predict" in refused.stdout
    )


def test_network_check_is_opt_in_and_only_warns(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a local port with nobody listening: refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli(
        "mode=dryrun",
        "tracking=off",
        "mode.check_network=true",
        f"source.rest_url=http://127.0.0.1:{port}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    url = f"http://127.0.0.1:{port}/v5/market/time"
    assert f"[warn] Bybit REST reachable: cannot reach {url}: connection refused" in result.stdout


def test_installed_wheel_finds_its_config(tmp_path: Path) -> None:
    """Installed (not a checkout), Hydra must load conf/ from the package forecaster.conf."""
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(wheels), str(REPO)]
    built = subprocess.run(build, check=True, capture_output=True, text=True, timeout=300)
    assert "Package would be ignored" not in built.stdout + built.stderr, "a conf folder is not declared"
    (wheel,) = wheels.glob("forecaster-*.whl")
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    installed = {
        p.relative_to(site / "forecaster" / "conf") for p in (site / "forecaster" / "conf").rglob("*.yaml")
    }
    assert installed == {p.relative_to(REPO / "conf") for p in (REPO / "conf").rglob("*.yaml")}
    result = run_cli("mode=dryrun", "tracking=off", cwd=work, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "config=pkg://forecaster.conf" in result.stdout
    assert "backend=cpu" in result.stdout
    sample = run_cli("flat.min_prob=2", cwd=work, env={"PYTHONPATH": str(site)})
    assert sample.returncode == 2
    bench = [sys.executable, "-m", "forecaster.benchmarks", "--help"]
    assert (
        subprocess.run(
            bench, cwd=work, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.network
def test_real_bybit_rest_is_reachable(tmp_path: Path) -> None:
    result = run_cli("mode=dryrun", "tracking=off", "mode.check_network=true", cwd=tmp_path)
    assert "[ok  ] Bybit REST reachable" in result.stdout, result.stdout
