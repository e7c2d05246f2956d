"""mode=audit through the real entry point: one line per check, exit 0 without a leak, for every model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

QUICK = [
    "mode=audit",
    "source=replay",
    "tracking=off",
    "mode.max_candles=400",
    "mode.cuts=5",
    "mode.prediction_cuts=1",
]


@pytest.mark.parametrize("model", ["twohead", "logreg", "ensemble", "persistence"])
def test_audit_finds_no_leak(tmp_path: Path, model: str) -> None:
    result = run_cli(*QUICK, f"model={model}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 5 and all(line.startswith("[ok  ]") for line in lines), result.stdout
    assert "audit: no leak found in 400 candles" in result.stdout


def test_audit_of_the_rich_features(tmp_path: Path) -> None:
    result = run_cli(*QUICK, "model=logreg", "features=rich", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 5 and all(line.startswith("[ok  ]") for line in lines), result.stdout
    assert "features rich: live equals batch" in result.stdout
