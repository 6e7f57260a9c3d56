"""The saved model: plain-data calibration, sha256 manifest, dtype handling at load."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import churnmodel as cm
from churnmodel.config import ModelConfig
from churnmodel.errors import ModelError
from churnmodel.model.backtest import plan_folds, scored_rows
from churnmodel.model.calibration import Calibrator
from churnmodel.model.churn_model import ChurnModel
from churnmodel.model.training import refit, train_and_evaluate
from churnmodel.registry.bundle import (
    KEY_VARIABLE,
    ModelBundle,
    load_bundle,
    locate_bundle,
    save_bundle,
)

RAW = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.5, 0.7, 0.9])
LABELS = np.array([0, 0, 1, 0, 0, 1, 1, 1])


def test_isotonic_calibrator_interpolates_shrunk_block_rates() -> None:
    """Blocks of the isotonic fit on RAW/LABELS, each (mean score, (churners + rate) / (rows + 1)).

    Pooled adjacent violators give [0, 0], [1, 0, 0] (pooled to 1/3) and
    [1, 1, 1]; the overall rate is 4/8. Points: (0.075, 0.5/3),
    (0.95/3, 1.5/4), (0.7, 3.5/4); between them the curve is linear.
    """
    calibrator = Calibrator.fit("isotonic", RAW, LABELS)
    assert calibrator.x == pytest.approx((0.075, 0.85 / 3, 0.7))
    assert calibrator.y == pytest.approx((0.5 / 3, 1.5 / 4, 3.5 / 4))
    probe = np.array([0.0, 0.075, 0.5, 0.7, 1.0])
    middle = 1.5 / 4 + (0.5 - 0.85 / 3) / (0.7 - 0.85 / 3) * (3.5 / 4 - 1.5 / 4)
    assert calibrator.apply(probe) == pytest.approx([0.5 / 3, 0.5 / 3, middle, 3.5 / 4, 3.5 / 4])
    assert Calibrator.from_dict(calibrator.to_dict()) == calibrator


def test_isotonic_stays_monotone_when_a_small_block_is_shrunk_hard() -> None:
    """100 stayers, 10 churners of 9, one churner on top: shrinking alone would rank it lower."""
    raw = np.r_[np.linspace(0, 0.5, 100), np.linspace(0.6, 0.8, 10), 0.95]
    labels = np.r_[np.zeros(100), np.ones(9), 0, 1]
    calibrator = Calibrator.fit("isotonic", raw, labels)
    curve = calibrator.apply(np.linspace(0, 1, 201))
    assert (np.diff(curve) >= 0).all()
    assert calibrator.apply(np.array([0.95]))[0] >= calibrator.apply(np.array([0.75]))[0]
    assert calibrator.keeps_probabilities()


def test_no_calibration_says_certain_or_merges_distinct_scores() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(size=5_000)
    labels = (rng.uniform(size=5_000) < raw**3).astype(int)  # perfect separation in the tails
    for kind in ("platt", "isotonic"):
        calibrated = Calibrator.fit(kind, raw, labels).apply(raw)
        assert calibrated.min() > 0 and calibrated.max() < 1, kind
    platt = Calibrator.fit("platt", raw, labels).apply(raw)
    assert len(np.unique(platt)) == len(np.unique(raw))  # the ranking is kept whole


def test_platt_calibrator_matches_a_logistic_fit_on_the_logit() -> None:
    calibrator = Calibrator.fit("platt", RAW, LABELS)
    logit = np.log(RAW / (1 - RAW))[:, None]
    reference = LogisticRegression(C=1e6).fit(logit, LABELS)
    assert np.allclose(calibrator.apply(RAW), reference.predict_proba(logit)[:, 1], atol=1e-12)
    assert np.array_equal(Calibrator.fit("none", RAW, LABELS).apply(RAW), RAW)


@pytest.fixture(scope="module")
def bundle() -> tuple[ModelBundle, pd.DataFrame]:
    run = cm.build_features(cm.RunConfig(), sources=cm.simulate(1_500, seed=2).as_tables())
    frame, names = run.matrix.frame, run.matrix.feature_names
    folds = plan_folds(run.cutoffs, run.config.label.horizon, 2)
    model = ModelConfig(n_estimators=60)
    result = train_and_evaluate(frame, names, folds, model, run.config.features.windows_days)
    # the blend has both parts, so the round trip covers trees and the linear model
    blend = refit(
        frame,
        next(c for c in result.backtest.candidates if c.name == "blend"),
        result.backtest.rounds,
        model,
        result.model.calibrator,
    )
    return ModelBundle(blend, run.matrix.specs, run.config, {"note": "test"}), scored_rows(
        frame, folds
    )


def test_bundle_round_trip_gives_identical_probabilities(bundle, tmp_path) -> None:
    original, held = bundle
    loaded = load_bundle(save_bundle(original, tmp_path / "bundle"))
    assert loaded.model.name == "blend" and loaded.model.linear == original.model.linear
    assert loaded.feature_names == original.feature_names
    assert loaded.config == original.config
    assert loaded.training == {"note": "test"}
    assert np.array_equal(loaded.predict(held), original.predict(held))


def test_text_columns_and_unseen_categories_are_scored_like_missing(bundle) -> None:
    model, held = bundle
    rows = held.head(50).copy()
    as_text = rows.astype({"plan": "object", "country": "object"})
    assert np.array_equal(model.predict(as_text), model.predict(rows))
    unseen = rows.assign(plan=pd.Categorical(["platinum"] * len(rows)))
    missing = rows.assign(plan=pd.Categorical([None] * len(rows), categories=["basic"]))
    assert np.array_equal(model.predict(unseen), model.predict(missing))


def test_a_changed_file_fails_the_sha256_check(bundle, tmp_path) -> None:
    folder = save_bundle(bundle[0], tmp_path / "bundle")
    calibration = folder / "calibrator.json"
    calibration.write_text(calibration.read_text().replace('"platt"', '"isotonic"'))
    with pytest.raises(ModelError, match=r"calibrator.json expected sha256 [0-9a-f]{64}, got"):
        load_bundle(folder)


def reseal(folder: Path) -> None:
    """Recompute the manifest, as someone editing a bundle on purpose would."""
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["sha256"] = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in manifest["sha256"]
    }
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))


def _edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        changed = change(data)
        (folder / name).write_text(json.dumps(data if changed is None else changed))
        reseal(folder)

    return edit


def _write(name: str, text: str, sealed: bool = True) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).write_text(text)
        if sealed:
            reseal(folder)

    return edit


DAMAGE = {
    "manifest-truncated": (_write("MANIFEST.json", '{"format": "churnm', False), "not valid JSON"),
    "manifest-no-sha256": (
        _write("MANIFEST.json", '{"format": "churnmodel-bundle/2"}', False),
        "no sha256 table",
    ),
    "config-invalid": (
        _write("config.json", '{"label": {"horizon_days": "soon"}}'),
        "cannot be read",
    ),
    "calibrator-missing-key": (
        _edit_json("calibrator.json", lambda d: {k: v for k, v in d.items() if k != "a"}),
        "cannot be read",
    ),
    "calibrator-unknown-kind": (
        _edit_json("calibrator.json", lambda d: d.update(kind="magic")),
        "cannot be read",
    ),
    "calibrator-out-of-range": (
        _edit_json(
            "calibrator.json",
            lambda d: {"kind": "isotonic", "x": [0, 1], "y": [0, 7.5], "a": 1, "b": 0},
        ),
        r"outside \[0, 1\]",
    ),
    "calibrator-not-an-object": (_write("calibrator.json", "1.5"), "cannot be read"),
    "model-txt-garbage": (_write("model.txt", "tree\nnot a model\n"), "cannot be read"),
    "model-json-missing-key": (
        _edit_json("model.json", lambda d: {k: v for k, v in d.items() if k != "name"}),
        "cannot be read",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_bundle_is_a_clear_model_error(bundle, tmp_path, damage) -> None:
    folder = save_bundle(bundle[0], tmp_path / "bundle")
    edit, message = DAMAGE[damage]
    edit(folder)
    with pytest.raises(ModelError, match=message):
        load_bundle(folder)


def test_the_champion_pointer_stays_in_its_folder(bundle, tmp_path) -> None:
    save_bundle(bundle[0], tmp_path / "outside")
    models = tmp_path / "models"
    models.mkdir()
    (models / "champion").write_text("../outside\n")
    with pytest.raises(ModelError, match="not the name of a folder beside it"):
        locate_bundle(models)
    (models / "x.pkl").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelError, match="a file; expected a model bundle folder"):
        locate_bundle(models / "x.pkl")


def test_a_missing_feature_column_is_a_clear_error(bundle) -> None:
    model, held = bundle
    with pytest.raises(ModelError, match=r"1 missing \(e.g. tenure_days\)"):
        model.predict(held.drop(columns="tenure_days"))


def test_a_version_1_bundle_still_loads_as_lightgbm(bundle, tmp_path) -> None:
    original, held = bundle
    trees = ChurnModel("lightgbm", original.model.booster, None, 1.0, original.model.calibrator)
    folder = save_bundle(ModelBundle(trees, original.specs, original.config), tmp_path / "v1")
    (folder / "model.json").unlink()
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["format"] = "churnmodel-bundle/1"
    del manifest["sha256"]["model.json"]
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    loaded = load_bundle(folder)
    assert loaded.model.name == "lightgbm" and loaded.model.linear is None
    assert np.array_equal(loaded.predict(held), trees_only(original, held))


def trees_only(bundle: ModelBundle, rows: pd.DataFrame) -> np.ndarray:
    model = bundle.model
    alone = ChurnModel("lightgbm", model.booster, None, 1.0, model.calibrator)
    return alone.predict_proba(bundle.prepare(rows))[:, 1]


def test_locate_bundle_follows_the_champion_pointer(bundle, tmp_path) -> None:
    save_bundle(bundle[0], tmp_path / "models" / "churnmodel-v7" / "artifacts" / "bundle")
    (tmp_path / "models" / "champion").write_text("churnmodel-v7\n")
    expected = tmp_path / "models" / "churnmodel-v7" / "artifacts" / "bundle"
    assert locate_bundle(tmp_path / "models") == expected
    assert locate_bundle(tmp_path / "models" / "champion") == expected
    with pytest.raises(ModelError, match="expected a model bundle"):
        locate_bundle(tmp_path / "nowhere")


def test_a_signing_key_makes_a_resealed_bundle_fail(bundle, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "team secret")
    folder = save_bundle(bundle[0], tmp_path / "signed")
    intact = save_bundle(bundle[0], tmp_path / "intact")
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert len(manifest["hmac"]) == 64
    assert load_bundle(folder).feature_names == bundle[0].feature_names
    calibration = folder / "calibrator.json"
    calibration.write_text(calibration.read_text().replace('"platt"', '"isotonic"'))
    reseal(folder)  # the sha256 table now matches: only the signature can tell
    with pytest.raises(ModelError, match="signature that does not match"):
        load_bundle(folder)
    monkeypatch.setenv(KEY_VARIABLE, "another key")
    with pytest.raises(ModelError, match="signature that does not match"):
        load_bundle(intact)
    unsigned = tmp_path / "unsigned"
    monkeypatch.delenv(KEY_VARIABLE)
    save_bundle(bundle[0], unsigned)
    assert "hmac" not in json.loads((unsigned / "MANIFEST.json").read_text())
    monkeypatch.setenv(KEY_VARIABLE, "team secret")
    with pytest.raises(ModelError, match="is not signed with the key in CHURNMODEL_BUNDLE_KEY"):
        load_bundle(unsigned)
