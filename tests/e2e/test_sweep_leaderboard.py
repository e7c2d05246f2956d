"""The sweep leaderboard through the real entry point: at the end of a -m training sweep, and again
by hand from the sweep's folder and from its MLflow tag."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from forecaster.tracking import default_uri
from tests.conftest import run_cli

# flat=off: every job decides every candle (a calibrated model of one epoch may otherwise decide
# none, and then no job can be chosen)
SWEEP = [
    "-m",
    "mode=train",
    "source=replay",
    "model=logreg",
    "flat=off",
    "train.epochs=1",
    "train.progress=false",
]
FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.png")


def _verdict(stdout: str) -> str:
    (line,) = [line for line in stdout.splitlines() if line.startswith("verdict:")]
    return line


def test_a_training_sweep_ends_with_a_leaderboard_and_a_corrected_p(tmp_path: Path) -> None:
    result = run_cli(*SWEEP, "train.learning_rate=0.001,0.01", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    assert all((sweep / name).is_file() for name in FILES)
    board = json.loads((sweep / "leaderboard.json").read_text())
    labels = [job["label"] for job in board["jobs"]]
    assert labels == ["train.learning_rate=0.001", "train.learning_rate=0.01"]
    assert all(job["status"] == "judged" for job in board["jobs"])
    assert board["best_of_n"]["n_models"] == 2 and 0 <= board["corrected_p"] <= 1
    verdict = _verdict(result.stdout)
    assert "best of 2 on the test block: SPA p=" in verdict and "persistence" in verdict

    uri = default_uri(str(tmp_path / "mlruns"))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    chosen = next(job for job in board["jobs"] if job["label"] == board["chosen"])
    champion = client.get_model_version_by_alias("forecaster-logreg-1m", "champion")
    assert str(champion.version) == chosen["registered"]["version"]
    experiment = client.get_experiment_by_name("forecaster").experiment_id
    (run,) = client.search_runs(experiment, "tags.mode = 'eval'")
    assert run.info.run_name == "eval-leaderboard" and "best_of_n.spa_p" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == set(FILES)
    # what the README recommends after a sweep: the champion, by its alias
    champion_uri = "model.uri=models:/forecaster-logreg-1m@champion"
    judged = run_cli(
        "mode=eval", "source=replay", "model=logreg", champion_uri, "eval.plots=false", cwd=tmp_path
    )
    assert judged.returncode == 0, judged.stderr[-3000:]
    assert f"forecaster-logreg-1m version {champion.version}" in judged.stdout + judged.stderr
    nope = champion_uri.replace("@champion", "@nope")
    missing = run_cli("mode=eval", "source=replay", "model=logreg", nope, cwd=tmp_path)
    assert missing.returncode == 2 and "has no alias @nope" in missing.stdout + missing.stderr

    by_dir = run_cli("mode=eval", f"eval.sweep={sweep}", "eval.plots=false", cwd=tmp_path)
    assert by_dir.returncode == 0, by_dir.stderr[-3000:]
    assert _verdict(by_dir.stdout) == verdict, "the same candles, seed and draws: the same verdict"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tag = str(sweep.relative_to(tmp_path))  # a sweep's runs are tagged with its multirun dir
    by_tag = run_cli(
        "mode=eval",
        f"eval.sweep={tag}",
        f"paths.mlruns={tmp_path / 'mlruns'}",
        "eval.plots=false",
        cwd=elsewhere,
    )
    assert by_tag.returncode == 0, by_tag.stderr[-3000:]
    assert _verdict(by_tag.stdout) == verdict


def test_a_sweep_that_is_not_there_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("mode=eval", "eval.sweep=multirun/nope", "tracking=off", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "eval.sweep=multirun/nope is neither a multirun folder nor the sweep tag" in result.stderr
