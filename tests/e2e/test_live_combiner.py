"""model=combiner through the real entry point: a live replay session with two members and their
combiner, its records and MLflow weight metrics, a restart that resumes its weights, and mode=eval's
replay of it from the members' records giving exactly the recorded predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from forecaster.recording import read_jsonl
from forecaster.tracking import default_uri
from tests.conftest import run_cli

PREDICTORS = (
    "live.predictors=[{model: persistence}, {model: logreg}, {model: combiner, eta: 0.5, window: 20}]"
)
MEMBERS = ("persistence-1m", "logreg-1m")
COMBINER = "combiner-1m"


def test_a_combiner_records_weighs_resumes_and_replays(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["mode=live", "source=replay", PREDICTORS, "live.metrics_every=2", f"hydra.run.dir={run_dir}"]
    first = run_cli(*args, "live.max_candles=8", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    predictions = read_jsonl(run_dir / COMBINER / "predictions.jsonl", "candle_ts").records
    members = [read_jsonl(run_dir / m / "predictions.jsonl", "candle_ts").records for m in MEMBERS]
    assert [p["candle_ts"] for p in predictions] == [p["candle_ts"] for p in members[0]], "a call per candle"
    assert len(predictions) == 8 and all(p["model"] == "combiner" for p in predictions)
    assert all(
        min(m[i]["p_up"] for m in members) <= p["p_up"] <= max(m[i]["p_up"] for m in members)
        for i, p in enumerate(predictions)
    ), "a weighted mean of the members'"
    facts = read_jsonl(run_dir / COMBINER / "facts.jsonl", "candle_ts").records
    assert facts and (run_dir / COMBINER / "combiner.json").is_file()
    assert f"{COMBINER}: 8 predicted candles, " in first.stderr, "its own summary line"
    assert sum(line.startswith(f"{COMBINER} ") for line in first.stdout.splitlines() if "close=" in line) == 8

    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    (run,) = client.search_runs(client.get_experiment_by_name("forecaster").experiment_id)
    weights = [client.get_metric_history(run.info.run_id, f"{COMBINER}/weight.{m}") for m in MEMBERS]
    assert all(len(history) >= 2 for history in weights), "a point every live.metrics_every candles"
    assert sum(run.data.metrics[f"{COMBINER}/weight.{m}"] for m in MEMBERS) == pytest.approx(1)
    assert f"{COMBINER}/score" in run.data.metrics, "its own scoreboard"

    again = run_cli(*args, "live.max_candles=4", "tracking=off", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    after = read_jsonl(run_dir / COMBINER / "predictions.jsonl", "candle_ts").records
    assert after[:8] == predictions and len(after) == 12, "resumed after its last candle, nothing twice"

    judged = run_cli("mode=eval", f"eval.records={run_dir}", "tracking=off", "eval.plots=false", cwd=tmp_path)
    assert judged.returncode == 0, judged.stderr[-2000:]
    said = f"{COMBINER}: replayed from the records of {', '.join(MEMBERS)}: "
    assert f"{said}identical to the 12 recorded predictions" in judged.stdout, judged.stdout[-2000:]
    assert f"== {COMBINER} ==" in judged.stdout, "judged like any predictor"
