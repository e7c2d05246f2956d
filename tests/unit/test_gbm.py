"""model=gbm: the option, fitting, LightGBM-text weights beside the card, and the live = batch path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forecaster.candles import read_csv
from forecaster.config import compose_config
from forecaster.data import SAMPLE_CSV
from forecaster.errors import UserError
from forecaster.features.basic import BasicFeatures
from forecaster.models.boosted import HEAD_FILES, Boosted
from forecaster.models.card import SIDECAR_FILE, ModelCard
from forecaster.models.gbm import GBM
from forecaster.models.spec import ModelSpec
from forecaster.models.twohead import LogReg
from forecaster.predictor import build_predictor, load_model
from forecaster.training.dataset import Dataset, make_dataset

PICKLE_MAGIC = b"\x80"  # every pickle protocol >= 2 starts with this byte
QUICK = GBM(n_estimators=60, early_stopping_rounds=10, min_data_in_leaf=50, num_threads=1)


def _synthetic(n: int, seed: int = 0) -> Dataset:
    """Rows whose first feature moves the next return: a signal any working model must find."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    ret = 0.5 * X[:, 0] + rng.normal(size=n)
    y = np.stack([ret > 0, ret < 0], axis=1).astype(np.float32)
    return Dataset(X, y, np.arange(n, dtype=np.int64) * 60_000, ret, np.full(n, ""))


def _fitted(tmp_path: Path) -> tuple[Boosted, Dataset, Path]:
    data = _synthetic(4000)
    model = QUICK.fit(data[:2500], data[2500:3200], compose_config([]).train, seed=0)
    folder = model.save(tmp_path / "model", ModelCard(QUICK.spec(6, 0), trained=True, timeframe="1m"))
    return model, data, folder


def test_the_option_composes_from_its_yaml_and_builds_its_card_spec() -> None:
    model = compose_config(["model=gbm"]).model
    assert model == GBM() and model.trainable, "conf/model/gbm.yaml holds the class's defaults"
    assert model.spec(40, 3) == ModelSpec("gbm", 40, (), seed=3)
    assert GBM(seed=7).spec(40, 3).seed == 7 and GBM(seed=7).booster_params(3)["seed"] == 7
    with pytest.raises(UserError, match=r"model=gbm has nothing to predict with before training"):
        model.untrained(40, 0)


def test_fit_finds_a_known_signal(tmp_path: Path) -> None:
    model, data, _ = _fitted(tmp_path)
    held = data[3200:]
    p_up, p_down = model.probabilities(held.X)
    accuracy = float(np.mean((p_up > p_down) == (held.next_ret > 0)))
    assert accuracy > 0.6, f"{accuracy:.3f} on {len(held)} held-out rows; the signal gives ~0.65"
    assert 1 <= model.best_epoch <= model.epochs <= QUICK.n_estimators


def test_a_fold_too_small_for_lightgbm_is_refused_in_one_line() -> None:
    data = _synthetic(10)
    with pytest.raises(
        UserError, match=r"LightGBM cannot train on 1 training and 4 validation rows .*need more"
    ):
        QUICK.fit(data[:1], data[5:9], compose_config([]).train, seed=0)  # bagging samples 0 of 1 row


def test_saved_as_lightgbm_text_and_loaded_identically(tmp_path: Path) -> None:
    model, data, folder = _fitted(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*HEAD_FILES, SIDECAR_FILE])
    for path in folder.iterdir():
        assert not path.read_bytes().startswith(PICKLE_MAGIC)
    assert all((folder / name).read_text().startswith("tree\n") for name in HEAD_FILES)
    loaded = QUICK.load(folder, {"timeframe": "1m"})
    assert loaded.card is not None and loaded.card.spec.name == "gbm" and loaded.standardizer is None
    assert isinstance(loaded.model, Boosted) and loaded.model.trained
    before, after = model.probabilities(data.X), loaded.model.probabilities(data.X)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_a_row_gives_the_batch_numbers(tmp_path: Path) -> None:
    model, data, _ = _fitted(tmp_path)
    p_up, p_down = model.probabilities(data.X[:200])
    rows = [model(x) for x in data.X[:200]]
    assert [r[0] for r in rows] == p_up.tolist() and [r[1] for r in rows] == p_down.tolist()
    assert {r[2] for r in rows} == {0.0}


def test_corrupt_or_foreign_weights_are_refused_in_one_line(tmp_path: Path) -> None:
    _, _, folder = _fitted(tmp_path)
    features = BasicFeatures()
    with pytest.raises(UserError, match=r"trained as gbm, not logreg; run with model=gbm$"):
        load_model(LogReg(), features, "1m", 0, folder)
    (folder / HEAD_FILES[1]).write_text("tree\n")
    with pytest.raises(UserError, match="does not match the checksum"):
        QUICK.load(folder)
    card = json.loads((folder / SIDECAR_FILE).read_text())
    (folder / SIDECAR_FILE).write_text(json.dumps({**card, "name": "twohead"}))
    with pytest.raises(UserError, match=r"trained as twohead, not gbm; run with model=twohead$"):
        load_model(QUICK, features, "1m", 0, folder)


def test_live_path_equals_batch_path_on_real_candles(tmp_path: Path) -> None:
    """The Predictor (one window at a time) gives the numbers mode=train scored on the same rows."""
    candles = read_csv(SAMPLE_CSV)[:3000]
    config = compose_config(["model=gbm", "flat=off", "train/calibration=none"])
    features = config.features
    data = make_dataset(candles, features, 0.0)
    model = QUICK.fit(data[:2000], data[2000:2600], config.train, seed=0)
    card = ModelCard(
        QUICK.spec(features.n_features, 0),
        trained=True,
        feature_set=features.name,
        feature_fingerprint=features.fingerprint(),
        timeframe="1m",
    )
    folder = model.save(tmp_path / "model", card)
    predictor = build_predictor(config, folder)
    live = {
        p.candle_ts: (p.p_up, p.p_down)
        for p in (predictor.on_candle(c) for c in candles.to_candles())
        if p is not None and p.trained
    }
    p_up, p_down = model.probabilities(data.X)
    batch = dict(zip(data.candle_ts.tolist(), zip(p_up.tolist(), p_down.tolist(), strict=True), strict=True))
    assert len(batch) > 2900 and all(live[ts] == pair for ts, pair in batch.items())
