"""mode=live with a flow block against the emulator (duplicate trades and book gaps on): the session
streams the order flow beside the klines, records one bar per candle in flow.jsonl, the complete ones
exactly the bars of the emulator's own trades and book, and a replay of the records (candles.jsonl
with flow.jsonl beside it) through mode=eval predicts exactly what live predicted."""

from __future__ import annotations

import json
from pathlib import Path

from forecaster.emulator.flow import book_after, trades_for
from forecaster.flow.bars import bar_from_record, flow_bar
from forecaster.recording import read_jsonl, recorded_candles
from tests.conftest import emulator_process, run_cli

SEED = 5
DEPTH = 50  # source.book_depth's default
FAULTS = ("--seed", str(SEED), "--trade-duplicate-every", "3", "--book-gap-every", "60")
TRADE_FIELDS = slice(1, 12)  # buy_volume .. size_q90: what the trades alone decide
BOOK_FIELDS = slice(12, 25)  # bid .. book_imb_25: the book at the close
# enough predictions that the records outgrow the rich block's window (which live fills from REST and
# a replay from the records), so that both predict a stretch of the same candles
PREDICTIONS = 60
FLOW = ["features=[rich,flow]", "tracking=off", "flat=off"]


def _predictions(path: Path) -> dict[int, tuple[float, float]]:
    return {r["candle_ts"]: (r["p_up"], r["p_down"]) for r in read_jsonl(path, "candle_ts").records}


def test_live_records_the_flow_of_its_candles_exactly_and_a_replay_predicts_the_same(tmp_path: Path) -> None:
    live_dir, eval_dir = tmp_path / "live", tmp_path / "eval"
    with emulator_process(*FAULTS) as emulator:
        live = run_cli(
            "mode=live", *emulator, *FLOW, f"live.max_candles={PREDICTIONS}", f"hydra.run.dir={live_dir}",
            cwd=tmp_path,
        )  # fmt: skip
    assert live.returncode == 0, live.stderr[-3000:]
    assert "flow: 0 reconnects" in live.stderr and "resyncs" in live.stderr

    candles = recorded_candles(live_dir / "candles.jsonl", live_dir / "flow.jsonl")
    bars = [bar_from_record(r) for r in read_jsonl(live_dir / "flow.jsonl", "ts_start").records]
    assert [b.start_ms for b in bars] == [c.start_ms for c in candles], "one bar per recorded candle"
    complete = [c for c in candles if c.flow is not None and c.flow.complete]
    assert len(complete) >= PREDICTIONS
    for candle in complete:
        expected = trades_for(candle, SEED)
        bar = flow_bar(candle.start_ms, expected, book_after(expected[-1], SEED, DEPTH), 0, True)
        assert candle.flow is not None and candle.flow[TRADE_FIELDS] == bar[TRADE_FIELDS]
        assert candle.flow[BOOK_FIELDS] == bar[BOOK_FIELDS], "the book at the close is the emulator's"
    assert not candles[0].flow or not candles[0].flow.complete, "the first minute is joined part-way"

    first = json.loads((live_dir / "candles.jsonl").read_text().splitlines()[0])["ts_start"]
    replay = run_cli(
        "mode=eval", "source=replay", f"source.path={live_dir / 'candles.jsonl'}", *FLOW,
        f"data.start={first}", f"hydra.run.dir={eval_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr[-3000:]
    recorded, replayed = (
        _predictions(live_dir / "predictions.jsonl"),
        _predictions(eval_dir / "predictions.jsonl"),
    )
    both = sorted(set(recorded) & set(replayed))
    assert len(both) >= 5 and set(replayed) <= set(recorded)
    assert [recorded[t] for t in both] == [replayed[t] for t in both], "the replay predicts what live did"
