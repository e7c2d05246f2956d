"""source=flow_store end to end: train features=[rich,flow] on recorded days, replay the model with
mode=eval and get training's numbers; a source without flow is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forecaster.candles import read_csv
from forecaster.data import SAMPLE_CSV
from tests.conftest import run_cli
from tests.flow_synthetic import write_store

DAYS = 3


def test_train_and_eval_on_recorded_days_and_refuse_flow_without_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_store(store, read_csv(SAMPLE_CSV)[: DAYS * 1440])
    quiet = [
        "source=flow_store",
        f"source.path={store}",
        "features=[rich,flow]",
        "model=gbm",
        "tracking=off",
        "flat=off",
    ]
    train_dir, run_dir = tmp_path / "train", tmp_path / "eval"
    args = ["mode=train", *quiet, "train.yardstick=false", "train.progress=false"]
    training = run_cli(*args, f"hydra.run.dir={train_dir}", cwd=tmp_path)
    assert training.returncode == 0, training.stderr[-2000:]
    assert "history: 4320 1m candles from flow_store" in training.stderr
    card = json.loads((train_dir / "model" / "model.json").read_text())
    assert card["feature_set"] == "rich+flow" and "book_imb_10_mean_15" in card["feature_names"]
    trained = card["last_fold_test"]
    result = run_cli(
        "mode=eval", *quiet, f"model.path={train_dir / 'model'}", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    model = json.loads((run_dir / "metrics.json").read_text())["model"]["summary"]
    assert model["n"] == trained["model"]["n"], "rows with an incomplete bar are skipped live as in training"
    for key in ("brier_up", "brier_down", "decided_accuracy"):
        assert model[key] == pytest.approx(trained["model"][key], abs=1e-9), key
    refused = run_cli(
        "mode=train", "source=replay", "features=[rich,flow]", "model=gbm", "tracking=off", cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "the flow block needs candles with order-flow bars" in refused.stderr
    assert "Traceback" not in refused.stderr
