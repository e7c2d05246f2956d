"""mode=eval: the join on messy records, a live emulator session judged end to end, a trained model
judged on history by the live code path (it must reproduce what training reported), and eval sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from forecaster.recording import (
    read_jsonl,
)
from forecaster.tracking import default_uri
from tests.conftest import emulator_process, run_cli

STEP = 60_000


@pytest.fixture(scope="module")
def live_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One live emulator session (with its MLflow run) that the tests below evaluate."""
    home = tmp_path_factory.mktemp("session")
    run_dir = home / "live"
    with emulator_process() as emulator:
        args = ["mode=live", *emulator, "live.max_candles=150", "flat=loose", f"hydra.run.dir={run_dir}"]
        result = run_cli(*args, cwd=home)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def _independent(run_dir: Path) -> tuple[int, int, int]:
    """Decided predictions and hits, counted the plain way from the record files."""
    facts = {f["prev_ts"]: f["direction"] for f in read_jsonl(run_dir / "facts.jsonl").records}
    decided = hits = matched = 0
    for p in read_jsonl(run_dir / "predictions.jsonl").records:
        if p["candle_ts"] in facts:
            matched += 1
            if p["direction"] != "FLAT":
                decided += 1
                hits += p["direction"] == facts[p["candle_ts"]]
    return matched, decided, hits


def test_eval_of_a_live_session(tmp_path: Path, live_session: Path) -> None:
    run_dir = tmp_path / "eval"
    result = run_cli("mode=eval", f"eval.records={live_session}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    matched, decided, hits = _independent(live_session)
    assert metrics["join"]["matched"] == matched == 149 and metrics["join"]["unmatched"] == 1
    assert metrics["model"]["decided"]["n"] == decided and metrics["model"]["decided"]["hits"] == hits
    assert set(metrics) == {"join", "model", "persistence", "reversal", "majority", "paired", "verdict"}
    said = ("too few decided calls", "no better than persistence", "better than")
    assert metrics["verdict"].startswith(said)
    bar = metrics["paired"]["model_vs_persistence"]
    assert bar["n"] <= decided and 0 <= bar["p_value"] <= 1, (
        "persistence is the bar, on the candles both decide"
    )
    assert "verdict: " in result.stdout.splitlines()[-3]
    report = (run_dir / "report.md").read_text()
    assert "## Model and baselines on the same candles" in report and "| persistence |" in report
    assert "| reversal |" in report
    assert sorted(p.name for p in (run_dir / "plots").glob("*.png")) == [
        "confusion.png", "coverage.png", "cumulative_accuracy.png", "majority_confusion.png",
        "persistence_confusion.png", "reliability.png", "reversal_confusion.png",
    ]  # fmt: skip
    assert "model            decided" in result.stdout

    home = live_session.parent
    client = MlflowClient(default_uri(str(home / "mlruns")))
    runs = client.search_runs(client.get_experiment_by_name("forecaster").experiment_id, "tags.mode = 'live'")
    by_id = run_cli("mode=eval", f"eval.records={runs[0].info.run_id}", "eval.plots=false", cwd=home)
    assert by_id.returncode == 0, by_id.stderr[-2000:]
    assert f"joined {matched} predictions" in by_id.stdout


def test_eval_sweep_compares_flat_rules(tmp_path: Path, live_session: Path) -> None:
    args = ["-m", "mode=eval", f"eval.records={live_session}", "eval.redecide=true", "eval.plots=false"]
    result = run_cli(*args, "flat=strict,balanced,off", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    runs = client.search_runs(client.get_experiment_by_name("forecaster").experiment_id, "tags.mode = 'eval'")
    assert sorted(r.data.tags["flat"] for r in runs) == ["balanced", "off", "strict"]
    keys = [set(r.data.metrics) for r in runs]
    assert keys[0] == keys[1] == keys[2] and "model.decided.n" in keys[0]
    coverage = {r.data.tags["flat"]: r.data.metrics["model.overall.flat_share"] for r in runs}
    assert coverage["off"] <= coverage["balanced"] <= coverage["strict"]


def test_eval_of_a_trained_model_reproduces_training(tmp_path: Path) -> None:
    train_dir = tmp_path / "train"
    args = [
        "mode=train",
        "source=replay",
        "train.epochs=3",
        "train.progress=false",
        "tracking=off",
        "flat=off",
    ]
    training = run_cli(*args, f"hydra.run.dir={train_dir}", cwd=tmp_path)
    assert training.returncode == 0 and "calibration (temperature, fitted on validation)" in training.stdout
    trained = json.loads((train_dir / "model" / "model.json").read_text())["last_fold_test"]
    reliability = json.loads((train_dir / "metrics.json").read_text())["calibration"]["test"]
    run_dir = tmp_path / "eval"
    args = ["mode=eval", "source=replay", f"model.path={train_dir / 'model'}", "tracking=off", "flat=off"]
    result = run_cli(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = metrics["model"]["summary"]
    assert model["n"] == trained["model"]["n"] and metrics["join"]["unmatched"] == 0
    for key in ("brier_up", "brier_down", "log_loss_up", "log_loss_down"):
        assert model[key] == pytest.approx(trained["model"][key], abs=1e-6), key
    assert model["decided_accuracy"] == pytest.approx(
        trained["model"]["decided_accuracy"], abs=2 / model["n"]
    )
    assert metrics["persistence"]["summary"]["decided_accuracy"] == trained["persistence"]["decided_accuracy"]
    assert (run_dir / "predictions.jsonl").is_file(), "history is judged through the same records as live"
    # the card's calibration is applied in replay as in training: ECE before and after agree
    assert "calibration (fitted on the model's validation rows)" in result.stdout
    assert "## Calibration" in (run_dir / "report.md").read_text()
    for head in ("up", "down"):
        assert metrics["model"]["heads"][head]["ece"] == pytest.approx(
            reliability[f"ece_{head}_after"], abs=1e-6
        )
        before = metrics["model"]["uncalibrated"][head]["ece"]
        assert before == pytest.approx(reliability[f"ece_{head}_before"], abs=1e-6)
    record = json.loads((run_dir / "predictions.jsonl").read_text().splitlines()[0])
    assert {"raw_p_up", "raw_p_down"} <= record.keys()


def test_a_trained_gbm_is_replayed_with_the_numbers_training_reported(tmp_path: Path) -> None:
    """model=gbm through the real CLI: LightGBM-text weights, then mode=eval through the live path."""
    train_dir, run_dir = tmp_path / "train", tmp_path / "eval"
    quiet = ["source=replay", "model=gbm", "tracking=off", "flat=off"]
    args = ["mode=train", *quiet, "train.yardstick=false", "train.progress=false"]
    training = run_cli(*args, f"hydra.run.dir={train_dir}", cwd=tmp_path)
    assert training.returncode == 0, training.stderr[-2000:]
    assert sorted(p.name for p in (train_dir / "model").iterdir()) == [
        "gbm_down.txt",
        "gbm_up.txt",
        "model.json",
    ]
    trained = json.loads((train_dir / "model" / "model.json").read_text())["last_fold_test"]
    assert "yardstick" not in trained, "train.yardstick=false trains none"
    result = run_cli(
        "mode=eval", *quiet, f"model.path={train_dir / 'model'}", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "INFO loaded gbm weights from " in result.stderr
    model = json.loads((run_dir / "metrics.json").read_text())["model"]["summary"]
    assert model["n"] == trained["model"]["n"]
    for key in ("brier_up", "brier_down", "log_loss_up", "log_loss_down", "decided_accuracy"):
        assert model[key] == pytest.approx(trained["model"][key], abs=1e-9), key


def test_a_trained_blend_is_replayed_with_the_numbers_training_reported(tmp_path: Path) -> None:
    """model=blend through the real CLI: each member in its own folder and format, with its own card
    (standardizer, calibration), then mode=eval through the live path."""
    train_dir, run_dir = tmp_path / "train", tmp_path / "eval"
    quiet = ["source=replay", "model=blend", "tracking=off", "flat=off"]
    quick = ["model.members=[logreg,gbm]", "+model.keys.gbm.n_estimators=20", "+model.keys.gbm.num_threads=1"]
    args = ["mode=train", *quiet, *quick, "train.epochs=2", "train.yardstick=false", "train.progress=false"]
    training = run_cli(*args, f"hydra.run.dir={train_dir}", cwd=tmp_path)
    assert training.returncode == 0, training.stderr[-2000:]
    folder = train_dir / "model"
    assert sorted(p.name for p in folder.iterdir()) == ["blend.json", "gbm", "logreg", "model.json"]
    assert sorted(p.name for p in (folder / "logreg").iterdir()) == ["model.eqx", "model.json"]
    cards = {name: json.loads((folder / name / "model.json").read_text()) for name in ("logreg", "gbm")}
    assert cards["logreg"]["normalisation"] is not None and cards["gbm"]["normalisation"] is None
    assert all(card["calibration"]["method"] == "temperature" for card in cards.values())
    blend = json.loads((folder / "model.json").read_text())
    assert blend["name"] == "blend" and blend["members"] == 2 and blend["calibration"] is not None
    result = run_cli(
        "mode=eval",
        *quiet,
        "eval.plots=false",
        f"model.path={folder}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "INFO loaded blend weights from " in result.stderr
    model = json.loads((run_dir / "metrics.json").read_text())["model"]["summary"]
    trained = blend["last_fold_test"]["model"]
    assert model["n"] == trained["n"]
    for key in ("brier_up", "brier_down", "log_loss_up", "log_loss_down"):  # logreg runs in float32
        assert model[key] == pytest.approx(trained[key], abs=1e-6), key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval.records=nowhere"], "eval.records=nowhere"),
        (["source=replay"], "say which period"),
        (["source=replay", "model=persistence", "data.start=yesterday"], "data.start"),
    ],
)
def test_bad_eval_requests_are_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("mode=eval", "tracking=off", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-1000:]
    assert "Traceback" not in result.stderr


def test_eval_compares_a_trained_logreg_on_the_same_candles(
    tmp_path: Path, live_session: Path, trained_logreg: Path
) -> None:
    run_dir = tmp_path / "eval"
    args = [
        "mode=eval",
        f"eval.records={live_session}",
        f"eval.compare={trained_logreg}",
        "tracking=off",
    ]
    result = run_cli(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    compared = metrics["compared_logreg"]
    # the logreg replays the 150 recorded candles: its window fills on the first 60, then it predicts
    assert 0 < compared["n"] <= metrics["model"]["n"] and compared["n"] == 150 - 60
    assert "| compared_logreg |" in (run_dir / "report.md").read_text()
    assert "compared_logreg" in result.stdout
    assert f"INFO loaded logreg weights from {trained_logreg}" in result.stderr, "as model=logreg"
