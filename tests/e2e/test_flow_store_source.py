"""source=flow_store end to end: train features=[rich,flow] on a day mode=record took from the
emulator, replay the model with mode=eval and get training's numbers; a source without flow is refused
in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from forecaster.flow.store import read_store
from forecaster.tracking import default_uri
from tests.conftest import emulator_process, run_cli

# 400 minutes at 50 a second, few trades each: rich's warm-up leaves a few hundred rows
RECORDED = 400
EMULATED = ("--speed", "50", "--trades-per-candle", "10")
# at that speed a book push (at most one per 20 ms real time) spans emulated seconds and one held up
# by a busy machine can miss its minute: a book at the close is stale only when older than 2 minutes
# (an incomplete minute costs the rows of every window over it)
STALE_BOOK_MS = 120_000


def test_train_and_eval_on_a_day_recorded_from_the_emulator_and_refuse_flow_without_it(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    with emulator_process(*EMULATED) as emulator:
        recorded = run_cli(
            "mode=record", *emulator, f"paths.flow_store={store}", f"live.max_candles={RECORDED}",
            f"source.stale_book_ms={STALE_BOOK_MS}", "tracking=off", f"hydra.run.dir={tmp_path / 'record'}",
            cwd=tmp_path,
        )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr[-2000:]
    candles = read_store(store)
    assert len(candles) == RECORDED and candles.flow is not None, "live.max_candles minutes, not one more"
    complete = int(candles.flow[:, -1].sum())
    assert RECORDED * 9 // 10 <= complete < len(candles), (
        "the minutes before the flow streams are up are incomplete; the rest are not"
    )

    common = [
        "source=flow_store",
        f"paths.flow_store={store}",
        "features=[rich,flow]",
        "model=gbm",
        "model.min_data_in_leaf=20",  # a few hundred rows: trees that split, so the model decides
        "flat=off",
    ]
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    training = run_cli(
        "mode=train", *common, "train.yardstick=false", "train.progress=false",
        f"hydra.run.dir={train_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert training.returncode == 0, training.stderr[-2000:]
    assert f"history: {len(candles)} 1m candles from flow_store" in training.stderr
    card = json.loads((train_dir / "model" / "model.json").read_text())
    assert card["feature_set"] == "rich+flow"
    assert {"flow_imb", "book_imb_10", "flow_volume_ratio_15"} <= set(card["feature_names"])
    trained = card["last_fold_test"]
    assert trained["model"]["n"] > 0 and set(trained) >= {"model", "persistence"}
    uri = default_uri(str(tmp_path / "mlruns"))
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("forecaster")
    assert experiment is not None, "training logs to the MLflow store in the run's folder"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and "test.model.brier_up" in run.data.metrics

    evaluated = run_cli(
        "mode=eval", *common, f"source.path={store}", "paths.flow_store=elsewhere",
        f"model.path={train_dir / 'model'}", "tracking=off", f"hydra.run.dir={eval_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    model = metrics["model"]
    assert model["n"] == trained["model"]["n"], (
        "the test split's rows, incomplete minutes skipped as in training"
    )
    decided = model["decided"]
    assert decided["n"] > 0 and decided["wilson_low"] <= decided["accuracy"] <= decided["wilson_high"]
    assert model["summary"]["brier_up"] == pytest.approx(trained["model"]["brier_up"], abs=1e-9)
    assert metrics["persistence"]["summary"]["n"] == model["n"]

    refused = run_cli(
        "mode=train", "source=replay", "features=[rich,flow]", "model=gbm", "tracking=off", cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "the flow block needs candles with order-flow bars" in refused.stderr
    assert "Traceback" not in refused.stderr
