"""Live forecasting end to end: the real entry point against the Bybit emulator, in subprocesses.

Also the properties that make the numbers honest: no look-ahead, and the live path giving the
very same numbers as the batch path.
"""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from forecaster.candles import read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.recording import read_jsonl
from forecaster.tracking import default_uri, download_records
from tests.conftest import run_cli, share_jax_cache

SAMPLE = read_csv(SAMPLE_CSV)
CLOSE = dict(zip(SAMPLE.start_ms.tolist(), SAMPLE.close.tolist(), strict=True))

WARMING = "no prediction until the feature window is full"
MARGIN = "|p_up - p_down| < 0.05"


def _keys(path: Path, key: str) -> list[int]:
    return [r[key] for r in read_jsonl(path, key).records]


def _contiguous(keys: list[int]) -> bool:
    return all(b - a == 60_000 for a, b in itertools.pairwise(keys))


def test_live_session_end_to_end(tmp_path: Path, emulator: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("mode=live", *emulator, "live.max_candles=120", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    candles = _keys(run_dir / "candles.jsonl", "ts_start")
    predictions = read_jsonl(run_dir / "predictions.jsonl", "candle_ts").records
    facts = read_jsonl(run_dir / "facts.jsonl", "candle_ts").records
    assert len(candles) == 120 and _contiguous(candles)
    assert [p["candle_ts"] for p in predictions] == candles, "warm-up: one prediction per live candle"
    for p in predictions:
        assert p["target_ts"] == p["candle_ts"] + 60_000 and 0 < p["p_up"] < 1 and 0 < p["p_down"] < 1
        assert p["direction"] in {"UP", "DOWN", "FLAT"} and p["trained"] is False
    assert [f["candle_ts"] for f in facts] == candles
    for f in facts:
        assert f["close_curr"] == CLOSE[f["candle_ts"]] and f["close_prev"] == CLOSE[f["prev_ts"]]
    lines = [line for line in result.stdout.splitlines() if "close=" in line]
    assert len(lines) == 120 and "p_up=" in lines[0] and "prev " in lines[1]

    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    (run,) = client.search_runs(client.get_experiment_by_name("forecaster").experiment_id)
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "twohead"
    assert len(client.get_metric_history(run.info.run_id, "latency_ms")) == 120 // 60, "live.metrics_every"
    assert len(client.get_metric_history(run.info.run_id, "latency_ms_max")) == 120 // 60
    uploaded = download_records(default_uri(str(tmp_path / "mlruns")), run.info.run_id, tmp_path / "download")
    for name in ("candles.jsonl", "predictions.jsonl", "facts.jsonl"):
        assert (uploaded / name).read_bytes() == (run_dir / name).read_bytes(), "uploaded segments add up"


def test_sigterm_then_restart_leaves_no_gap_and_no_duplicate(tmp_path: Path, emulator: list[str]) -> None:
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "forecaster", "mode=live", *emulator, "live.metrics_every=1"]
    args.append(f"hydra.run.dir={run_dir}")
    share_jax_cache(tmp_path)
    with (tmp_path / "stderr.txt").open("w") as stderr:
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 60
        while len(_keys(run_dir / "predictions.jsonl", "candle_ts")) < 20:
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    first = _keys(run_dir / "candles.jsonl", "ts_start")
    time.sleep(1.5)  # candles close while nothing runs: the restart must backfill them
    again = run_cli(
        "mode=live", *emulator, "live.max_candles=30", "live.metrics_every=1", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    candles = _keys(run_dir / "candles.jsonl", "ts_start")
    assert candles[: len(first)] == first and len(candles) == len(first) + 30
    assert _contiguous(candles) and len(set(candles)) == len(candles)
    assert _keys(run_dir / "predictions.jsonl", "candle_ts") == candles
    assert _keys(run_dir / "facts.jsonl", "candle_ts") == candles
    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    runs = client.search_runs(
        client.get_experiment_by_name("forecaster").experiment_id, order_by=["start_time"]
    )
    (run,) = runs  # the restart resumed the run dir's run, and its steps go on where they stopped
    assert run.info.status == "FINISHED" and run.data.tags["forecaster.sessions"] == "2"
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "latency_ms"))
    assert len(steps) == len(candles) and steps == list(range(steps[0], steps[0] + len(candles)))


def test_facts_mode_prints_only_new_lines(tmp_path: Path, emulator: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "mode=facts",
        *emulator,
        "live.max_candles=4",
        "tracking=off",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("candle (UTC)") and len(lines) == 1 + 5 + 4
    stamps = [line[:16] for line in lines[1:]]
    assert stamps == sorted(set(stamps)), "each line once, in order"
    facts = read_jsonl(run_dir / "facts.jsonl", "candle_ts").records
    assert len(facts) == 9 and all(f["close_curr"] == CLOSE[f["candle_ts"]] for f in facts)


def test_replay_source_runs_offline(tmp_path: Path) -> None:
    """live.max_candles counts predicted candles: a replay first fills its window (one line, not 59)."""
    result = run_cli("mode=live", "source=replay", "live.max_candles=21", "tracking=off", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs").glob("*/*")
    assert len(_keys(run_dir / "candles.jsonl", "ts_start")) == 59 + 21  # the window of 60 fills first
    assert len(_keys(run_dir / "predictions.jsonl", "candle_ts")) == 21
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"warming up: {WARMING}", "warmed up on 59 candles"]
    assert len(lines) == 2 + 21 and all("p_up=" in line for line in lines[2:])
    assert f"need not sum to 1; FLAT (abstain) when max(p_up, p_down) < 0.55 or {MARGIN}" in result.stderr
    assert "twohead-1m: 21 predicted candles, 20 settled, " in result.stderr


def test_missing_model_weights_are_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("mode=live", "source=replay", "tracking=off", "model.path=nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_during_a_failing_warm_up_stops_at_once(tmp_path: Path) -> None:
    """With Bybit unreachable the warm-up retries for minutes; Ctrl-C must not wait for that."""
    with socket.socket() as sock:  # a local port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [sys.executable, "-m", "forecaster", "mode=live", f"source.rest_url=http://127.0.0.1:{port}"]
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 60
        while "retry" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    assert "signal received during the warm-up" in log.read_text()
    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    (run,) = client.search_runs(client.get_experiment_by_name("forecaster").experiment_id)
    assert run.info.status == "KILLED"
