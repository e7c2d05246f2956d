"""A trained network on disk: weights without pickle, beside the ModelCard that says what they are.

`<dir>/model.eqx` holds the leaves (equinox serialisation); `<dir>/model.json` the card
(forecaster/models/card.py), written last so a crash never leaves a card for half-written weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from forecaster.errors import UserError
from forecaster.models.card import SIDECAR_FILE, ModelCard, read_card
from forecaster.models.inference import CompiledModel
from forecaster.models.network import Model, build
from forecaster.models.spec import ModelSpec

WEIGHTS_FILE = "model.eqx"
SHA_CHUNK_BYTES = 1 << 20


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
    card = read_card(folder, expect)
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
