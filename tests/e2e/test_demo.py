"""`make demo` as a new user meets it: train, live against the emulator with faults, eval, verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import share_jax_cache

DEMO_TIMEOUT_S = 300


def test_the_demo_trains_goes_live_and_tells_the_truth(tmp_path: Path) -> None:
    share_jax_cache(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "forecaster.demo", "--candles", "300"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    out = result.stdout
    steps = [line for line in out.splitlines() if line.startswith("demo: ")]
    assert [s.split()[1] for s in steps] == ["1/3", "2/3", "3/3"], steps
    assert "(untrained)" not in out, "the demo runs a trained model, never the initial weights"
    assert "reconnecting" in result.stderr and "backfilled" in result.stderr, "the faults show"
    verdict = out[out.index("demo verdict (") :].splitlines()
    assert verdict[1].startswith("  decided calls: ")
    assert verdict[2].startswith("  accuracy on non-zero moves: ") and "%, " in verdict[2]
    assert verdict[3].startswith("  against persistence on the ") and "McNemar p=" in verdict[3]
    assert "persistence" in verdict[4]
    assert verdict[5].startswith("MLflow: `make ui`, then http://127.0.0.1:5000/#/experiments/")
    (live,) = (tmp_path / "outputs" / "demo").glob("*/*/live")
    assert (live / "predictions.jsonl").is_file() and (live.parent / "eval" / "metrics.json").is_file()
