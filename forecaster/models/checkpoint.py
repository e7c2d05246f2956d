"""A trained network on disk: weights without pickle, and the ModelCard that says what they are.

`<dir>/model.eqx` holds the leaves (equinox serialisation); `<dir>/model.json` the card. The card
is written and read here only (`ModelCard.to_json` / `from_json`); its format is versioned, and
format-1 sidecars (before the card) still load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from forecaster.errors import UserError
from forecaster.models.inference import CompiledModel
from forecaster.models.network import Model, build
from forecaster.models.normalisation import Standardizer
from forecaster.models.spec import ModelSpec

WEIGHTS_FILE = "model.eqx"
SIDECAR_FILE = "model.json"
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
    calibration: Mapping[str, Any] | None = None  # reserved: no calibration is fitted yet
    data_range: CandleRange | None = None
    symbol: str | None = None
    best_epoch: int | None = None
    test: Mapping[str, Any] | None = None  # mean test scores over folds, as in metrics.json
    test_range: CandleRange | None = None  # the last fold's test block: mode=eval replays it by default
    last_fold_test: Mapping[str, Any] | None = None
    code_version: str | None = None
    weights_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The card as model.json holds it: the spec's keys at the top level, as format 1 had them."""
        data: dict[str, Any] = {"format": CARD_FORMAT, **self.spec.to_dict()}
        for f in fields(self):
            if f.name == "spec":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Standardizer):
                value = value.to_dict()
            elif isinstance(value, CandleRange):
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
        for f in fields(cls):
            value = data.get(f.name)
            if f.name == "spec" or value is None:
                continue
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


def _identity(value: Any) -> Any:
    return value


_PARSERS: dict[str, Any] = {
    "trained": bool,
    "feature_names": tuple,
    "normalisation": Standardizer.from_dict,
    "data_range": CandleRange.from_json,
    "test_range": CandleRange.from_json,
}


def save(directory: str | os.PathLike[str], model: Model, card: ModelCard) -> Path:
    """Write `<dir>/model.eqx` (leaves only, no pickle) and `<dir>/model.json` (the card).

    Each file is written to a temporary name and renamed, the card last, so a crash never leaves a
    card pointing at half-written weights. The card records the weights' SHA-256.
    """
    spec = card.spec
    if model.n_features != spec.n_features or _structure(model) != _structure(_skeleton(spec)):
        raise ValueError(f"model does not have the structure of {spec}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    partial = weights.with_suffix(".eqx.tmp")
    eqx.tree_serialise_leaves(partial, model)
    os.replace(partial, weights)
    _write_json(folder / SIDECAR_FILE, replace(card, weights_sha256=_sha256(weights)).to_json())
    return folder


def load(
    directory: str | os.PathLike[str], expect: Mapping[str, Any] | None = None
) -> tuple[Model, ModelCard]:
    """Read the card, check it against `expect`, rebuild the skeleton from its spec and read the weights.

    Every problem a user can cause (missing, corrupt or mismatched files) is a one-line UserError.
    """
    folder = Path(directory)
    card_path, weights = folder / SIDECAR_FILE, folder / WEIGHTS_FILE
    for path in (card_path, weights):
        if not path.is_file():
            raise UserError(
                f"no saved model at {folder}: {path.name} is missing (train one or fix model.path)"
            )
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{card_path} is not a readable model sidecar ({exc}); re-save the model") from exc
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
    if card.weights_sha256 != _sha256(weights):
        raise UserError(
            f"{weights} does not match the checksum in {SIDECAR_FILE}; it is corrupt or was replaced"
        )
    try:
        model = eqx.tree_deserialise_leaves(weights, _skeleton(card.spec))
    except Exception as exc:  # numpy/equinox raise several unrelated types for a bad file
        raise UserError(f"cannot read weights from {weights} ({type(exc).__name__}: {exc})") from exc
    return model, card


def load_compiled(
    directory: str | os.PathLike[str], expect: Mapping[str, Any] | None = None, *, exact: bool = True
) -> tuple[CompiledModel, ModelCard]:
    """`load`, then compile; the card's `trained` flag becomes `.trained` so records can report it."""
    model, card = load(directory, expect)
    return CompiledModel(model, trained=card.trained, exact=exact), card


def _skeleton(spec: ModelSpec) -> Model:
    """The model's structure with shape-only leaves: no PRNG work, so loading skips init's compile cost."""
    return eqx.filter_eval_shape(build, spec)


def _structure(model: Model) -> Any:
    leaves, treedef = jax.tree.flatten(model)
    return treedef, [(getattr(leaf, "shape", None), getattr(leaf, "dtype", type(leaf))) for leaf in leaves]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(SHA_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
