"""model=blend: the option and its checks, the combiner, the saved folder and the live = batch path."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from forecaster.calibration import Temperature
from forecaster.checks import Status
from forecaster.config import compose_config
from forecaster.errors import ConfigError, UserError
from forecaster.models.blend import MEMBERS_FILE, Blend, BlendFit, BlendRows, Member, combine
from forecaster.models.boosted import HEAD_FILES
from forecaster.models.card import SIDECAR_FILE, ModelCard, read_card, weights_sha256
from forecaster.models.describe import version_description, version_tags
from forecaster.models.gbm import GBM
from forecaster.models.spec import ModelSpec
from forecaster.models.twohead import LogReg, TwoHead
from forecaster.modes.dryrun import check_model
from tests.unit.test_gbm import PICKLE_MAGIC, QUICK, _synthetic

N_FEATURES = 6
ROWS = 300  # rows compared between the live and the batch path


def test_the_option_composes_its_members_and_cannot_run_untrained() -> None:
    config = compose_config(["model=blend"])
    model = config.model
    assert model == Blend() and model.trainable and model.options == (TwoHead(), GBM())
    assert model.spec(19, 3) == ModelSpec("blend", 19, (), members=2, seed=3)
    chosen = compose_config(["model=blend", "model.members=[logreg,gbm]", "+model.keys.gbm.num_leaves=7"])
    assert chosen.model.options == (LogReg(), GBM(num_leaves=7))
    with pytest.raises(UserError, match=r"^model=blend has nothing to predict with before training"):
        model.untrained(19, 0)
    check = check_model(config)
    assert check.status is Status.FAIL and "run mode=train model=blend" in check.detail


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.members=[gbm]"], "a blend needs at least 2"),
        (
            ["model.members=[gbm,gbn]"],
            "model.members=gbn is not allowed; choose one of: blend, combiner, ensemble",
        ),
        (["model.members=[gbm,gbm]"], "model.members lists gbm twice"),
        (["model.members=[gbm,persistence]"], "persistence needs no training"),
        (
            ["+model.keys.gbm.leaves=3"],
            "unknown key 'model.keys.gbm.leaves'; allowed keys in 'model.keys.gbm'",
        ),
        (["+model.keys.logreg.members=2"], "model.keys.logreg sets keys of logreg, which model.members"),
        (["model.weights=[1]"], "model.weights has 1 values for 2 model.members"),
        (["model.weights=[1,-1]"], "must be >= 0 with a positive sum"),
        (["model.path=a", "model.uri=models:/b/1"], "model.path and model.uri are both set"),
    ],
)
def test_a_bad_blend_is_refused_in_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        compose_config(["model=blend", *overrides])
    assert "\n" not in str(refused.value)


@pytest.fixture(scope="module")
def fitted() -> tuple[BlendFit, np.ndarray]:
    """Two real, differently grown gbm members, each calibrated on the validation rows; held-out rows."""
    data = _synthetic(4000)
    train, val = data[:2500], data[2500:3200]
    members = []
    for name, option in (("gbm", QUICK), ("deep", replace(QUICK, num_leaves=31, seed=1))):
        trees = option.fit(train, val, compose_config([]).train, seed=0)
        calibration = Temperature().fit(*trees.probabilities(val.X), val.y[:, 0], val.y[:, 1])
        members.append(Member(name, option.spec(N_FEATURES, 0), trees, calibration))
    return BlendFit(tuple(members), (0.5, 0.5)), data[3200:].X


def test_the_blend_is_the_weighted_mean_of_the_members_calibrated_probabilities(
    fitted: tuple[BlendFit, np.ndarray],
) -> None:
    blend, X = fitted
    calibrated = [m.calibration(*m.fitted.probabilities(X)) for m in blend.members if m.calibration]
    raw = blend.members[0].fitted.probabilities(X)
    assert not np.allclose(calibrated[0][0], raw[0]), "the member's calibration is applied"
    for weights in ((0.5, 0.5), (0.75, 0.25)):
        p_up, p_down = replace(blend, weights=weights).probabilities(X)
        for head, p in enumerate((p_up, p_down)):
            np.testing.assert_allclose(p, weights[0] * calibrated[0][head] + weights[1] * calibrated[1][head])
    _, _, spread = combine(calibrated, (0.5, 0.5))
    gaps = [np.abs(calibrated[0][head] - calibrated[1][head]) / 2 for head in range(2)]
    np.testing.assert_allclose(spread, np.maximum(*gaps), rtol=1e-12)


def test_saved_per_member_and_a_loaded_row_gives_the_batch_numbers(
    fitted: tuple[BlendFit, np.ndarray], tmp_path: Path
) -> None:
    blend, X = fitted
    card = ModelCard(ModelSpec("blend", N_FEATURES, (), members=2), trained=True, timeframe="1m")
    folder = blend.save(tmp_path / "model", card)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["deep", "gbm", MEMBERS_FILE, SIDECAR_FILE])
    for member in blend.members:
        assert sorted(p.name for p in (folder / member.name).iterdir()) == sorted([*HEAD_FILES, SIDECAR_FILE])
        own = read_card(folder / member.name)
        assert own.spec.name == "gbm" and own.calibration == member.calibration and own.timeframe == "1m"
    assert not any(p.read_bytes().startswith(PICKLE_MAGIC) for p in folder.rglob("*") if p.is_file())
    saved = read_card(folder)
    cards = [folder / m.name / SIDECAR_FILE for m in blend.members]
    assert saved.weights_sha256 == weights_sha256([folder / MEMBERS_FILE, *cards])
    assert version_tags(saved, {})["model"] == "blend"
    assert version_description(saved, {}).startswith("blend (no hidden layer, 2 member(s))")

    loaded = Blend().load(folder, {"timeframe": "1m"})
    assert isinstance(loaded.model, BlendRows) and loaded.model.trained and loaded.standardizer is None
    rows = np.array([loaded.model(x) for x in X[:ROWS]])
    p_up, p_down = blend.probabilities(X[:ROWS])
    np.testing.assert_allclose(rows[:, 0], p_up, rtol=0, atol=1e-9)
    np.testing.assert_allclose(rows[:, 1], p_down, rtol=0, atol=1e-9)
    assert rows[:, 2].max() > 0, "the members disagree: the spread says by how much"


def test_a_damaged_blend_folder_is_refused_in_one_line(
    fitted: tuple[BlendFit, np.ndarray], tmp_path: Path
) -> None:
    blend, _ = fitted
    card = ModelCard(ModelSpec("blend", N_FEATURES, (), members=2), trained=True)
    folder = blend.save(tmp_path / "model", card)
    member_card = folder / "deep" / SIDECAR_FILE
    member_card.write_text(member_card.read_text().replace('"trained": true', '"trained": false'))
    with pytest.raises(UserError, match=r"model\.json does not match the checksum"):
        Blend().load(folder)
    (folder / MEMBERS_FILE).write_text(json.dumps({"members": ["gbm", "gone"], "weights": [0.5, 0.5]}))
    with pytest.raises(UserError, match=r"lacks its member folder gone/; re-save the model$"):
        Blend().load(folder)
    (folder / MEMBERS_FILE).unlink()
    with pytest.raises(UserError, match=r"blend\.json is missing"):
        Blend().load(folder)
