"""model=blend: several model options trained on the same rows, their calibrated probabilities averaged.

A network and the gbm see the same rows but err differently, so their mean is steadier than either.
Each member is a real model option (conf/model/<name>.yaml, built as `model=<name>` is) and keeps its
own standardizer and its own calibration, fitted on the fold's validation rows with the run's
train.calibration; the blend is then calibrated and given its FLAT rule by mode=train like any model.

Saved as one sub-folder per member in that member's own format (its card holding its calibration),
`blend.json` (the members' folders, in order, and their weights) and the blend's card, whose checksum
covers blend.json and the members' cards (which hold their weights' checksums). Light at import.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from forecaster.errors import ConfigError, UserError
from forecaster.models.base import Fitted, LoadedModel, check_weights_source, needs_training
from forecaster.models.card import (
    SIDECAR_FILE,
    ModelCard,
    read_card,
    read_saved_json,
    read_weights_card,
    write_card,
)
from forecaster.models.spec import ModelSpec

if TYPE_CHECKING:
    from forecaster.calibration import Calibration
    from forecaster.config import TrainConfig
    from forecaster.models.base import ProbabilityModel
    from forecaster.training.dataset import Dataset
    from forecaster.training.loop import EpochStats

log = logging.getLogger(__name__)
MEMBERS_FILE = "blend.json"  # {"members": [folder, ...], "weights": [w, ...]}, beside the blend's card
MIN_MEMBERS = 2
Pair = tuple[np.ndarray, np.ndarray]  # (p_up, p_down) of some rows


@dataclass(frozen=True)
class Blend:
    """The mean (or `weights`-weighted mean) of the members' calibrated probabilities.

    `members` names model options; `keys` sets a member's keys over its option's defaults
    (`+model.keys.gbm.n_estimators=200`). Spread is the members' disagreement, so flat.max_spread acts.
    """

    trainable: ClassVar[bool] = True
    name: str = "blend"
    members: tuple[str, ...] = ("twohead", "gbm")
    keys: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    weights: tuple[float, ...] | None = None  # one per member, >= 0; null: equal weights
    path: str | None = None
    uri: str | None = None

    def __post_init__(self) -> None:
        check_weights_source(self.path, self.uri)
        object.__setattr__(self, "members", tuple(str(name) for name in self.members))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        problem = self._problem()
        if problem:
            raise ConfigError(problem)
        for name, option in zip(self.members, self.options, strict=True):  # built now: errors come first
            if not option.trainable:
                raise ConfigError(f"model.members: {name} needs no training; a blend's members are trained")

    def _problem(self) -> str | None:
        if len(self.members) < MIN_MEMBERS:
            return (
                f"model.members lists {len(self.members)} model option(s); a blend needs at least "
                f"{MIN_MEMBERS}, e.g. model.members=[twohead,gbm]"
            )
        if twice := sorted({name for name in self.members if self.members.count(name) > 1}):
            return f"model.members lists {twice[0]} twice; list each model option once"
        if stray := sorted(set(self.keys) - set(self.members)):
            return f"model.keys.{stray[0]} sets keys of {stray[0]}, which model.members does not list"
        if self.weights is not None and len(self.weights) != len(self.members):
            return f"model.weights has {len(self.weights)} values for {len(self.members)} model.members"
        if self.weights is not None and (min(self.weights) < 0 or sum(self.weights) <= 0):
            return f"model.weights={list(self.weights)} must be >= 0 with a positive sum"
        return None

    @cached_property
    def options(self) -> tuple[ProbabilityModel, ...]:
        """The members' model options, each built as `model=<name>` with its `keys` would be."""
        from forecaster.config import model_option

        return tuple(
            model_option(name, self.keys.get(name, {}), "model.members", f"model.keys.{name}")
            for name in self.members
        )

    def spec(self, n_features: int, seed: int) -> ModelSpec:
        """The card's spec: the members' own specs are in their own cards."""
        return ModelSpec(
            name=self.name, n_features=n_features, hidden=(), members=len(self.members), seed=seed
        )

    def untrained(self, n_features: int, seed: int) -> BlendRows:
        raise needs_training(self.name)

    def fit(
        self,
        data_train: Dataset,
        data_val: Dataset,
        config: TrainConfig,
        seed: int,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ) -> BlendFit:
        """Every member fitted on the same rows, then calibrated on data_val with train.calibration."""
        members = []
        for name, option in zip(self.members, self.options, strict=True):
            fitted = option.fit(data_train, data_val, config, seed, on_epoch)
            raw_val = fitted.probabilities(data_val.X)
            calibration = config.calibration.fit(*raw_val, data_val.y[:, 0], data_val.y[:, 1])
            log.info(
                "blend member %s: best epoch %d of %d, calibration %s",
                name,
                fitted.best_epoch,
                fitted.epochs,
                "none" if calibration is None else calibration.describe(),
            )
            members.append(Member(name, option.spec(data_train.X.shape[1], seed), fitted, calibration))
        return BlendFit(tuple(members), self._normalised_weights())

    def _normalised_weights(self) -> tuple[float, ...]:
        """`weights` (or equal ones) scaled to sum 1, as the combiner and blend.json take them."""
        weights = self.weights or (1.0,) * len(self.members)
        return tuple(w / sum(weights) for w in weights)

    def load(self, path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> LoadedModel:
        """The members saved by `BlendFit.save`, each loaded by the model option its own card names."""
        from forecaster.config import model_option

        folder = Path(path)
        names, weights = _read_members(folder)
        members_cards = [folder / name / SIDECAR_FILE for name in names]
        card = read_weights_card(folder, [folder / MEMBERS_FILE, *members_cards], expect)
        members = []
        for name in names:
            where = folder / name
            option = model_option(read_card(where).spec.name, {}, f"blend member {where}: model", str(where))
            members.append(option.load(where, expect))
        return LoadedModel(BlendRows(tuple(members), weights, card.trained), None, card)


@dataclass(frozen=True)
class Member:
    """One fitted member: its folder name, its card's spec, its model and its calibration."""

    name: str
    spec: ModelSpec
    fitted: Fitted
    calibration: Calibration | None


@dataclass(frozen=True)
class BlendFit:
    """mode=train's fitted blend (a models.base.Fitted): members on raw rows, combined."""

    members: tuple[Member, ...]
    weights: tuple[float, ...]  # normalised to sum 1

    @property
    def standardizer(self) -> None:
        """None: the blend takes raw rows; each member standardises them its own way."""
        return None

    @property
    def best_epoch(self) -> int:
        """The latest member's (epochs for networks, boosting rounds for the gbm)."""
        return max(member.fitted.best_epoch for member in self.members)

    @property
    def epochs(self) -> int:
        return max(member.fitted.epochs for member in self.members)

    def probabilities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pairs = [calibrated(m.calibration, m.fitted.probabilities(X)) for m in self.members]
        p_up, p_down, _ = combine(pairs, self.weights)
        return p_up, p_down

    def save(self, directory: str | os.PathLike[str], card: ModelCard) -> Path:
        """Each member in its own folder and format with its own card, blend.json, then the blend's card."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        for member in self.members:
            member.fitted.save(folder / member.name, member_card(card, member))
        members = folder / MEMBERS_FILE
        partial = members.with_suffix(".tmp")
        data = {"members": [m.name for m in self.members], "weights": list(self.weights)}
        partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, members)
        return write_card(folder, card, [members, *(folder / m.name / SIDECAR_FILE for m in self.members)])


@dataclass(eq=False)
class BlendRows:
    """The live row predictor: per member standardizer -> model -> its card's calibration, combined.

    Takes raw rows (the blend has no standardizer of its own) and combines exactly as `BlendFit` does.
    """

    members: tuple[LoadedModel, ...]
    weights: tuple[float, ...]
    trained: bool

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]:
        pairs = []
        for member in self.members:
            row = x if member.standardizer is None else member.standardizer(x)
            p_up, p_down, _ = member.model(row)
            calibration = member.card.calibration if member.card else None
            pairs.append(calibrated(calibration, (np.array([p_up]), np.array([p_down]))))
        p_up, p_down, spread = combine(pairs, self.weights)
        return float(p_up[0]), float(p_down[0]), float(spread[0])


def calibrated(calibration: Calibration | None, pair: Pair) -> Pair:
    p_up, p_down = (np.asarray(p, np.float64) for p in pair)
    return (p_up, p_down) if calibration is None else calibration(p_up, p_down)


def combine(pairs: Sequence[Pair], weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_up, p_down, spread) of the members' pairs: the weighted means, and the larger of the two
    heads' weighted standard deviation over members (as an ensemble's spread is)."""
    w = np.asarray(weights, np.float64)[:, None]
    heads = [np.stack([pair[head] for pair in pairs]) for head in range(2)]  # (members, rows) each
    means = [np.sum(w * p, axis=0) for p in heads]
    spreads = [np.sqrt(np.sum(w * (p - mean) ** 2, axis=0)) for p, mean in zip(heads, means, strict=True)]
    return means[0], means[1], np.maximum(*spreads)


def member_card(card: ModelCard, member: Member) -> ModelCard:
    """A member's own card: the blend's data and features, the member's spec, standardizer and
    calibration; the scores are the blend's, so they stay on the blend's card only."""
    return replace(
        card,
        spec=member.spec,
        normalisation=member.fitted.standardizer,
        calibration=member.calibration,
        best_epoch=member.fitted.best_epoch,
        margin_quantiles=None,
        val=None,
        test=None,
        last_fold_test=None,
    )


def _read_members(folder: Path) -> tuple[list[str], tuple[float, ...]]:
    """The member folders and weights of blend.json, each folder there; one-line UserErrors."""
    data = read_saved_json(folder, MEMBERS_FILE, "blend members file")
    try:
        names = [str(name) for name in data["members"]]
        weights = tuple(float(w) for w in data["weights"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"{folder / MEMBERS_FILE} lacks its members or weights ({exc}); re-save the model"
        ) from exc
    if len(names) != len(weights):
        raise UserError(
            f"{folder / MEMBERS_FILE} has {len(weights)} weights for {len(names)} members; re-save the model"
        )
    for name in names:
        if not (folder / name).is_dir():
            raise UserError(f"the blend at {folder} lacks its member folder {name}/; re-save the model")
    return names, weights
