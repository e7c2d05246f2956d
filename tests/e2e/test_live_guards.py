"""A live service that outlives its operator's mistakes: a second process on the same run dir,
a stale lock left by a killed one. The real entry point against the Bybit emulator, in subprocesses."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from forecaster.recording import read_jsonl
from forecaster.run_lock import LOCK_FILE
from tests.conftest import run_cli, share_jax_cache


def _keys(path: Path, key: str) -> list[int]:
    return [r[key] for r in read_jsonl(path, key).records]


def test_second_process_on_a_run_dir_is_refused_and_the_first_goes_on(
    tmp_path: Path, emulator: list[str]
) -> None:
    run_dir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "forecaster",
        "mode=live",
        *emulator,
        "tracking=off",
        f"hydra.run.dir={run_dir}",
    ]
    share_jax_cache(tmp_path)
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 60
        while len(_keys(run_dir / "predictions.jsonl", "candle_ts")) < 5:
            assert time.monotonic() < deadline and first.poll() is None, log.read_text()
            time.sleep(0.2)
        for mode in ("mode=live", "mode=facts"):
            second = run_cli(mode, *emulator, "tracking=off", f"hydra.run.dir={run_dir}", cwd=tmp_path)
            assert second.returncode == 2, second.stderr[-2000:]
            assert "Traceback" not in second.stderr
            (line,) = [line for line in second.stderr.splitlines() if "in use by" in line]
            assert f"run dir {run_dir} is in use by pid {first.pid} on host {socket.gethostname()}" in line
            assert "(mode=live); stop that process or choose another hydra.run.dir" in line
        assert first.poll() is None, "the first process goes on"
        before = len(_keys(run_dir / "candles.jsonl", "ts_start"))
        while len(_keys(run_dir / "candles.jsonl", "ts_start")) < before + 5:
            assert time.monotonic() < deadline and first.poll() is None, log.read_text()
            time.sleep(0.2)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    for name, key in (
        ("candles.jsonl", "ts_start"),
        ("predictions.jsonl", "candle_ts"),
        ("facts.jsonl", "candle_ts"),
    ):
        keys = _keys(run_dir / name, key)
        assert keys == sorted(set(keys)), f"{name}: duplicates or disorder"
    assert (run_dir / LOCK_FILE).read_text() == "", "released at exit"


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, emulator: list[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    holder = {
        "pid": gone.pid,
        "host": socket.gethostname(),
        "since": "2026-11-25T22:10:00+00:00",
        "mode": "live",
    }
    (run_dir / LOCK_FILE).write_text(json.dumps(holder))
    result = run_cli(
        "mode=live", *emulator, "tracking=off", "live.max_candles=3", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [line for line in result.stderr.splitlines() if "taking it over" in line]
    assert f"pid {gone.pid}" in line and "stale" in line and "2026-11-25 22:10 UTC" in line
    assert len(_keys(run_dir / "candles.jsonl", "ts_start")) == 3
