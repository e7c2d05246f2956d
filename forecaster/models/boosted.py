"""Two LightGBM boosters as one model: fitted by mode=train, saved as LightGBM text, served live.

`<dir>/gbm_up.txt` and `<dir>/gbm_down.txt` are LightGBM's own text format (`Booster.save_model`,
never pickle), each cut at its head's best validation round; `<dir>/model.json` is the card, with
the SHA-256 of both files, written last.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# OpenMP threads waiting for work sleep rather than spin (an OMP_WAIT_POLICY set by the user is kept).
# libgomp reads this once, when it loads with lightgbm below. Spinning between LightGBM's many short
# parallel regions is a disaster on busy cores: fitting the two yardstick heads on the shipped sample
# took 28 s of CPU spinning against 0.3 s passive (2 cores loaded by other work, measured); the trees
# and numbers are the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb
import numpy as np

from forecaster.errors import UserError
from forecaster.models.base import LoadedModel
from forecaster.models.card import ModelCard, read_weights_card, write_card
from forecaster.training.dataset import Dataset
from forecaster.training.splits import SplitError

log = logging.getLogger(__name__)
HEAD_FILES = ("gbm_up.txt", "gbm_down.txt")  # in the order of the targets' columns [up, down]
VAL_METRIC = "binary_logloss"  # what early stopping watches on the validation block
# One live row on one thread: OpenMP's thread team costs more than the row (p99 ~0.25 ms against ~8 ms
# on 2 busy cores, measured); the same trees and sums, so the numbers equal the batch path's.
ROW_THREADS = 1
# Not options: what the boosters are (binary heads), quiet, and reproducible given the seed.
FIXED_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "verbosity": -1,
    "deterministic": True,
    "force_col_wise": True,
    "metric": VAL_METRIC,
}


@dataclass(eq=False)
class Boosted:
    """p_up and p_down from one binary booster each: mode=train's fit result and the live row predictor.

    Trees split raw feature values, so there is no standardizer. A row and a batch go through the
    same booster, so the live path gives the batch path's numbers exactly.
    """

    up: lgb.Booster
    down: lgb.Booster
    trained: bool = True
    best_epoch: int = 0  # the later of the two heads' best rounds
    epochs: int = 0  # rounds run before early stopping, the longer head
    standardizer: None = None

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]:
        """(p_up, p_down, 0.0) for one raw feature vector: one model, no member spread."""
        row = np.asarray(x, dtype=np.float64)[None, :]
        p_up, p_down = (np.asarray(b.predict(row, num_threads=ROW_THREADS)) for b in (self.up, self.down))
        return float(p_up[0]), float(p_down[0]), 0.0

    def probabilities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_up, p_down) as float64 for raw feature rows X (N, F)."""
        rows = np.asarray(X, dtype=np.float64)
        return np.asarray(self.up.predict(rows), np.float64), np.asarray(self.down.predict(rows), np.float64)

    def save(self, directory: str | os.PathLike[str], card: ModelCard) -> Path:
        """Both boosters as LightGBM text (temporary names, then renamed), then the card."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / name for name in HEAD_FILES]
        for booster, path in zip((self.up, self.down), paths, strict=True):
            partial = path.with_suffix(".tmp")
            booster.save_model(partial)
            os.replace(partial, path)
        return write_card(folder, card, paths)


def fit(
    params: Mapping[str, Any], data_train: Dataset, data_val: Dataset, rounds: int, patience: int
) -> Boosted:
    """One booster per head on data_train, each stopped at its best log loss on data_val only."""
    if len(data_train) == 0 or len(data_val) == 0:
        raise SplitError("training and validation parts must both have rows; need more history")
    heads: list[lgb.Booster] = []
    best, run = [], []
    for column in range(len(HEAD_FILES)):
        train_set = lgb.Dataset(data_train.X, np.ascontiguousarray(data_train.y[:, column]))
        val_set = lgb.Dataset(data_val.X, np.ascontiguousarray(data_val.y[:, column]), reference=train_set)
        losses: dict[str, Any] = {}
        try:
            booster = lgb.train(
                {**FIXED_PARAMS, **params},
                train_set,
                num_boost_round=rounds,
                valid_sets=[val_set],
                callbacks=[lgb.early_stopping(patience, verbose=False), lgb.record_evaluation(losses)],
            )
        except lgb.basic.LightGBMError as exc:  # e.g. a bag of 0 rows sampled from a tiny fold
            raise SplitError(
                f"LightGBM cannot train on {len(data_train)} training and {len(data_val)} validation rows "
                f"({str(exc).strip()}); need more history or fewer train.folds"
            ) from exc
        best_round = booster.best_iteration or booster.current_iteration()
        best.append(best_round)
        run.append(len(next(iter(losses.values()))[VAL_METRIC]))
        # Cut at the best round in memory too, so the fold is scored with exactly what is saved.
        heads.append(lgb.Booster(model_str=booster.model_to_string(num_iteration=best_round)))
    log.info("gbm: best rounds up %d, down %d (of %d, %d run)", *best, *run)
    return Boosted(heads[0], heads[1], trained=True, best_epoch=max(best), epochs=max(run))


def load(directory: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> LoadedModel:
    """The boosters saved by `Boosted.save`, checked against their card and `expect`."""
    folder = Path(directory)
    paths = [folder / name for name in HEAD_FILES]
    card = read_weights_card(folder, paths, expect)
    boosters = []
    for path in paths:
        try:
            booster = lgb.Booster(model_file=path)
        except lgb.basic.LightGBMError as exc:
            raise UserError(f"cannot read LightGBM boosters from {path} ({exc})") from exc
        if booster.num_feature() != card.spec.n_features:
            raise UserError(
                f"{path} takes {booster.num_feature()} features but its card says {card.spec.n_features}; "
                "re-save the model"
            )
        boosters.append(booster)
    model = Boosted(boosters[0], boosters[1], trained=card.trained, best_epoch=card.best_epoch or 0)
    return LoadedModel(model, None, card)
