"""Multi-file datasets: source.path lists and globs, segments no window spans, labels per row,
splits cut by time (explicit test blocks, overlapping files), train.zero_moves, per-venue figures."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest

from forecaster.candles import MINUTE_MS, CandleArray, CandleError, concat_candles
from forecaster.checks import Status
from forecaster.config import ZERO_MOVES, DataConfig, PathsConfig
from forecaster.errors import ConfigError, UserError
from forecaster.evaluation.outcomes import Outcomes
from forecaster.features.basic import BasicFeatures
from forecaster.history import chosen_test_block
from forecaster.sources.base import LabelledHistory
from forecaster.sources.files import candle_files, file_label
from forecaster.sources.replay import ReplaySource
from forecaster.training.dataset import Dataset, make_dataset
from forecaster.training.segments import make_datasets
from forecaster.training.splits import SplitError, Timeline, walk_forward
from forecaster.training.targets import TRAINING_TARGETS, training_rows
from forecaster.training.venues import venue_figures
from tests.unit.test_training import planted_candles

FEATURES = BasicFeatures(n_returns=8, volume_window=20)
N = 600


def shifted(candles: CandleArray, minutes: int) -> CandleArray:
    return CandleArray(
        candles.start_ms + minutes * MINUTE_MS,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
        candles.turnover,
    )


def write_csv(path: Path, candles: CandleArray) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("start_ms,open,high,low,close,volume,turnover\n")
        for c in candles.to_candles():
            handle.write(f"{c.start_ms},{c.open!r},{c.high!r},{c.low!r},{c.close!r},{c.volume!r},\n")
    return path


def history(label: str, candles: CandleArray) -> LabelledHistory:
    return LabelledHistory(label, candles)


# --- source.path -------------------------------------------------------------------------------------


def test_path_takes_a_file_a_list_or_a_glob(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "btc_venue-a.csv.gz", planted_candles(N))
    b = write_csv(tmp_path / "btc_venue-b.csv.gz", shifted(planted_candles(N, seed=1), N))
    assert candle_files(str(a)) == [a]
    assert candle_files([str(b), str(a)]) == [b, a]
    assert candle_files(str(tmp_path / "*.csv.gz")) == [a, b]
    assert file_label(a) == "btc_venue-a" and file_label(Path("x/candles.jsonl")) == "candles"
    source = ReplaySource(path=str(tmp_path / "btc_*.csv.gz"))
    labelled = source.histories("1m", None, None, 1.0, None)  # type: ignore[arg-type]
    assert [h.label for h in labelled] == ["btc_venue-a", "btc_venue-b"]
    assert [len(h.candles) for h in labelled] == [N, N]
    assert len(source.history("1m", None, None, 1.0, None)) == 2 * N  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nowhere/*.csv.gz", "no file matches"),
        ([], "give a file, a glob or a list"),
        (["a.csv", "a.csv"], "names a.csv twice"),
    ],
)
def test_bad_paths_are_one_line(path: str | list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        candle_files(path)
    assert "\n" not in str(caught.value)


def test_overlapping_files_cannot_be_one_series(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv.gz", planted_candles(N))
    write_csv(tmp_path / "b.csv.gz", shifted(planted_candles(N), N // 2))
    source = ReplaySource(path=str(tmp_path / "*.csv.gz"))
    with pytest.raises(CandleError, match="overlap in time"):
        source.history("1m", None, None, 1.0, None)  # type: ignore[arg-type]
    assert len(source.histories("1m", None, None, 1.0, None)) == 2  # type: ignore[arg-type]


def test_dryrun_check_reads_the_files_through(tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv.gz", planted_candles(N))
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    present = ReplaySource(path=str(good)).checks(PathsConfig(), False)[0]
    assert (present.name, present.status) == ("replay data present", Status.OK)
    present = ReplaySource(path=[str(good), str(cut)]).checks(PathsConfig(), False)[0]
    assert present.status == Status.FAIL and "cut.csv.gz is truncated or corrupt" in present.detail


# --- segments ----------------------------------------------------------------------------------------


def test_no_window_spans_two_files() -> None:
    """Two files that follow each other minute for minute are still two segments."""
    first, second = planted_candles(N), shifted(planted_candles(N, seed=1), N)
    data = make_datasets([history("a", first), history("b", second)], FEATURES, 0.0)
    joined = make_dataset(concat_candles([first, second], "1m"), FEATURES, 0.0)
    assert len(joined) - len(data) == FEATURES.window  # the windows that would straddle the seam
    per_file = [make_dataset(c, FEATURES, 0.0) for c in (first, second)]
    assert len(data) == sum(map(len, per_file))
    assert np.array_equal(data.X, np.concatenate([p.X for p in per_file]))
    assert set(data.label[: len(per_file[0])]) == {"a"} and set(data.label[len(per_file[0]) :]) == {"b"}
    seam = N * MINUTE_MS  # second's first candle: no row of it until its own window is full
    assert not (
        (data.candle_ts >= seam - MINUTE_MS) & (data.candle_ts < seam + (FEATURES.window - 1) * MINUTE_MS)
    ).any()


def test_gaps_inside_a_file_are_segments(caplog: pytest.LogCaptureFixture) -> None:
    candles = planted_candles(N)
    keep = np.ones(N, bool)
    keep[300] = False
    with caplog.at_level("INFO"):
        data = make_datasets([history("a", candles[keep])], FEATURES, 0.0)
    assert len(data) == len(make_dataset(candles[keep], FEATURES, 0.0))
    segment_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("segment a ")]
    assert len(segment_lines) == 2 and "300 candles" in segment_lines[0]
    assert any("in 2 segment(s) of 1 file(s)" in r.getMessage() for r in caplog.records)


def test_overlapping_files_stay_apart_in_time_order() -> None:
    a, b = planted_candles(N), shifted(planted_candles(N, seed=1), N // 2)
    data = make_datasets([history("a", a), history("b", b)], FEATURES, 0.0)
    assert np.all(np.diff(data.candle_ts) >= 0)
    both = data.candle_ts[data.label == "a"]
    assert len(both) == len(make_dataset(a, FEATURES, 0.0))
    shared = np.intersect1d(data.candle_ts[data.label == "a"], data.candle_ts[data.label == "b"])
    assert len(shared) > 0, "a minute in two files gives a row in each"


# --- splits by time ----------------------------------------------------------------------------------


def overlapping() -> Dataset:
    a, b = planted_candles(3000), shifted(planted_candles(3000, seed=1), 1500)
    return make_datasets([history("a", a), history("b", b)], FEATURES, 0.0)


def assert_leak_free(data: Dataset, splits: list, embargo: int) -> None:
    """Every row of an earlier block lies `embargo` intervals before the first row of the next one."""
    for s in splits:
        parts = [data.candle_ts[p] for p in (s.train, s.val, s.test)]
        for before, after in itertools.pairwise(parts):
            assert before.max() < after.min() - embargo * MINUTE_MS + MINUTE_MS


def test_splits_by_time_never_leak_across_overlapping_files() -> None:
    data = overlapping()
    embargo = FEATURES.window
    timeline = Timeline(data.candle_ts, MINUTE_MS)
    splits = walk_forward(len(data), 3, 0.1, 0.1, embargo, timeline)
    assert_leak_free(data, splits, embargo)
    by_rows = walk_forward(len(data), 3, 0.1, 0.1, embargo)
    with pytest.raises(AssertionError):  # rows alone: the embargo halves where two files overlap
        assert_leak_free(data, by_rows, embargo)
    for s in splits:  # a candle time is never split between blocks
        assert data.candle_ts[s.test.start - 1] < data.candle_ts[s.test.start]


def test_one_file_splits_as_before() -> None:
    data = make_dataset(planted_candles(3000), FEATURES, 0.0)
    timeline = Timeline(data.candle_ts, MINUTE_MS)
    assert walk_forward(len(data), 2, 0.15, 0.15, 9, timeline) == walk_forward(len(data), 2, 0.15, 0.15, 9)


def test_an_explicit_test_block() -> None:
    data = overlapping()
    timeline = Timeline(data.candle_ts, MINUTE_MS)
    start, end = 2000 * MINUTE_MS, 2600 * MINUTE_MS
    splits = walk_forward(len(data), 2, 0.1, 0.1, FEATURES.window, timeline, timeline.block(start, end))
    tested = np.concatenate([data.candle_ts[s.test] for s in splits])
    assert tested.min() == start and tested.max() < end
    assert splits[0].test.stop == splits[1].test.start
    assert_leak_free(data, splits, FEATURES.window)
    with pytest.raises(SplitError, match="no rows in the test block"):
        timeline.block(10**13, None)
    with pytest.raises(SplitError, match="no training rows"):
        walk_forward(len(data), 1, 0.1, 0.1, FEATURES.window, timeline, timeline.block(0, 100 * MINUTE_MS))


def test_explicit_test_block_parsing() -> None:
    assert chosen_test_block(DataConfig()) is None
    assert chosen_test_block(DataConfig(test_start="2025-01-02")) == (1735776000000, None)
    assert chosen_test_block(DataConfig(test_start="1735776000000", test_end="2025-01-03")) == (
        1735776000000,
        1735862400000,
    )
    for bad, message in [
        (DataConfig(test_end="2025-01-03"), "needs data.test_start"),
        (DataConfig(test_start="2025-01-03", test_end="2025-01-02"), "must be after"),
        (DataConfig(test_start="soon"), "data.test_start"),
    ]:
        with pytest.raises(UserError, match=message):
            chosen_test_block(bad)


# --- zero moves --------------------------------------------------------------------------------------


def test_zero_moves_options() -> None:
    assert set(TRAINING_TARGETS) == set(ZERO_MOVES)
    ret = np.array([0.0, 2e-4, -2e-4, 5e-5, 0.0])
    y = np.stack([ret > 0, ret < 0], axis=1).astype(np.float32)
    rows = Dataset(np.zeros((5, 1)), y, np.arange(5, dtype=np.int64), ret, np.full(5, "a"))
    assert training_rows(rows, "flat", 0.0) is rows
    assert training_rows(rows, "drop", 0.0).next_ret.tolist() == [2e-4, -2e-4, 5e-5]
    down = training_rows(rows, "down", 0.0)
    assert down.y[:, 1].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0] and np.array_equal(down.y[:, 0], y[:, 0])
    assert training_rows(rows, "threshold", 1.0).next_ret.tolist() == [2e-4, -2e-4]
    assert len(training_rows(rows, "threshold", 0.0)) == len(training_rows(rows, "drop", 0.0))


# --- per venue ---------------------------------------------------------------------------------------


def test_venue_figures_split_the_test_rows_by_label() -> None:
    up, down = np.full(4, "UP"), np.full(4, "DOWN")
    ret = np.array([1e-3, 1e-3, -1e-3, 0.0])
    block = Outcomes.of_block(0, "test", np.arange(4), (np.zeros(4), np.zeros(4)), up, ret, down)
    labels = np.array(["a", "a", "b", "b"])
    figures = venue_figures([(block, labels)])
    assert set(figures) == {"a", "b"}
    a, b = figures["a"].to_json(), figures["b"].to_json()
    assert a["n"] == 2 and a["decided_accuracy"] == 1.0 and a["model_vs_persistence"]["only_first"] == 2
    assert b["decided_accuracy"] == 0.0, "a call against a zero move is a miss"
    assert 0 <= a["wilson_low"] < a["wilson_high"] <= 1
    assert venue_figures([(block, np.full(4, "a"))]) == {}


# --- real data ---------------------------------------------------------------------------------------


def test_all_shared_files_make_one_leak_free_dataset(shared_data: Path) -> None:
    source = ReplaySource(path=str(shared_data / "*.csv.gz"))
    histories = source.histories("5m", None, None, 1.0, None)  # type: ignore[arg-type]
    assert len(histories) == len(list(shared_data.glob("*.csv.gz")))
    data = make_datasets(histories, FEATURES, 0.0)
    assert len(set(data.label.tolist())) == len(histories) and np.all(np.diff(data.candle_ts) >= 0)
    timeline = Timeline(data.candle_ts, 5 * MINUTE_MS)
    embargo = FEATURES.window
    assert_leak_free(data, walk_forward(len(data), 3, 0.1, 0.1, embargo, timeline), embargo)
    block = timeline.block(1735689600000, None)  # 2025-01-01 onwards: two venues in the test block
    (only,) = walk_forward(len(data), 1, 0.1, 0.1, embargo, timeline, block)
    assert len(set(data.label[only.test].tolist())) == 2
