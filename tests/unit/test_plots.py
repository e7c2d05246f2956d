"""Each plot writes a non-empty PNG, on ordinary data and on empty or all-FLAT data, without warnings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from forecaster.config import FlatConfig
from forecaster.direction import actual_directions
from forecaster.evaluation import plots
from forecaster.evaluation.evaluate import evaluate
from forecaster.evaluation.sections import EvaluationSet, JoinReport
from forecaster.flat import directions

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START_MS = 1_700_000_000_000
MINUTE_MS = 60_000


def _case(n: int, all_flat: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    p_up = rng.uniform(0, 1, n)
    p_down = np.clip(1 - p_up + rng.normal(0, 0.05, n), 0, 1)
    ret = rng.normal(0, 1, n) * (rng.uniform(size=n) > 0.1)
    predicted = np.full(n, "FLAT") if all_flat else directions(p_up, p_down, FlatConfig())
    return {
        "candle_ts": START_MS + MINUTE_MS * np.arange(n, dtype=np.int64),
        "predicted": predicted,
        "actual": actual_directions(ret),
        "p_up": p_up,
        "p_down": p_down,
        "y_up": (ret > 0).astype(float),
        "y_down": (ret < 0).astype(float),
    }


@pytest.mark.parametrize(("n", "all_flat"), [(300, False), (0, False), (40, True), (1, False)])
def test_every_plot_writes_a_png(tmp_path: Path, n: int, all_flat: bool) -> None:
    case = _case(n, all_flat)
    ts = case.pop("candle_ts")
    result = evaluate(**case, rules=[FlatConfig("balanced", 0.55, 0.05)])
    paths = plots.write_all(
        result, ts, case["predicted"], case["actual"], tmp_path / "plots", "model_", "model"
    )
    assert [p.name for p in paths] == [
        "model_confusion.png",
        "model_reliability.png",
        "model_coverage.png",
        "model_cumulative_accuracy.png",
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > len(PNG_MAGIC)


def test_coverage_plot_when_nothing_is_ever_decided(tmp_path: Path) -> None:
    n = 5  # all ties: no threshold decides anything
    case = _case(n)
    case.pop("candle_ts")
    case.update(p_up=np.full(n, 0.5), p_down=np.full(n, 0.5), predicted=np.full(n, "FLAT"))
    path = plots.coverage(evaluate(**case).coverage, tmp_path / "coverage.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_plot_all_for_eval(tmp_path: Path) -> None:
    """eval's entry: model plots from a joined set (re-decided with a rule) and baseline confusions."""
    case = _case(200)
    joined = SimpleNamespace(**case, spread=None)
    ts = case.pop("candle_ts")
    assert len(ts) == 200
    results = EvaluationSet(
        JoinReport(matched=200),
        {"model": evaluate(**case), "majority": evaluate(np.full(200, "UP"), *list(case.values())[1:])},
    )
    paths = plots.plot_all(joined, results, tmp_path, FlatConfig("strict", 0.6, 0.1))
    assert sorted(p.name for p in paths) == [
        "confusion.png",
        "coverage.png",
        "cumulative_accuracy.png",
        "majority_confusion.png",
        "reliability.png",
    ]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths)
