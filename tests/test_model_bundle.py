"""The saved model: plain-data calibration, sha256 manifest, dtype handling at load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

import churnmodel as cm
from churnmodel.config import ModelConfig
from churnmodel.errors import ModelError
from churnmodel.model.backtest import plan_folds, scored_rows
from churnmodel.model.calibration import Calibrator
from churnmodel.model.churn_model import ChurnModel
from churnmodel.model.training import refit, train_and_evaluate
from churnmodel.registry.bundle import ModelBundle, load_bundle, locate_bundle, save_bundle

RAW = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.5, 0.7, 0.9])
LABELS = np.array([0, 0, 1, 0, 0, 1, 1, 1])


def test_isotonic_calibrator_matches_scikit_learn_as_plain_numbers() -> None:
    calibrator = Calibrator.fit("isotonic", RAW, LABELS)
    reference = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(RAW, LABELS)
    probe = np.array([0.0, 0.07, 0.25, 0.33, 0.6, 1.0])
    assert np.allclose(calibrator.apply(probe), reference.predict(probe), atol=1e-12)
    # pooled adjacent violators: (1, 0, 0) at 0.2-0.35 pools to 1/3
    assert calibrator.apply(np.array([0.3]))[0] == pytest.approx(1 / 3)
    assert Calibrator.from_dict(calibrator.to_dict()) == calibrator


def test_platt_calibrator_matches_a_logistic_fit_on_the_logit() -> None:
    calibrator = Calibrator.fit("platt", RAW, LABELS)
    logit = np.log(RAW / (1 - RAW))[:, None]
    reference = LogisticRegression().fit(logit, LABELS)
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
    calibration.write_text(calibration.read_text().replace('"isotonic"', '"platt"'))
    with pytest.raises(ModelError, match=r"calibrator.json expected sha256 [0-9a-f]{64}, got"):
        load_bundle(folder)


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
