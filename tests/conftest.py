"""Shared test helpers: the real entry point in a subprocess, and the real data beside the checkout.

Two tiers: tests/unit runs in process and fast; everything under tests/e2e (subprocesses, the
emulator, MLflow stores) is marked `slow`, so `pytest -m "not slow"` is the quick loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from forecaster.emulator.launch import launch_emulator

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FORECASTER_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
FIXTURES = SHARED / "bybit" / "fixtures"
E2E = Path(__file__).resolve().parent / "e2e"
EMULATOR_SPEED = "600"  # ten 1m candles per second


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.slow)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`python -m forecaster ARGS` as a user runs it, in `cwd` (so outputs/ and mlruns/ land there)."""
    return subprocess.run(
        [sys.executable, "-m", "forecaster", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
