"""A trained model in words: the load line, and the tags and description of its registered version."""

from __future__ import annotations

from dataclasses import replace

from forecaster.calibration import Calibration, TemperatureMap
from forecaster.evaluation.sections import Paired
from forecaster.models.card import CandleRange, ModelCard
from forecaster.models.describe import loaded_line, version_description, version_tags
from forecaster.models.spec import ModelSpec

DAY_MS = 86_400_000
FIRST = 1_733_011_200_000  # 2024-12-01T00:00Z
SCORES = {
    "model": {
        "n": 1000.0,
        "decided": 400.0,
        "decided_accuracy": 0.55,
        "flat_share": 0.6,
        "log_loss_up": 0.69123,
        "log_loss_down": 0.69456,
    },
    "persistence": {"n": 1000.0, "decided": 990.0, "decided_accuracy": 0.5},
}
CARD = ModelCard(
    spec=ModelSpec("twohead", 19, (64, 64)),
    trained=True,
    feature_set="basic",
    feature_fingerprint="abc123",
    timeframe="1m",
    threshold_bps=0.0,
    data_range=CandleRange(FIRST, FIRST + 20 * DAY_MS - 60_000),
    symbol="BTCUSDT",
    val=SCORES,
    test=SCORES,
    test_range=CandleRange(FIRST + 17 * DAY_MS, FIRST + 20 * DAY_MS - 60_000),
    code_version="0.1.0",
    weights_sha256="abcd1234" * 8,
)
PAIRED = {
    "val": Paired(n=390, hits=215, other_hits=195, only_first=60, only_other=40, p_value=0.0284),
    "test": Paired(n=380, hits=200, other_hits=200, only_first=50, only_other=50, p_value=0.54),
}


def test_a_registered_version_is_tagged_with_its_data_and_headline_figures() -> None:
    tags = version_tags(CARD, PAIRED)
    assert tags["model"] == "twohead" and tags["feature_set"] == "basic" and tags["timeframe"] == "1m"
    assert tags["data_first"] == "2024-12-01T00:00Z" and tags["data_last"] == "2024-12-20T23:59Z"
    assert tags["symbol"] == "BTCUSDT" and tags["code_version"] == "0.1.0"
    assert (
        tags["val.decided_accuracy"] == "0.5500" and tags["val.decided"] == "400" and tags["val.n"] == "1000"
    )
    assert tags["test.flat_share"] == "0.6000" and tags["test.log_loss_up"] == "0.6912"
    assert tags["val.p_vs_persistence"] == "0.0284" and tags["test.p_vs_persistence"] == "0.54"
    assert all(isinstance(value, str) for value in tags.values())


def test_a_card_without_scores_gives_only_what_it_knows() -> None:
    bare = ModelCard(spec=ModelSpec("logreg", 19, ()))
    assert version_tags(bare, {}) == {"model": "logreg"}
    assert loaded_line(bare, "/m") == "loaded untrained logreg weights from /m ()"
    assert version_description(bare, {}).startswith("logreg (no hidden layer, 1 member(s)) on ? ? candles")


def test_the_description_gives_each_block_with_n_interval_and_the_bar() -> None:
    text = version_description(CARD, PAIRED)
    lines = text.splitlines()
    assert lines[0].startswith("twohead (64x64, 1 member(s)) on BTCUSDT 1m candles, basic features (19)")
    assert "2024-12-01T00:00Z..2024-12-20T23:59Z" in lines[0]
    assert lines[1].startswith("validation (mean per fold): decided accuracy 55.0% [")
    assert "on 400 decided calls, FLAT 60.0% of 1000" in lines[1] and "; persistence 50.0% [" in lines[1]
    assert "model vs persistence on the 390 candles both decide" in lines[2] and "p=0.0284" in lines[2]
    assert lines[3].startswith("test (mean per fold, last fold 2024-12-18T00:00Z..2024-12-20T23:59Z)")
    assert len(lines) == 5


def test_the_load_line_says_what_was_loaded() -> None:
    line = loaded_line(CARD, "/runs/x/model")
    assert line.startswith("loaded twohead weights from /runs/x/model (history 2024-12-01T00:00Z..")
    assert "BTCUSDT, 1m, basic features, validation decided accuracy 55.0% [" in line
    assert line.endswith("on 400 decided calls, sha256 abcd1234)")


def test_a_calibrated_card_says_how_in_tags_description_and_load_line() -> None:
    calibrated = replace(CARD, calibration=Calibration(TemperatureMap(1.5), TemperatureMap(2.0)))
    words = "p_up: temperature 1.5; p_down: temperature 2"
    assert version_tags(calibrated, PAIRED)["calibration"] == words
    assert f"calibration {words}." in version_description(calibrated, PAIRED).splitlines()[0]
    assert f"calibrated ({words})" in loaded_line(calibrated, "/weights")
    assert "calibration none." in version_description(CARD, PAIRED).splitlines()[0]
