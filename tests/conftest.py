"""Shared test helpers: the real entry point in a subprocess, and the real data beside the checkout.

Two tiers: tests/unit runs in process and fast; everything under tests/e2e (subprocesses, the
emulator, MLflow stores) is marked `slow`, so `pytest -m "not slow"` is the quick loop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from forecaster.data import SAMPLE_CSV
from forecaster.emulator.launch import launch_emulator

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FORECASTER_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
FIXTURES = SHARED / "bybit" / "fixtures"
E2E = Path(__file__).resolve().parent / "e2e"
EMULATOR_SPEED = "10"  # 1m candles per second
# One JAX compilation cache for every command the session runs, whatever its cwd: each program is
# compiled once per session, as on a user's machine after the first run, instead of once per test
# (compiling is about half of a short training run's CPU time). Kept in the environment because
# this file is imported twice, as `conftest` by pytest and as `tests.conftest` by the tests.
_JAX_CACHE_VAR = "_FORECASTER_TESTS_JAX_CACHE"
if _JAX_CACHE_VAR not in os.environ:
    os.environ[_JAX_CACHE_VAR] = tempfile.mkdtemp(prefix="forecaster-tests-jax-")
JAX_CACHE = Path(os.environ[_JAX_CACHE_VAR])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.slow)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The shared cache goes when the whole run ends: with pytest-xdist, in the controller, after
    every worker (which inherit its environment, so all use the one cache)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        shutil.rmtree(JAX_CACHE, ignore_errors=True)


def share_jax_cache(cwd: Path) -> None:
    """Make the default paths.jax_cache of a command run in `cwd` the session's shared JAX_CACHE."""
    link = cwd / ".cache" / "forecaster" / "jax"
    if not link.exists() and not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(JAX_CACHE, target_is_directory=True)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`python -m forecaster ARGS` as a user runs it, in `cwd` (so outputs/ and mlruns/ land there)."""
    share_jax_cache(cwd)
    return subprocess.run(
        [sys.executable, "-m", "forecaster", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def truncated_sample(directory: Path) -> Path:
    """The shipped sample cut in half, as a download or copy that stopped part-way leaves it."""
    whole = SAMPLE_CSV.read_bytes()
    path = directory / "truncated.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    return path


@pytest.fixture(scope="session")
def trained_logreg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `mode=train model=logreg` (one epoch, no tracking) that several tests read: its weights folder."""
    home = tmp_path_factory.mktemp("logreg")
    run_dir = home / "train"
    trained = run_cli(
        "mode=train", "source=replay", "model=logreg", "train.epochs=1", "train.progress=false",
        "tracking=off", f"hydra.run.dir={run_dir}", cwd=home,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    return run_dir / "model"


@pytest.fixture
def shared_data() -> Path:
    if not any(SHARED_DATA.glob("*.csv.gz")):
        pytest.skip(f"real history not found in {SHARED_DATA} (set FORECASTER_SHARED to the shared/ folder)")
    return SHARED_DATA


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"Bybit fixtures not found in {FIXTURES} (set FORECASTER_SHARED to the shared/ folder)")
    return FIXTURES


@contextmanager
def emulator_process(*args: str) -> Iterator[list[str]]:
    """`python -m forecaster.emulator` as its own process; yields the overrides that point a run at it."""
    with launch_emulator("--speed", EMULATOR_SPEED, *args) as emulator:
        yield [f"source.rest_url={emulator.rest_url}", f"source.ws_url={emulator.ws_url}"]


@pytest.fixture
def emulator() -> Iterator[list[str]]:
    with emulator_process() as overrides:
        yield overrides
