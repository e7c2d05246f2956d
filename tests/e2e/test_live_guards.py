"""A live service that outlives its operator's mistakes: a second process on the same run dir, a
stale lock left by a killed one, a full or read-only disk. The real entry point against the Bybit
emulator, in subprocesses.

Tests run as root, which file modes cannot stop, so a full or read-only disk is a tiny tmpfs mounted
in a user + mount namespace of the command (`unshare -rm`; the network is shared, so the emulator is
reachable). Where unshare is not allowed those tests are skipped: the other way to make writes fail,
a record file linked to /dev/full, would hang the writer, which reads a file before appending to it.
"""

from __future__ import annotations

import functools
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forecaster.recording import read_jsonl
from forecaster.run_lock import LOCK_FILE
from tests.conftest import run_cli, share_jax_cache

# mount a tmpfs with options $1 on $2, run the rest, copy the run dir ($2/run) out to $2.out (the
# tmpfs goes with the namespace) and exit as the command did
ON_TMPFS = """opts=$1 disk=$2; shift 2
mount -t tmpfs -o "$opts" tmpfs "$disk" || exit 99
"$@"; rc=$?; cp -r "$disk/run" "$disk.out" 2>/dev/null; exit $rc"""
UNSHARE = ("unshare", "-rm", "sh", "-c")


def _keys(path: Path, key: str) -> list[int]:
    return [r[key] for r in read_jsonl(path, key).records]


@functools.cache
def _why_no_tmpfs() -> str | None:
    """None when this machine lets a test mount a tmpfs in its own namespace, else why not."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run([*UNSHARE, "mount -t tmpfs -o size=4k tmpfs /mnt"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare -rm cannot mount a tmpfs here: {probe.stderr.strip()}"


def run_on_tmpfs(tmp_path: Path, options: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m forecaster ARGS hydra.run.dir=<a tmpfs mounted with options>/run`; the run dir
    comes back as tmp_path/disk.out."""
    if (why := _why_no_tmpfs()) is not None:
        pytest.skip(why)
    disk = tmp_path / "disk"
    disk.mkdir()
    share_jax_cache(tmp_path)
    command = [sys.executable, "-m", "forecaster", *args, f"hydra.run.dir={disk / 'run'}"]
    return subprocess.run(
        [*UNSHARE, ON_TMPFS, "sh", options, str(disk), *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


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


def test_a_full_disk_stops_the_session_with_one_line_and_whole_records(
    tmp_path: Path, emulator: list[str]
) -> None:
    args = ("mode=live", *emulator, "tracking=off", "sink.fsync=false", "live.min_free_mb=0")
    result = run_on_tmpfs(tmp_path, "size=40k", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "cannot write" in line]
    assert "No space left on device" in line and "free on that disk" in line
    assert "restart in the same run dir to resume" in line
    run_dir = tmp_path / "disk.out"
    candles = _keys(run_dir / "candles.jsonl", "ts_start")
    assert candles, result.stderr[-2000:]
    assert _keys(run_dir / "facts.jsonl", "candle_ts")[: len(candles)] == candles, "no gap, no duplicate"
    assert _keys(run_dir / "predictions.jsonl", "candle_ts")[: len(candles)] == candles


def test_the_free_space_floor_stops_the_session_before_the_disk_is_full(
    tmp_path: Path, emulator: list[str]
) -> None:
    # about 280 KB are free once Hydra has written the run's config: the floor is hit after ~25 KB of records
    args = ("mode=live", *emulator, "tracking=off", "live.min_free_mb=0.25", "live.disk_check_s=0")
    result = run_on_tmpfs(tmp_path, "size=300k", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "free on its disk" in line]
    assert "below live.min_free_mb=0.25" in line
    run_dir = tmp_path / "disk.out"
    candles = _keys(run_dir / "candles.jsonl", "ts_start")
    assert candles, "the session ran before the floor stopped it"
    assert not read_jsonl(run_dir / "candles.jsonl", "ts_start").torn_tail
    assert _keys(run_dir / "predictions.jsonl", "candle_ts") == candles


def test_a_read_only_run_dir_is_one_line(tmp_path: Path) -> None:
    result = run_on_tmpfs(tmp_path, "ro,size=4k", "mode=live", "source=replay", "tracking=off")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(tmp_path / "disk" / "run") in line and "Read-only file system" in line


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_during_start_up_is_one_line(tmp_path: Path, signum: int, code: int) -> None:
    share_jax_cache(tmp_path)
    args = [sys.executable, "-m", "forecaster", "mode=live", "source=replay", "tracking=off"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # inside the imports of Hydra and the config's composition
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-2000:]
    name = signal.Signals(signum).name
    assert stderr.splitlines() == [f"forecaster: interrupted during start-up ({name}); nothing was recorded"]
