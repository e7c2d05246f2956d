"""The two-head network: deterministic init, one forward for single and batch, ensembles, save/load."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from forecaster.errors import UserError
from forecaster.models.card import SIDECAR_FILE, CandleRange, ModelCard
from forecaster.models.checkpoint import WEIGHTS_FILE, load, load_compiled, save
from forecaster.models.inference import CompiledModel
from forecaster.models.network import ACTIVATIONS, EnsembleNet, TwoHeadNet, build
from forecaster.models.normalisation import Standardizer
from forecaster.models.spec import ACTIVATION_NAMES, ModelSpec
from forecaster.models.twohead import LogReg, TwoHead
from forecaster.predictor import load_model

N_FEATURES = 19
N_ROWS = 257  # not a power of two: odd tail tiles are where batched matmuls round differently
MEMBERS = 4
TWOHEAD = ModelSpec("twohead", N_FEATURES, (64, 64), seed=0)
ENSEMBLE = ModelSpec("ensemble", N_FEATURES, (64, 64), members=MEMBERS, seed=0)
META = {"timeframe": "1m", "feature_set": "basic", "feature_fingerprint": "abc123"}


def _leaves(model: eqx.Module) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def _same(a: eqx.Module, b: eqx.Module) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((N_ROWS, N_FEATURES))


@pytest.fixture(scope="module")
def twohead() -> CompiledModel:
    return CompiledModel(build(TWOHEAD))


@pytest.fixture(scope="module")
def ensemble() -> CompiledModel:
    return CompiledModel(build(ENSEMBLE))


def test_init_is_deterministic_per_seed_and_differs_between_seeds() -> None:
    assert _same(build(TWOHEAD), build(TWOHEAD))
    other = replace(TWOHEAD, seed=1)
    assert not any(
        np.array_equal(a, b) for a, b in zip(_leaves(build(TWOHEAD)), _leaves(build(other)), strict=True)
    )


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_ensemble_members_are_distinct() -> None:
    weights = np.asarray(build(ENSEMBLE).members.up.weight)
    assert weights.shape[0] == MEMBERS
    assert len({w.tobytes() for w in weights}) == MEMBERS


def test_logreg_is_two_logistic_heads_on_the_input() -> None:
    spec = LogReg().spec(N_FEATURES, seed=0)
    model = build(spec)
    assert isinstance(model, TwoHeadNet) and model.trunk == ()
    assert model.up.in_features == model.down.in_features == N_FEATURES
    assert "hidden" not in {f.name for f in fields(LogReg)}, "model=logreg has no hidden layers to set"


def test_forward_returns_two_logits_and_probabilities_inside_0_1(rows: np.ndarray, ensemble) -> None:
    model = build(TWOHEAD)
    assert model(jnp.asarray(rows[0], jnp.float32)).shape == (2,)
    for compiled in (CompiledModel(build(ModelSpec("logreg", N_FEATURES, ()))), ensemble):
        out = compiled.batch(rows)
        for p in (out.p_up, out.p_down):
            assert p.dtype == np.float32 and ((p > 0) & (p < 1)).all()
        assert (out.spread >= 0).all()


def test_batch_equals_single_window_bit_for_bit(rows: np.ndarray, twohead, ensemble) -> None:
    for compiled in (twohead, ensemble):
        batch = compiled.batch(rows)
        single = np.array([compiled(row) for row in rows], dtype=np.float32)
        np.testing.assert_array_equal(single, np.stack([batch.p_up, batch.p_down, batch.spread], axis=1))


def test_fast_batch_agrees_within_float32_rounding(rows: np.ndarray, twohead) -> None:
    fast = CompiledModel(twohead.model, exact=False).batch(rows)
    exact = twohead.batch(rows)
    np.testing.assert_allclose(fast.p_up, exact.p_up, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.p_down, exact.p_down, rtol=0, atol=1e-6)


def test_ensemble_of_identical_members_equals_the_single_model(rows: np.ndarray, twohead) -> None:
    key = jax.random.PRNGKey(TWOHEAD.seed)
    clones = EnsembleNet(jnp.stack([key] * MEMBERS), N_FEATURES, TWOHEAD.hidden)
    assert _same(jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, clones.members), twohead.model)
    out, single = CompiledModel(clones).batch(rows), twohead.batch(rows)
    np.testing.assert_allclose(out.p_up, single.p_up, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out.p_down, single.p_down, rtol=0, atol=1e-7)
    assert np.abs(out.spread).max() <= 1e-7
    assert (single.spread == 0).all()


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_dropout_acts_only_in_training(rows: np.ndarray) -> None:
    x = jnp.asarray(rows[0], jnp.float32)
    train = eqx.filter_jit(lambda model, key: model(x, inference=False, key=key))
    model = build(replace(TWOHEAD, dropout=0.5))
    np.testing.assert_array_equal(model(x), model(x, inference=True))
    assert not np.array_equal(train(model, jax.random.PRNGKey(0)), train(model, jax.random.PRNGKey(1)))
    compiled = CompiledModel(model)
    assert compiled(rows[0]) == compiled(rows[0])
    members = build(replace(ENSEMBLE, dropout=0.5))
    assert train(members, jax.random.PRNGKey(0)).shape == (MEMBERS, 2)


def test_fresh_model_is_untrained(twohead) -> None:
    assert twohead.trained is False
    assert CompiledModel(twohead.model, trained=True).trained is True


def test_save_load_is_bit_identical(tmp_path: Path, rows: np.ndarray, twohead, ensemble) -> None:
    for spec, compiled in ((TWOHEAD, twohead), (ENSEMBLE, ensemble)):
        folder = tmp_path / spec.name
        save(folder, compiled.model, ModelCard(spec, trained=True, **META))
        model, card = load(folder, expect={"n_features": N_FEATURES, **META})
        assert load_compiled(folder)[0].trained is True
        assert _same(model, compiled.model)
        saved = json.loads((folder / SIDECAR_FILE).read_text())
        assert saved["format"] == 2 and saved["trained"] is True and saved["hidden"] == list(spec.hidden)
        assert card.trained is True and card.spec == spec == ModelSpec.from_dict(saved)
        loaded = CompiledModel(model).batch(rows)
        original = compiled.batch(rows)
        np.testing.assert_array_equal(loaded.p_up, original.p_up)
        np.testing.assert_array_equal(loaded.p_down, original.p_down)


def test_the_card_cannot_misdescribe_the_weights(tmp_path: Path, twohead) -> None:
    with pytest.raises(ValueError, match="n_features=3"):
        save(tmp_path, twohead.model, ModelCard(replace(TWOHEAD, n_features=3)))


@pytest.fixture
def saved(tmp_path: Path, twohead) -> Path:
    return save(tmp_path / "m", twohead.model, ModelCard(TWOHEAD, trained=False, **META))


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"timeframe": "5m"}, "trained with timeframe='1m' but this run uses timeframe='5m'"),
        ({"n_features": 20}, "n_features=19 but this run uses n_features=20"),
        ({"feature_fingerprint": "zzz"}, "feature_fingerprint='abc123'"),
        ({"threshold_bps": 0}, "saved without 'threshold_bps'"),
    ],
)
def test_sidecar_mismatch_is_a_one_line_user_error(saved: Path, expect: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        load(saved, expect=expect)
    assert "\n" not in str(info.value)


def test_weights_load_only_under_their_own_model_option_and_say_so(
    saved: Path, caplog: pytest.LogCaptureFixture
) -> None:
    features = SimpleNamespace(name="basic", fingerprint=lambda: "abc123", n_features=N_FEATURES)
    with pytest.raises(UserError, match=r"trained as twohead, not logreg; run with model=twohead$"):
        load_model(LogReg(path=str(saved)), features, "1m", 0, saved)
    with caplog.at_level(logging.INFO, logger="forecaster.predictor"):
        load_model(TwoHead(path=str(saved)), features, "1m", 0, saved)
    assert f"loaded untrained twohead weights from {saved} (1m, basic features, sha256 " in caplog.text


def test_card_check_compares_json_values() -> None:
    ModelCard(TWOHEAD).check({"hidden": (64, 64), "dropout": 0, "n_features": np.int64(N_FEATURES)})


def test_missing_model_files_are_user_errors(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(UserError, match=f"{SIDECAR_FILE} is missing"):
        load(tmp_path / "nowhere")
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(UserError, match=f"{WEIGHTS_FILE} is missing"):
        load(saved)


def test_corrupt_files_are_user_errors(saved: Path) -> None:
    weights = saved / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(UserError, match="does not match the checksum"):
        load(saved)
    sidecar = json.loads((saved / SIDECAR_FILE).read_text())
    (saved / SIDECAR_FILE).write_text(json.dumps({**sidecar, "weights_sha256": _sha(weights)}))
    with pytest.raises(UserError, match="cannot read weights"):
        load(saved)
    (saved / SIDECAR_FILE).write_text("{not json")
    with pytest.raises(UserError, match="not a readable model sidecar"):
        load(saved)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inputs_of_the_wrong_shape_are_refused(twohead) -> None:
    with pytest.raises(ValueError, match=r"shape \(19,\)"):
        twohead(np.zeros(N_FEATURES + 1))
    with pytest.raises(ValueError, match=r"shape \(N, 19\)"):
        twohead.batch(np.zeros((2, N_FEATURES - 1)))
    assert len(twohead.batch(np.zeros((0, N_FEATURES)))) == 0


def test_standardizer_fits_applies_and_round_trips(rows: np.ndarray) -> None:
    train = rows.copy()
    train[:, 3] = 5.0  # a constant feature must not divide by zero
    scaler = Standardizer.fit(train)
    out = scaler(train)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    assert (out[:, 3] == 0).all() and np.isfinite(out).all()
    again = Standardizer.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(again(rows[0]), scaler(rows[0]))
    with pytest.raises(ValueError, match="NaN"):
        Standardizer.fit(np.full((3, 2), np.nan))


def test_clipped_standardizer_cuts_tails_and_round_trips(rows: np.ndarray) -> None:
    train = rows.copy()
    train[0, 0] = 1e6  # one outlier, 50+ standard deviations out
    clipped = Standardizer.fit(train, clip=3.0)
    out = clipped(train)
    assert out.max() == 3.0 and out.min() >= -3.0
    np.testing.assert_array_equal(out, np.clip(Standardizer.fit(train)(train), -3.0, 3.0))
    saved = json.loads(json.dumps(clipped.to_dict()))
    assert saved["clip"] == 3.0 and "clip" not in Standardizer.fit(train).to_dict()
    np.testing.assert_array_equal(Standardizer.from_dict(saved)(train[0]), clipped(train[0]))
    with pytest.raises(UserError, match="malformed"):
        Standardizer.from_dict({**saved, "clip": 0.0})


def test_activation_names_of_the_spec_are_the_networks() -> None:
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


def test_card_round_trips_through_json(rows: np.ndarray) -> None:
    card = ModelCard(
        ENSEMBLE,
        trained=True,
        **META,
        feature_names=("ret_0", "ret_1"),
        threshold_bps=1.5,
        normalisation=Standardizer.fit(rows),
        data_range=CandleRange(1, 2),
        test_range=CandleRange(3, 4),
        symbol="BTCUSDT",
        best_epoch=2,
        test={"model": {"n": 5.0}},
        last_fold_test={"model": {"n": 5.0}},
        code_version="0.1.0",
        weights_sha256="ab",
    )
    data = json.loads(json.dumps(card.to_json()))
    again = ModelCard.from_json(data)
    assert (
        again.to_json() == card.to_json() and again.spec == ENSEMBLE and again.test_range == CandleRange(3, 4)
    )
    assert data["format"] == 2 and data["calibration"] is None and data["ensemble"] is False


def _format_1_sidecar(folder: Path, model: eqx.Module, spec: ModelSpec, scaler: Standardizer) -> None:
    """A model saved the way format 1 did it (model.save plus modes/train.py's metadata), for upgrades."""
    folder.mkdir(parents=True)
    eqx.tree_serialise_leaves(folder / WEIGHTS_FILE, model)
    sidecar = {
        "format": 1,
        **{
            key: list(v) if isinstance(v := getattr(spec, key), tuple) else v
            for key in ("name", "n_features", "hidden", "activation", "dropout", "members", "seed")
        },
        "trained": True,
        "weights_sha256": _sha(folder / WEIGHTS_FILE),
        "feature_set": "basic",
        "feature_fingerprint": "abc123",
        "feature_names": [f"f{i}" for i in range(N_FEATURES)],
        "timeframe": "1m",
        "threshold_bps": 0.0,
        "normalisation": scaler.to_dict(),
        "data_range": {"first_candle_ts": 0, "last_candle_ts": 600000},
        "symbol": "BTCUSDT",
        "best_epoch": 3,
        "test": {"model": {"n": 10.0}},
        "test_range": {"first_candle_ts": 540000, "last_candle_ts": 600000},
        "last_fold_test": {"model": {"n": 10.0}},
        "code_version": "0.1.0",
    }
    (folder / SIDECAR_FILE).write_text(json.dumps(sidecar, indent=2))


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_format_1_sidecars_still_load(tmp_path: Path, rows: np.ndarray, ensemble) -> None:
    scaler = Standardizer.fit(rows)
    one_member = ModelSpec("ensemble", N_FEATURES, (8,), members=1, ensemble=True)
    for spec, model in ((ENSEMBLE, ensemble.model), (one_member, build(one_member))):
        folder = tmp_path / f"v1-{spec.members}"
        _format_1_sidecar(folder, model, spec, scaler)
        loaded, card = load(folder, expect=META)
        assert _same(loaded, model) and isinstance(loaded, EnsembleNet)
        # format 1 stacked the members of model=ensemble even with one; format 2 says so in `ensemble`
        assert card.spec == replace(spec, ensemble=True) and card.trained is True and card.best_epoch == 3
        assert card.test_range == CandleRange(540000, 600000) and card.symbol == "BTCUSDT"
        assert card.feature_names == tuple(f"f{i}" for i in range(N_FEATURES))
        np.testing.assert_array_equal(card.normalisation(rows[0]), scaler(rows[0]))
        with pytest.raises(UserError, match="trained with timeframe='1m' but this run uses timeframe='5m'"):
            load(folder, expect={"timeframe": "5m"})
    option = TwoHead(path=str(folder))
    served = option.load(folder, META)
    assert served.card is not None and served.card.spec == one_member and served.model.trained is True
    np.testing.assert_array_equal(served.standardizer(rows[0]), scaler(rows[0]))
