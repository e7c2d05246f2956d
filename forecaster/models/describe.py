"""A trained model in words, from its card: the line logged when its weights load, and the tags and
description of its registered MLflow version.

One module, so that the log, the registry and the MLflow UI state the same facts the same way.
Pure functions of the card (and, for the registry, train's paired tests): testable without MLflow.
Light at import (no JAX, no MLflow).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from forecaster.evaluation.report import accuracy_interval, paired_line
from forecaster.evaluation.sections import MODEL, PERSISTENCE, VS_PERSISTENCE, Paired
from forecaster.evaluation.statistics import wilson_interval
from forecaster.models.card import CandleRange, ModelCard

BLOCKS = {"val": "validation", "test": "test"}  # the card's score blocks, as train names them
# the scores of a block that a registered version carries as tags: `<block>.<score>`
HEADLINE_SCORES = ("decided_accuracy", "decided", "n", "flat_share", "log_loss_up", "log_loss_down")
COUNTS = ("decided", "n")  # means per fold, shown rounded to whole rows
SCORE_DIGITS = 4  # decimals of a score (log loss, shares) in tags and descriptions
SHA_SHOWN = 8  # leading hex digits of the weights' sha256 in a log line


def utc_minute(ms: int) -> str:
    """Epoch milliseconds -> '2024-12-01T00:00Z'."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def span(candles: CandleRange) -> str:
    """The first and last candle's start, ISO UTC: '2024-12-01T00:00Z..2024-12-20T23:59Z'."""
    return f"{utc_minute(candles.first_candle_ts)}..{utc_minute(candles.last_candle_ts)}"


def decided_accuracy(scores: Mapping[str, Any] | None) -> str | None:
    """'51.2% [49.1%, 53.3%] on 1234 decided calls', from a card's scores of one predictor; None if
    nothing was decided. With several folds the card holds means per fold, and so does this."""
    if not scores or scores.get("decided_accuracy") is None or not scores.get("decided"):
        return None
    decided = round(scores["decided"])
    accuracy = scores["decided_accuracy"]
    low, high = wilson_interval(round(accuracy * decided), decided)
    return f"{accuracy_interval(accuracy, low, high)} on {decided} decided calls"


def loaded_line(card: ModelCard, where: str | os.PathLike[str]) -> str:
    """The one line that says which weights a run uses: what they are, trained on what, how good."""
    facts = []
    if card.data_range is not None:
        facts.append(f"history {span(card.data_range)}")
    facts += [value for value in (card.symbol, card.timeframe) if value]
    if card.feature_set:
        facts.append(f"{card.feature_set} features")
    if (accuracy := decided_accuracy((card.val or {}).get(MODEL))) is not None:
        facts.append(f"validation decided accuracy {accuracy}")
    if card.calibration is not None:
        facts.append(f"calibrated ({card.calibration.describe()})")
    if card.weights_sha256:
        facts.append(f"sha256 {card.weights_sha256[:SHA_SHOWN]}")
    trained = "" if card.trained else "untrained "
    return f"loaded {trained}{card.spec.name} weights from {where} ({', '.join(facts)})"


def version_tags(card: ModelCard, paired: Mapping[str, Paired]) -> dict[str, str]:
    """What a registered version is and how it scored, as MLflow tags (strings) to filter and sort on.

    `paired` holds train's model-vs-persistence test per block ("val", "test").
    """
    tags = {
        "model": card.spec.name,
        "feature_set": card.feature_set,
        "feature_fingerprint": card.feature_fingerprint,
        "timeframe": card.timeframe,
        "symbol": card.symbol,
        "code_version": card.code_version,
        "weights_sha256": card.weights_sha256,
        "threshold_bps": None if card.threshold_bps is None else f"{card.threshold_bps:g}",
        "data_first": None if card.data_range is None else utc_minute(card.data_range.first_candle_ts),
        "data_last": None if card.data_range is None else utc_minute(card.data_range.last_candle_ts),
        "test_range": None if card.test_range is None else span(card.test_range),
        "calibration": None if card.calibration is None else card.calibration.describe(),
    }
    for block in BLOCKS:
        scores = (getattr(card, block) or {}).get(MODEL, {})
        for name in HEADLINE_SCORES:
            value = scores.get(name)
            if value is not None:
                tags[f"{block}.{name}"] = str(round(value)) if name in COUNTS else f"{value:.{SCORE_DIGITS}f}"
        test = paired.get(block)
        p_value = None if test is None else test.p_value
        tags[f"{block}.p_vs_persistence"] = None if p_value is None else f"{p_value:.3g}"
    return {key: value for key, value in tags.items() if value is not None}


def version_description(card: ModelCard, paired: Mapping[str, Paired]) -> str:
    """A few lines for the registry's page: the model, its data, its validation and test figures with
    n and interval, and the paired test against persistence (the bar, not 50 %)."""
    spec = card.spec
    shape = "x".join(map(str, spec.hidden)) or "no hidden layer"
    lines = [
        f"{spec.name} ({shape}, {spec.members} member(s)) on {card.symbol or '?'} {card.timeframe or '?'} "
        f"candles, {card.feature_set or '?'} features ({spec.n_features}); history (train | validation "
        f"| test) {span(card.data_range) if card.data_range else 'unrecorded'}; "
        f"code {card.code_version or '?'}, weights sha256 {card.weights_sha256 or '?'}; calibration "
        f"{'none' if card.calibration is None else card.calibration.describe()}."
    ]
    for block, title in BLOCKS.items():
        scores = getattr(card, block) or {}
        model, bar = scores.get(MODEL), scores.get(PERSISTENCE)
        if model is None:
            continue
        where = f", last fold {span(card.test_range)}" if block == "test" and card.test_range else ""
        line = f"{title} (mean per fold{where}): decided accuracy {decided_accuracy(model) or 'undefined'}"
        if (share := model.get("flat_share")) is not None:
            line += f", FLAT {share:.1%} of {round(model['n'])}"
        if (up := model.get("log_loss_up")) is not None and (down := model.get("log_loss_down")) is not None:
            line += f", log loss up {up:.{SCORE_DIGITS}f} down {down:.{SCORE_DIGITS}f}"
        if (baseline := decided_accuracy(bar)) is not None:
            line += f"; persistence {baseline}"
        lines.append(line)
        if (test := paired.get(block)) is not None:
            lines.append(f"{title}, pooled over folds: {paired_line(VS_PERSISTENCE, test)}")
    return "\n".join(lines)
