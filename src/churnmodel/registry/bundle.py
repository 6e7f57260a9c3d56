"""A trained model as a folder of plain files, checked by sha256 on load.

    model.txt         LightGBM's own text format (trees up to the best iteration,
                      with the categories it was trained on)
    calibrator.json   the calibration curve or Platt coefficients
    features.json     feature names, families, dtypes and descriptions, in order
    config.json       the run configuration it was trained with
    training.json     cutoffs, parameters and holdout metrics of the training run
    MANIFEST.json     format version and the sha256 of every file above

No pickles: every file is text a person can read, and loading one never runs
code. A changed or truncated file fails the manifest check with a clear error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel._io import atomic_directory
from churnmodel.config import RunConfig
from churnmodel.errors import ModelError
from churnmodel.features.catalog import FeatureSpec
from churnmodel.model.estimator import Calibrator, ChurnClassifier

FORMAT = "churnmodel-bundle/1"
CHAMPION_POINTER = "champion"
"""File in an export folder that names the champion's folder."""
FILES = ("model.txt", "calibrator.json", "features.json", "config.json", "training.json")


@dataclass(frozen=True)
class ModelBundle:
    """A fitted classifier with the feature layout and configuration it needs."""

    classifier: ChurnClassifier
    specs: tuple[FeatureSpec, ...]
    config: RunConfig
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Feature columns in training order."""
        return [s.name for s in self.specs]

    def prepare(self, features: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in order and with training dtypes (text -> category)."""
        missing = [n for n in self.feature_names if n not in features.columns]
        if missing:
            raise ModelError(
                f"feature matrix: expected the model's {len(self.specs)} feature columns; "
                f"{len(missing)} missing (e.g. {', '.join(missing[:3])})"
            )
        out = features[self.feature_names].copy()
        for spec in self.specs:
            column = out[spec.name]
            if spec.dtype == "category" and not isinstance(column.dtype, pd.CategoricalDtype):
                out[spec.name] = column.astype("category")
            elif spec.dtype == "float64" and column.dtype != np.float64:
                out[spec.name] = column.astype("float64")
        return out

    def categories(self) -> dict[str, list[object]]:
        """The values each categorical feature had in training (LightGBM's own record)."""
        names = [s.name for s in self.specs if s.dtype == "category"]
        stored = self.classifier.booster_.pandas_categorical or []
        return dict(zip(names, stored, strict=True))

    def predict(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Calibrated churn probabilities, one per row."""
        return self.classifier.predict_proba(self.prepare(features))[:, 1]


def save_bundle(bundle: ModelBundle, directory: Path) -> Path:
    """Write the bundle atomically into `directory` (replacing an older one)."""
    contents = {
        "model.txt": bundle.classifier.booster_.model_to_string(),
        "calibrator.json": _json(bundle.classifier.calibrator_.to_dict()),
        "features.json": _json([asdict(s) for s in bundle.specs]),
        "config.json": bundle.config.model_dump_json(indent=2),
        "training.json": _json(bundle.training),
    }
    with atomic_directory(directory) as tmp:
        for name, text in contents.items():
            (tmp / name).write_text(text)
        manifest = {"format": FORMAT, "sha256": {n: _sha256(tmp / n) for n in FILES}}
        (tmp / "MANIFEST.json").write_text(_json(manifest))
    return directory


def load_bundle(directory: Path) -> ModelBundle:
    """Read a bundle, refusing files whose sha256 does not match the manifest."""
    directory = Path(directory)
    manifest_path = directory / "MANIFEST.json"
    if not manifest_path.is_file():
        raise ModelError(f"model bundle {directory}: MANIFEST.json not found; not a model bundle")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ModelError(
            f"model bundle {directory}: expected format {FORMAT}, got {manifest.get('format')!r}"
        )
    for name in FILES:
        path = directory / name
        expected = manifest["sha256"].get(name)
        actual = _sha256(path) if path.is_file() else "missing"
        if actual != expected:
            raise ModelError(
                f"model bundle {directory}: {name} expected sha256 {expected}, got {actual}; "
                "the file was changed or damaged after saving"
            )
    booster = lgb.Booster(model_str=(directory / "model.txt").read_text())
    calibrator = Calibrator.from_dict(json.loads((directory / "calibrator.json").read_text()))
    specs = tuple(FeatureSpec(**s) for s in json.loads((directory / "features.json").read_text()))
    return ModelBundle(
        classifier=ChurnClassifier.from_parts(booster, calibrator),
        specs=specs,
        config=RunConfig.model_validate_json((directory / "config.json").read_text()),
        training=json.loads((directory / "training.json").read_text()),
    )


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate_bundle(path: Path) -> Path:
    """The bundle folder inside what a user may point at.

    Accepted: a bundle folder; an MLflow model folder (bundle under
    `artifacts/bundle`); an export folder holding a `champion` pointer file;
    or the pointer file itself.
    """
    path = Path(path)
    if path.is_file():  # the pointer file names a folder beside it
        path = path.parent / path.read_text().strip()
    elif (path / CHAMPION_POINTER).is_file():
        path = path / (path / CHAMPION_POINTER).read_text().strip()
    for candidate in (path, path / "artifacts" / "bundle", path / "bundle"):
        if (candidate / "MANIFEST.json").is_file():
            return candidate
    raise ModelError(
        f"model {path}: expected a model bundle, an MLflow model folder or an export folder "
        "with a 'champion' pointer; found none (train one with `churnmodel train`)"
    )
