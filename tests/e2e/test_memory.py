"""model=memory through the real entry point: trained on history, grown live against the emulator
through a SIGKILL and a restart, and replayed by mode=eval to the very same predictions."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from forecaster.candles import MINUTE_MS
from forecaster.models.pattern_memory import MEMORY_FILE
from forecaster.recording import read_jsonl
from forecaster.tracking import default_uri
from tests.conftest import emulator_process, run_cli
from tests.e2e.test_live import _keys
from tests.e2e.test_live_reliability import _live, _predicted, _until

TRAIN_END = "2024-12-04"  # the emulator serves the days after it: live candles the memory never saw
SAVE_EVERY = 10


@pytest.fixture(scope="module")
def trained_memory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("memory")
    run_dir = home / "train"
    trained = run_cli(
        "mode=train", "source=replay", "model=memory", f"data.end={TRAIN_END}", "train.yardstick=false",
        "tracking=off", f"hydra.run.dir={run_dir}", cwd=home,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "memory: " in trained.stderr and "windows of 19 features" in trained.stderr
    return run_dir / "model"


def _stored_ts(folder: Path) -> np.ndarray:
    with np.load(folder / MEMORY_FILE, allow_pickle=False) as saved:
        return saved["candle_ts"]


def test_memory_grows_live_through_a_sigkill_and_eval_replays_it_exactly(
    tmp_path: Path, trained_memory: Path
) -> None:
    run_dir = tmp_path / "run"
    trained = _stored_ts(trained_memory)
    common = (
        "model=memory",
        f"model.path={trained_memory}",
        f"model.save_every={SAVE_EVERY}",
        "tracking=off",
    )
    with emulator_process("--now", f"{TRAIN_END}T00:00:00Z") as emulator:
        proc = _live(tmp_path, run_dir, *emulator, *common)
        _until(lambda: _predicted(run_dir) >= 2 * SAVE_EVERY + 5, proc, tmp_path)
        proc.kill()
        proc.wait()
        saved = _stored_ts(run_dir / "memory")
        killed = _keys(run_dir / "candles.jsonl", "ts_start")
        assert saved[-1] < killed[-2], "the kill came after windows the last save lacks"
        again = run_cli(  # with MLflow this time: the grown memory and its size are logged
            "mode=live", *emulator, *common[:-1], "live.max_candles=15", "live.metrics_every=5",
            f"hydra.run.dir={run_dir}", cwd=tmp_path,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the memory this run dir grew" in again.stderr
    client = MlflowClient(default_uri(str(tmp_path / "mlruns")))
    (run,) = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "memory")}
    assert logged == {"memory/memory.npz", "memory/model.json"}
    assert run.data.metrics["memory_windows"] > len(_stored_ts(trained_memory))

    candles = read_jsonl(run_dir / "candles.jsonl", "ts_start").records
    grown = _stored_ts(run_dir / "memory")
    assert np.all(np.diff(grown) > 0), "no window stored twice"
    assert np.array_equal(grown[: len(trained)], trained)
    live = grown[grown > trained[-1]]
    # every recorded candle but the last has its window stored once the next one settled it, unless
    # that next candle did not move (train.zero_moves=drop leaves those out, as in training)
    moved = [a["ts_start"] for a, b in itertools.pairwise(candles) if a["c"] != b["c"]]
    assert set(moved) <= set(live.tolist())
    assert all(b["ts_start"] - a["ts_start"] == MINUTE_MS for a, b in itertools.pairwise(candles))

    first = candles[0]["ts_start"]
    replay = tmp_path / "eval"
    judged = run_cli(
        "mode=eval", "source=replay", *common, f"data.start={first - MINUTE_MS}",
        f"data.end={candles[-1]['ts_start'] + MINUTE_MS}", "eval.plots=false", f"hydra.run.dir={replay}",
        cwd=tmp_path,
    )  # fmt: skip
    assert judged.returncode == 0, judged.stderr[-2000:]
    recorded = {r["candle_ts"]: r for r in read_jsonl(run_dir / "predictions.jsonl", "candle_ts").records}
    replayed = {r["candle_ts"]: r for r in read_jsonl(replay / "predictions.jsonl", "candle_ts").records}
    assert len(recorded) == len(candles) and set(recorded) <= set(replayed)
    for ts, record in recorded.items():
        for key in ("p_up", "p_down", "spread", "direction"):
            assert replayed[ts][key] == record[key], (ts, key)
