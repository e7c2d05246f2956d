"""mode=record against the emulator with every flow fault on: the stored bars of complete minutes are
the ones computed offline from the emulator's own trades and book, every resync is counted, and a
SIGKILL + restart loses nothing already written and stores nothing twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from forecaster.candles import MINUTE_MS
from forecaster.emulator.flow import book_after, trades_for
from forecaster.flow.bars import flow_bar
from forecaster.flow.store import read_store, read_trades
from forecaster.recording import read_jsonl
from tests.conftest import emulator_process, run_cli, share_jax_cache

DEPTH = 50  # source.book_depth's default
SEED = 7  # --speed 2: a restart (a few seconds) misses a few minutes, not dozens
FAULTS = (
    "--speed", "2", "--seed", str(SEED), "--trade-duplicate-every", "3", "--book-cross-every", "5",
    "--book-gap-every", "11", "--book-restart-every", "4", "--book-stale-every", "6",
)  # fmt: skip
TRADE_FIELDS = slice(1, 12)  # buy_volume .. size_q90 of a FlowBar: what the trades alone decide
BOOK_FIELDS = slice(12, 25)  # bid .. book_imb_25: the book at the close
KILL_AFTER = 10  # minutes stored before the SIGKILL
TIMEOUT_S = 90


def _stored(store: Path) -> list[int]:
    days = sorted(store.glob("????-??-??.jsonl"))
    return [r["ts_start"] for day in days for r in read_jsonl(day, "ts_start").records]


def test_recorded_flow_equals_the_emulators_trades_through_faults_and_a_sigkill(tmp_path: Path) -> None:
    store = tmp_path / "flow_store"
    common = [f"paths.flow_store={store}", "mode.raw_trades=true", "tracking=off"]
    with emulator_process(*FAULTS) as emulator:
        share_jax_cache(tmp_path)
        args = [
            sys.executable,
            "-m",
            "forecaster",
            "mode=record",
            *emulator,
            *common,
            f"hydra.run.dir={tmp_path}/a",
        ]
        with (tmp_path / "first.txt").open("wb") as out:
            first = subprocess.Popen(args, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + TIMEOUT_S
            while len(_stored(store)) < KILL_AFTER:
                assert first.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "first.txt"
                ).read_text()
                time.sleep(0.1)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        before = _stored(store)
        again = run_cli(
            "mode=record",
            *emulator,
            *common,
            "live.max_candles=20",
            f"hydra.run.dir={tmp_path}/b",
            cwd=tmp_path,
        )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming after" in again.stderr

    after = _stored(store)
    assert after[: len(before)] == before, "nothing written before the kill is lost or rewritten"
    assert len(set(after)) == len(after) and np.all(np.diff(after) == MINUTE_MS), (
        "no minute twice, none missing"
    )

    candles, trades = read_store(store), read_trades(store)
    complete = [i for i in range(len(candles)) if candles.flow is not None and candles.flow[i, -1] == 1.0]
    assert len(complete) >= KILL_AFTER, "most minutes are complete"
    for i in complete:
        candle = candles.candle(i)
        expected = trades_for(candle, SEED)
        assert trades[candle.start_ms] == expected
        bar = flow_bar(candle.start_ms, expected, book_after(expected[-1], SEED, DEPTH), 0, True)
        assert candle.flow is not None and candle.flow[TRADE_FIELDS] == bar[TRADE_FIELDS]
        assert candle.flow[BOOK_FIELDS] == bar[BOOK_FIELDS], "the book at the close is the emulator's"
    incomplete = len(candles) - len(complete)
    assert incomplete >= 2, "the first minute of each session is joined part-way"

    lines = (tmp_path / "first.txt").read_text() + again.stdout
    counted = [int(n) for n in re.findall(r"(\d+) resyncs", lines)]
    assert max(counted) > 0, "the faulty book was resynced, and said so"
