"""The real entry point in a subprocess: every bad input is one clear line and exit code 2, fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli, truncated_sample

GROUPS = ("mode", "source", "features", "model", "flat", "timeframe", "sink", "tracking", "paths")


def test_validation_does_not_import_jax() -> None:
    """Parts are light to build: a bad command line is refused before JAX (and the GPU probe) load."""
    code = (
        "import sys; from forecaster.config import compose_config; "
        "models = ('twohead', 'logreg', 'ensemble', 'persistence'); "
        "[compose_config([f'model={m}', 'mode=train']) for m in models]; "
        "assert 'jax' not in sys.modules and 'mlflow' not in sys.modules and 'aiohttp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


BAD_INPUTS = [
    (["flat.min_prob=1.5"], "flat.min_prob", "<= 1"),
    (["timeframe=7m"], "timeframe=7m", "1m, 5m"),
    (["source.ping_interval_s=-1"], "source.ping_interval_s", "> 0"),
    (["source.max_backoff_s=0"], "source.max_backoff_s", "> 0"),
    (["flat.min_prb=0.3"], "flat.min_prb", "min_prob"),
    (["+flat.min_prb=0.3"], "flat.min_prb", "min_prob"),
    (["+typo=1"], "typo", "allowed keys"),
    (["seed=abc"], "seed", "Integer"),
    (["seed=-1"], "seed", ">= 0"),
    (["model=huge"], "model=huge", "twohead"),
    (["model.activation=swish"], "model.activation", "relu"),
    (["model.dropout=1"], "model.dropout", "< 1"),
    (["live.max_candles=0"], "live.max_candles", ">= 1"),
    (["mode.check_network=maybe"], "mode.check_network", "bool"),
    (["model.path=a", "model.uri=b"], "model.path", "only one"),
    (["-m", "flat=strict,nope"], "flat=nope", "balanced"),
    (["live.predictors=[{modle: twohead}]"], "'modle' in a PredictorEntry", "model, timeframe"),
    (["-m", "train.learning_rate=interval(0.001,0.01)"], "train.learning_rate", "hparams_search"),
    (["-m", "flat.min_prob=0.5,2"], "flat.min_prob", "<= 1"),
    (["train.epochs=1e12"], "train.epochs", "Integer"),
    (["train.epochs=1000000000000"], "train.epochs", "<= 100000"),
    (["-m", "hparams_search=twohead_optuna", "hydra.sweeper.n_trials=0"], "n_trials=0", "1 or more"),
    (["model.hidden=[0]"], "model.hidden=[0]", ">= 1 for each entry"),
    (["model.hidden=[]"], "model=twohead with model.hidden=[] has no hidden layer", "model=logreg"),
    (["train.val_fraction=0.5", "train.test_fraction=0.5"], "train.val_fraction=0.5", "below 1"),
    (["seed=0,1"], "seed=0,1", "add -m"),
    (["model.hidden=[1,"], "model.hidden=[1,", "override_grammar"),
    (["seed=1", "-m", "seed=2"], "unrecognized arguments: seed=2", "before all the overrides"),
    (["m\u00f3del=twohead"], "LATIN SMALL LETTER O WITH ACUTE", "keys are plain ASCII"),
    (["model.hidden=[\uff13\uff12]"], "FULLWIDTH DIGIT THREE", "did you mean model.hidden=[32]"),
    (["seed=\uff10"], "FULLWIDTH DIGIT ZERO", "did you mean seed=0"),
]


@pytest.mark.parametrize(("args", "key", "allowed"), BAD_INPUTS, ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, args: list[str], key: str, allowed: str
) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0] and allowed in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists(), "work started"


TRUNCATED_RUNS = {
    "train": ["mode=train"],
    "live": ["mode=live", "model=persistence"],
    "eval": ["mode=eval", "model=persistence", "data.start=2024-12-01"],
}


@pytest.mark.parametrize("mode", TRUNCATED_RUNS)
def test_truncated_candle_file_is_one_line(tmp_path: Path, mode: str) -> None:
    data = truncated_sample(tmp_path)
    result = run_cli(
        *TRUNCATED_RUNS[mode], "source=replay", f"source.path={data}", "tracking=off", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"{data} is truncated or corrupt" in errors[0], result.stderr
    assert "copy it again" in errors[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_help_explains_the_groups(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for group in GROUPS:
        assert f"{group}:" in result.stdout


def test_a_reader_that_goes_away_is_no_traceback(tmp_path: Path) -> None:
    """`python -m forecaster ... | head -1`: the rest of the output has nowhere to go; stop quietly."""
    command = [sys.executable, "-m", "forecaster", "mode=dryrun", "tracking=off"]
    with subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("backend=")
        proc.stdout.close()
        stderr = proc.stderr.read()
    assert proc.returncode in (0, 141) and "Traceback" not in stderr, stderr
