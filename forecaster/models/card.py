"""The ModelCard: what a saved model is, how it was trained and on what; everything but the weights.

Written and read here only (`ModelCard.to_json` / `from_json`) as `<dir>/model.json`; the format
is versioned, and format-1 sidecars (before the card) still load. Light at import (no JAX), so
modes can build a card without loading the network code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from forecaster.calibration import Calibration
from forecaster.errors import UserError
from forecaster.models.normalisation import Standardizer
from forecaster.models.spec import ModelSpec

SIDECAR_FILE = "model.json"  # the card, beside the weights
CARD_FORMAT = 2
# Format 1: the spec, trained and weights_sha256, plus the metadata dict of mode=train, no ensemble key.
LEGACY_FORMAT = 1
LEGACY_ENSEMBLE_NAME = "ensemble"  # format 1 stacked members for this model name even with one member
SHA_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class CandleRange:
    """The start times of the first and the last candle of a span of history."""

    first_candle_ts: int
    last_candle_ts: int

    def to_json(self) -> dict[str, int]:
        return {"first_candle_ts": self.first_candle_ts, "last_candle_ts": self.last_candle_ts}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CandleRange:
        return cls(int(data["first_candle_ts"]), int(data["last_candle_ts"]))


@dataclass(frozen=True)
class ModelCard:
    """What a saved model is, how it was trained and on what: everything but the weights.

    Only `spec` and `trained` are always set; the rest is None where the saver did not say
    (e.g. an untrained model saved by a benchmark). `weights_sha256` is set by `save`.
    """

    spec: ModelSpec
    trained: bool = False
    feature_set: str | None = None
    feature_fingerprint: str | None = None
    feature_names: tuple[str, ...] | None = None
    timeframe: str | None = None
    threshold_bps: float | None = None
    normalisation: Standardizer | None = None
    calibration: Calibration | None = None  # fitted on the last fold's validation rows; None: uncalibrated
    # every percentile of |p_up - p_down| on the last fold's validation rows: flat=coverage's margin
    margin_quantiles: tuple[float, ...] | None = None
    data_range: CandleRange | None = None
    symbol: str | None = None
    best_epoch: int | None = None
    val: Mapping[str, Any] | None = None  # mean validation scores over folds, as in metrics.json
    test: Mapping[str, Any] | None = None  # mean test scores over folds, as in metrics.json
    test_range: CandleRange | None = None  # the last fold's test block: mode=eval replays it by default
    last_fold_test: Mapping[str, Any] | None = None
    code_version: str | None = None
    weights_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The card as model.json holds it: the spec's keys at the top level, as format 1 had them."""
        data: dict[str, Any] = {"format": CARD_FORMAT, **self.spec.to_dict()}
        for f in fields(self)[1:]:  # after `spec`, whose keys are already there
            value = getattr(self, f.name)
            if isinstance(value, Standardizer):
                value = value.to_dict()
            elif isinstance(value, CandleRange | Calibration):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelCard:
        """A card from model.json of format 2 or 1; unknown keys are ignored.

        Raises UserError, or TypeError/ValueError/KeyError for malformed values (load words those).
        """
        if data.get("format") == LEGACY_FORMAT:
            # Format 1 had no ensemble key: an "ensemble" model was stacked even with one member.
            data = {**data, "ensemble": data.get("name") == LEGACY_ENSEMBLE_NAME}
        values: dict[str, Any] = {"spec": ModelSpec.from_dict(data)}
        for f in fields(cls)[1:]:  # after `spec`
            value = data.get(f.name)
            if value is not None:
                values[f.name] = _PARSERS.get(f.name, _identity)(value)
        return cls(**values)

    def check(self, expected: Mapping[str, Any], *, source: str = "model") -> None:
        """Raise a one-line UserError naming the first key whose saved value differs from the run's value.

        Keys are model.json's; values are compared after a JSON round trip, so tuples match lists
        and numpy values match floats. A key the card does not know counts as missing.
        """
        saved = self.to_json()
        for key, want in expected.items():
            if saved.get(key) is None:
                raise UserError(
                    f"{source} was saved without {key!r} (this run needs {key}={want!r}); re-train it"
                )
            have = saved[key]
            if _as_json(have) != _as_json(want):
                raise UserError(
                    f"{source} was trained with {key}={have!r} but this run uses {key}={want!r}; "
                    "train a model for these settings or point model.path elsewhere"
                )


def read_card(directory: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> ModelCard:
    """The card of a saved model, checked against `expect`; no weights are read (no JAX needed).

    Every problem a user can cause (missing, unreadable or mismatched card) is a one-line UserError.
    """
    folder = Path(directory)
    card_path = folder / SIDECAR_FILE
    data = read_saved_json(folder, SIDECAR_FILE, "model sidecar")
    if not isinstance(data, dict) or data.get("format") not in (LEGACY_FORMAT, CARD_FORMAT):
        raise UserError(
            f"{card_path} is not a format-{CARD_FORMAT} (or format-{LEGACY_FORMAT}) model sidecar; "
            "re-save the model"
        )
    try:
        card = ModelCard.from_json(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise UserError(f"{card_path} holds malformed hyperparameters ({exc}); re-save the model") from exc
    if expect:
        card.check(expect, source=f"model at {folder}")
    return card


def read_saved_json(folder: Path, name: str, what: str) -> Any:
    """The JSON of a saved model's file `<folder>/<name>`; missing or unreadable is a one-line UserError."""
    path = folder / name
    if not path.is_file():
        raise UserError(f"no saved model at {folder}: {name} is missing (train one or fix model.path)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not a readable {what} ({exc}); re-save the model") from exc


def write_card(directory: str | os.PathLike[str], card: ModelCard, weights: Sequence[Path]) -> Path:
    """Write `<dir>/model.json` with the SHA-256 of the weight files, atomically.

    Call it after the weights are in place: a crash then never leaves a card for half-written weights.
    """
    folder = Path(directory)
    data = replace(card, weights_sha256=weights_sha256(weights)).to_json()
    card_path = folder / SIDECAR_FILE
    partial = card_path.with_suffix(card_path.suffix + ".tmp")
    partial.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, card_path)
    return folder


def read_weights_card(
    directory: str | os.PathLike[str], weights: Sequence[Path], expect: Mapping[str, Any] | None = None
) -> ModelCard:
    """The card of a saved model whose weight files exist and match the card's checksum.

    Every problem a user can cause (missing, corrupt or mismatched files) is a one-line UserError.
    """
    folder = Path(directory)
    for path in (folder / SIDECAR_FILE, *weights):
        if not path.is_file():
            raise UserError(
                f"no saved model at {folder}: {path.name} is missing (train one or fix model.path)"
            )
    card = read_card(folder, expect)
    if card.weights_sha256 != weights_sha256(weights):
        names = " + ".join(path.name for path in weights)
        raise UserError(
            f"{folder}/{names} does not match the checksum in {SIDECAR_FILE}; it is corrupt or was replaced"
        )
    return card


def weights_sha256(paths: Sequence[Path]) -> str:
    """SHA-256 of the weight files' bytes, in order: one file gives that file's usual checksum."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(SHA_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def _identity(value: Any) -> Any:
    return value


_PARSERS: dict[str, Any] = {
    "trained": bool,
    "feature_names": tuple,
    "margin_quantiles": lambda values: tuple(float(v) for v in values),
    "normalisation": Standardizer.from_dict,
    "data_range": CandleRange.from_json,
    "test_range": CandleRange.from_json,
    "calibration": Calibration.from_json,
}


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
