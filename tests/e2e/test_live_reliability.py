"""A live service that outlives its tracker: a real `mlflow server` on 127.0.0.1, killed and restarted
under a running session, and a session SIGKILLed and restarted in its run dir.

The session must go on predicting and recording while MLflow is down, say so once, catch up when
it is back, and a run dir must always hold exactly one MLflow run, resumed by every restart.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from forecaster.recording import read_jsonl
from forecaster.tracking import default_uri, download_records
from tests.conftest import run_cli, share_jax_cache
from tests.e2e.test_live import _contiguous, _keys

SERVER_START_S = 120  # `mlflow server` takes 10-20 s to answer on a busy 2-core machine
HEALTH_POLL_S = 0.5
FAILED = "the session goes on predicting and recording"
CAUGHT_UP = "caught up"


class MlflowServer:
    """`mlflow server` (SQLite store, proxied artefacts) on one port, to kill and start again."""

    def __init__(self, home: Path) -> None:
        self.home = home
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--backend-store-uri", f"sqlite:///{self.home / 'mlflow.db'}",
            "--artifacts-destination", str(self.home / "artifacts"),
        ]  # fmt: skip
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "server.log").open("ab") as log:
            # no job runner and its 7 huey consumers: a plain tracking server, as `make ui` runs it
            env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, env=env)
        deadline = time.monotonic() + SERVER_START_S
        while not self._healthy():
            assert self.process.poll() is None, (self.home / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(HEALTH_POLL_S)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """What a crash looks like: the whole process group, SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path / "server")
    server.start()
    yield server
    server.kill()


def _live(cwd: Path, run_dir: Path, *overrides: str) -> subprocess.Popen[bytes]:
    share_jax_cache(cwd)
    args = [sys.executable, "-m", "forecaster", "mode=live", f"hydra.run.dir={run_dir}", *overrides]
    with (cwd / "stdout.txt").open("ab") as out, (cwd / "stderr.txt").open("ab") as err:
        return subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err)


def _until(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes], cwd: Path, timeout_s: float = 90
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, (cwd / "stderr.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, (cwd / "stderr.txt").read_text()[-3000:]
        time.sleep(0.1)


def _predicted(run_dir: Path) -> int:
    return len(_keys(run_dir / "predictions.jsonl", "candle_ts"))


def _intact(run_dir: Path) -> list[int]:
    """The three record files agree candle by candle, with no gap, no duplicate and no torn line."""
    candles = _keys(run_dir / "candles.jsonl", "ts_start")
    assert _contiguous(candles) and len(set(candles)) == len(candles)
    for name, key in (("predictions.jsonl", "candle_ts"), ("facts.jsonl", "candle_ts")):
        contents = read_jsonl(run_dir / name, key)
        assert not contents.torn_tail and not contents.bad_lines
        assert [r[key] for r in contents.records] == candles, name
    return candles


def test_a_tracking_server_outage_stalls_nothing_and_double_sigterm_still_exits_0(
    tmp_path: Path, emulator: list[str], server: MlflowServer
) -> None:
    run_dir = tmp_path / "run"
    quick = ["tracking.flush_s=0.2", "tracking.retry_max_s=1", "live.upload_every=20", "live.metrics_every=1"]
    proc = _live(tmp_path, run_dir, *emulator, f"tracking.uri={server.uri}", *quick)
    _until(lambda: _predicted(run_dir) >= 20, proc, tmp_path)

    server.kill()
    down = _predicted(run_dir)
    _until(lambda: _predicted(run_dir) >= down + 30, proc, tmp_path)  # the stream does not wait
    server.start()
    _until(lambda: CAUGHT_UP in (tmp_path / "stderr.txt").read_text(), proc, tmp_path)
    back = _predicted(run_dir)
    _until(lambda: _predicted(run_dir) >= back + 10, proc, tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    stderr = (tmp_path / "stderr.txt").read_text()
    assert stderr.count(FAILED) == 1 and stderr.count(CAUGHT_UP) == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    candles = _intact(run_dir)
    lines = [line for line in (tmp_path / "stdout.txt").read_text().splitlines() if "close=" in line]
    assert len(lines) == len(candles), "a console line for every candle, outage or not"

    client = MlflowClient(server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    assert run.info.status == "KILLED"
    assert len(client.get_metric_history(run.info.run_id, "latency_ms")) == len(candles), "caught up"
    uploaded = download_records(server.uri, run.info.run_id, tmp_path / "download")
    for name in ("candles.jsonl", "predictions.jsonl", "facts.jsonl"):
        assert (uploaded / name).read_bytes() == (run_dir / name).read_bytes()

    # MLflow down at shutdown, and a second SIGTERM meanwhile (docker stop's escalation): exit 0.
    proc = _live(
        tmp_path, run_dir, *emulator, f"tracking.uri={server.uri}", *quick, "live.shutdown_timeout_s=4"
    )
    before = len(candles)
    _until(lambda: _predicted(run_dir) >= before + 10, proc, tmp_path)
    server.kill()
    proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    stderr = (tmp_path / "stderr.txt").read_text()
    assert (
        "SIGTERM again: already stopping" in stderr and "took longer than live.shutdown_timeout_s" in stderr
    )
    assert "Traceback" not in stderr
    candles = _intact(run_dir)

    # The server's own store, read directly while it is down: still the one run, left RUNNING for the
    # next start to resume (test_sigkill_then_restart_leaves_exactly_one_run shows that resume).
    store = MlflowClient(f"sqlite:///{server.home / 'mlflow.db'}")
    (run,) = store.search_runs([store.get_experiment_by_name("forecaster").experiment_id])
    assert run.info.status == "RUNNING" and run.data.tags["forecaster.sessions"] == "2"


def test_sigkill_then_restart_leaves_exactly_one_run(tmp_path: Path, emulator: list[str]) -> None:
    run_dir = tmp_path / "run"
    proc = _live(tmp_path, run_dir, *emulator, "live.metrics_every=1")
    _until(lambda: _predicted(run_dir) >= 20, proc, tmp_path)
    proc.kill()
    proc.wait()
    killed = len(_keys(run_dir / "candles.jsonl", "ts_start"))
    again = run_cli(
        "mode=live", *emulator, "live.max_candles=10", "live.metrics_every=1", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "it was RUNNING: its process had died" in again.stderr
    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    (run,) = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["forecaster.sessions"] == "2"
    candles = _intact(run_dir)
    assert len(candles) >= killed + 10
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "latency_ms"))
    assert len(set(steps)) == len(steps), "no step logged twice across the restart"
