"""A trained network on disk: weights without pickle, beside the ModelCard that says what they are.

`<dir>/model.eqx` holds the leaves (equinox serialisation); `<dir>/model.json` the card
(forecaster/models/card.py), written last so a crash never leaves a card for half-written weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from forecaster.errors import UserError
from forecaster.models.card import ModelCard, read_weights_card, write_card
from forecaster.models.inference import CompiledModel
from forecaster.models.network import Model, build
from forecaster.models.spec import ModelSpec

WEIGHTS_FILE = "model.eqx"


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
    return write_card(folder, card, [weights])


def load(
    directory: str | os.PathLike[str], expect: Mapping[str, Any] | None = None
) -> tuple[Model, ModelCard]:
    """Read the card, check it against `expect`, rebuild the skeleton from its spec and read the weights.

    Every problem a user can cause (missing, corrupt or mismatched files) is a one-line UserError.
    """
    weights = Path(directory) / WEIGHTS_FILE
    card = read_weights_card(directory, [weights], expect)
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
