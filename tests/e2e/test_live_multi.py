"""Several predictors in one live process: one stream, separate records, scores and metrics.

The real entry point against the emulator (in a subprocess, as tests/test_live.py runs it), plus
the resolution of `live.predictors` entries and the member-spread FLAT rule inside the predictor.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from forecaster.candles import aggregate, timeframe_ms
from forecaster.recording import read_jsonl
from forecaster.tracking import default_uri
from tests.conftest import run_cli
from tests.e2e.test_live import SAMPLE

TIMEFRAMES = ("1m", "15m")  # the widest gap between warm-up ends the stream must reconcile
MODELS = ("twohead", "logreg")
PREDICTORS = (
    "live.predictors=["
    + ", ".join(f"{{model: {m}, timeframe: {tf}}}" for tf, m in itertools.product(TIMEFRAMES, MODELS))
    + "]"
)
MAX_CANDLES = 3


def _records(run_dir: Path, name: str, kind: str, key: str) -> list[dict]:
    return read_jsonl(run_dir / name / f"{kind}.jsonl", key).records


def _check_predictor(run_dir: Path, model: str, timeframe: str) -> list[int]:
    """Its candles are the CSV's candles of its timeframe, each predicted once, each with its fact."""
    name = f"{model}-{timeframe}"
    expected = aggregate(SAMPLE, timeframe).candles
    by_start = {int(s): i for i, s in enumerate(expected.start_ms)}
    candles = _records(run_dir, name, "candles", "ts_start")
    starts = [c["ts_start"] for c in candles]
    step = timeframe_ms(timeframe)
    assert starts and all(b - a == step for a, b in itertools.pairwise(starts)), f"{name}: contiguous"
    for c in candles:
        i = by_start[c["ts_start"]]
        assert c["timeframe"] == timeframe
        assert (c["o"], c["h"], c["l"], c["c"]) == (
            expected.open[i],
            expected.high[i],
            expected.low[i],
            expected.close[i],
        ), f"{name}: candle {c['ts_start']} differs from the CSV"
        assert c["volume"] == pytest.approx(expected.volume[i])
    predictions = _records(run_dir, name, "predictions", "candle_ts")
    assert [p["candle_ts"] for p in predictions] == starts, f"{name}: one prediction per candle"
    assert all(p["model"] == model and p["timeframe"] == timeframe for p in predictions)
    assert all(p["target_ts"] == p["candle_ts"] + step for p in predictions)
    facts = _records(run_dir, name, "facts", "candle_ts")
    assert [f["candle_ts"] for f in facts] == starts, f"{name}: the first live candle has its fact too"
    close = dict(zip(expected.start_ms.tolist(), expected.close.tolist(), strict=True))
    assert all(
        f["close_curr"] == close[f["candle_ts"]] and f["close_prev"] == close[f["prev_ts"]] for f in facts
    )
    return starts


def test_predictors_share_one_stream_with_separate_records(tmp_path: Path, emulator: list[str]) -> None:
    run_dir = tmp_path / "run"
    args = [*emulator, PREDICTORS, "live.metrics_every=1", f"hydra.run.dir={run_dir}"]
    first = run_cli("mode=live", *args, f"live.max_candles={MAX_CANDLES}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stderr.count("Bybit WS kline.1.BTCUSDT: connected") == 1, "one connection for all"
    assert not (run_dir / "candles.jsonl").exists(), "named predictors record in their own folders"
    before = {}
    for timeframe, model in itertools.product(TIMEFRAMES, MODELS):
        before[model, timeframe] = _check_predictor(run_dir, model, timeframe)
        assert len(before[model, timeframe]) == MAX_CANDLES
    for model in MODELS[1:]:
        for timeframe in TIMEFRAMES:
            assert before[model, timeframe] == before[MODELS[0], timeframe], "same candles per timeframe"
    lines = [line for line in first.stdout.splitlines() if "close=" in line]
    assert len(lines) == MAX_CANDLES * len(TIMEFRAMES) * len(MODELS)
    assert sum(line.startswith("logreg-15m ") for line in lines) == MAX_CANDLES
    assert any("| score " in line for line in lines)
    assert f"logreg-15m: {MAX_CANDLES} predicted candles, " in first.stderr, "a summary per predictor"
    assert "stream: 0 reconnects, " in first.stderr

    # eval of the run dir judges each predictor's folder, not "0 predictions" at its top
    judged = run_cli("mode=eval", f"eval.records={run_dir}", "tracking=off", "eval.plots=false", cwd=tmp_path)
    assert judged.returncode == 0, judged.stderr[-2000:]
    names = [f"{m}-{tf}" for tf, m in itertools.product(TIMEFRAMES, MODELS)]
    assert [line for line in judged.stdout.splitlines() if line.startswith("== ")] == [
        f"== {name} ==" for name in sorted(names)
    ]

    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    (run,) = client.search_runs(client.get_experiment_by_name("forecaster").experiment_id)
    assert run.data.params["predictor.logreg-15m.model.name"] == "logreg"
    assert run.data.params["predictor.twohead-15m.model.hidden"] == "[64, 64]"
    assert len(client.get_metric_history(run.info.run_id, "twohead-15m/latency_ms")) == MAX_CANDLES
    assert "logreg-1m/score" in run.data.metrics
    folder = [a.path for a in client.list_artifacts(run.info.run_id, "records/logreg-15m")]
    assert "records/logreg-15m/predictions.jsonl.parts" in folder, "uploaded as append-only segments"

    # a restart in the same run dir resumes every predictor after its own last candle
    again = run_cli("mode=live", *args, "live.max_candles=2", "tracking=off", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    for timeframe, model in itertools.product(TIMEFRAMES, MODELS):
        after = _check_predictor(run_dir, model, timeframe)
        assert after[:MAX_CANDLES] == before[model, timeframe] and len(after) > MAX_CANDLES


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{model: twohed}",
            "live.predictors[0].model=twohed is not allowed; "
            "choose one of: blend, combiner, ensemble, gbm, logreg, memory, persistence, twohead",
        ),
        ("{model: logreg, timeframe: 7m}", "live.predictors[0].timeframe=7m is not allowed"),
        ("{model: ensemble, members: 0}", "live.predictors[0].members=0 is not allowed"),
        ("{model: logreg, flat: lax}", "live.predictors[0].flat=lax is not allowed; choose one of: balanced"),
        ("{model: logreg}, {model: logreg}", "name 'logreg-1m' is used twice"),
        ("{model: logreg, path: a, uri: b}", "logreg-1m sets both path and uri"),
    ],
)
def test_a_bad_predictor_entry_is_one_line(tmp_path: Path, entry: str, message: str) -> None:
    result = run_cli("mode=live", "tracking=off", f"live.predictors=[{entry}]", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
