"""A trained model as a folder of plain files, checked by sha256 on load.

    model.json        which candidate shipped and how its parts combine
    model.txt         LightGBM's own text format (the trees the backtest chose,
                      with the categories they were trained on), if it has trees
    linear.json       the logistic regression as numbers, if it has one
    calibrator.json   the calibration curve or Platt coefficients
    features.json     feature names, families, dtypes and descriptions, in order
    config.json       the run configuration it was trained with
    training.json     cutoffs, parameters, backtest metrics and the data facts
    MANIFEST.json     format version and the sha256 of every file above, and of
                      the code MLflow runs to load the model (pyfunc_model.py)

Version 1 bundles (LightGBM only, before the backtest) still load.

No pickles: every file is text a person can read, and loading one never runs
code. A changed or truncated file fails the manifest check with a clear error,
and so does an edited pyfunc_model.py beside an MLflow model's bundle (MLflow
would run it on `mlflow.pyfunc.load_model`).

A sha256 manifest catches damage, not a deliberate edit with a recomputed
manifest: trust comes from where bundles are stored. Teams that want tamper
evidence set `CHURNMODEL_BUNDLE_KEY` (a secret) for training and scoring: the
manifest is then signed (HMAC-SHA256) and a bundle without the right
signature is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
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
from churnmodel.features.bgnbd import BgNbd
from churnmodel.features.catalog import FeatureSpec
from churnmodel.model.calibration import Calibrator
from churnmodel.model.churn_model import ChurnModel
from churnmodel.model.linear import LinearScorer

FORMAT = "churnmodel-bundle/2"
FORMAT_V1 = "churnmodel-bundle/1"
CHAMPION_POINTER = "champion"
"""File in an export folder that names the champion's folder."""
COMMON_FILES = ("calibrator.json", "features.json", "config.json", "training.json")
KEY_VARIABLE = "CHURNMODEL_BUNDLE_KEY"
"""A secret that signs and checks every manifest (HMAC-SHA256) when set."""
PYFUNC_LOADER = "mlflow.pyfunc.loaders.code_model"
"""How MLflow loads a model logged from code: it runs the file named by model_code_path."""


@dataclass(frozen=True)
class ModelBundle:
    """A fitted classifier with the feature layout and configuration it needs."""

    model: ChurnModel
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
        """The values each categorical feature the model reads had in training."""
        return self.model.categories()

    def bgnbd(self) -> BgNbd | None:
        """The BG/NBD fit of the newest training cutoff, which scoring uses."""
        stored = self.training.get("bgnbd")
        return BgNbd.from_dict(stored) if stored else None

    def predict(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Calibrated churn probabilities, one per row."""
        return self.model.predict_proba(self.prepare(features))[:, 1]


def save_bundle(
    bundle: ModelBundle, directory: Path, code: Mapping[str, Path] | None = None
) -> Path:
    """Write the bundle atomically into `directory` (replacing an older one).

    `code` names the files that will run when MLflow loads the model (file
    name in the model folder -> the file now); their sha256 go into the
    manifest, so an edit after saving is refused on load.
    """
    model = bundle.model
    contents = {
        "model.json": as_json({"name": model.name, "tree_weight": model.tree_weight}),
        "calibrator.json": as_json(model.calibrator.to_dict()),
        "features.json": as_json([asdict(s) for s in bundle.specs]),
        "config.json": bundle.config.model_dump_json(indent=2),
        "training.json": as_json(bundle.training),
    }
    if model.booster is not None:
        contents["model.txt"] = model.booster.model_to_string()
    if model.linear is not None:
        contents["linear.json"] = as_json(model.linear.to_dict())
    return write_manifested(directory, contents, FORMAT, code)


def write_manifested(
    directory: Path,
    contents: Mapping[str, str],
    version: str,
    code: Mapping[str, Path] | None = None,
) -> Path:
    """Write text files and their MANIFEST.json (format, sha256, signature) atomically.

    Shared by every saved model (the churn bundle, the uplift bundle), so
    all are checked, and signed with `CHURNMODEL_BUNDLE_KEY`, the same way.
    """
    with atomic_directory(directory) as tmp:
        for name, text in contents.items():
            (tmp / name).write_text(text)
        manifest: dict[str, Any] = {
            "format": version,
            "sha256": {n: _sha256(tmp / n) for n in sorted(contents)},
        }
        if code:
            manifest["code"] = {name: _sha256(path) for name, path in sorted(code.items())}
        key = os.environ.get(KEY_VARIABLE)
        if key:
            manifest["hmac"] = _signature(manifest, key)
        (tmp / "MANIFEST.json").write_text(as_json(manifest))
    return directory


def load_bundle(directory: Path) -> ModelBundle:
    """Read a bundle, refusing files whose sha256 does not match the manifest.

    Every way a bundle can be damaged (a truncated or garbage file, a
    missing key, a calibrator that would give probabilities outside [0, 1])
    is a `ModelError` naming the file, never a traceback.
    """
    directory = Path(directory)
    formats = {FORMAT: (*COMMON_FILES, "model.json"), FORMAT_V1: (*COMMON_FILES, "model.txt")}
    version = checked_manifest(directory, formats, "model bundle")
    try:
        specs = tuple(FeatureSpec(**s) for s in _read_json(directory, "features.json"))
        config = RunConfig.model_validate_json((directory / "config.json").read_text())
        model = _read_model(directory, version == FORMAT_V1)
    except ModelError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, lgb.basic.LightGBMError) as exc:
        raise ModelError(f"model bundle {directory}: cannot be read ({exc}); damaged") from exc
    training = _read_json(directory, "training.json")
    if not isinstance(training, dict):
        raise ModelError(f"model bundle {directory}: training.json is not an object; damaged")
    return ModelBundle(model=model, specs=specs, config=config, training=training)


def checked_manifest(directory: Path, formats: Mapping[str, tuple[str, ...]], what: str) -> str:
    """The format of a folder written by `write_manifested`, once every file checks out.

    `formats` maps each accepted format to the files it cannot do without.
    Refused, as a `ModelError` naming the file: no manifest, another format,
    a bad signature, and any listed or required file that is missing or
    whose sha256 differs (changed or damaged after saving).
    """
    manifest_path = directory / "MANIFEST.json"
    if not manifest_path.is_file():
        raise ModelError(f"{what} {directory}: MANIFEST.json not found; this is no saved {what}")
    manifest = _read_json(directory, "MANIFEST.json", what)
    version = manifest.get("format") if isinstance(manifest, dict) else None
    if not isinstance(version, str) or version not in formats:
        raise ModelError(
            f"{what} {directory}: expected format {next(iter(formats))}, got {version!r}"
        )
    listed = manifest.get("sha256")
    if not isinstance(listed, dict):
        raise ModelError(f"{what} {directory}: MANIFEST.json has no sha256 table; damaged")
    _check_signature(directory, manifest, what)
    for name in sorted({*formats[version], *listed}):
        path = directory / name
        if Path(name).name != name:
            raise ModelError(f"{what} {directory}: MANIFEST.json lists {name!r}, not a file name")
        expected = listed.get(name)
        actual = _sha256(path) if path.is_file() else "missing"
        if actual != expected:
            raise ModelError(
                f"{what} {directory}: {name} expected sha256 {expected}, got {actual}; "
                "the file was changed or damaged after saving"
            )
    return version


def _signature(manifest: Mapping[str, Any], key: str) -> str:
    body = as_json({k: v for k, v in manifest.items() if k != "hmac"}).encode()
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _check_signature(directory: Path, manifest: Mapping[str, Any], what: str) -> None:
    """With `CHURNMODEL_BUNDLE_KEY` set, only a manifest signed with that key is trusted."""
    key = os.environ.get(KEY_VARIABLE)
    if not key:
        return
    signed = manifest.get("hmac")
    if not isinstance(signed, str) or not hmac.compare_digest(signed, _signature(manifest, key)):
        state = "is not signed" if signed is None else "has a signature that does not match"
        raise ModelError(
            f"{what} {directory}: MANIFEST.json {state} with the key in {KEY_VARIABLE}; "
            "it was not saved by a training run holding that key, or it was edited since"
        )


def check_model_code(model_folder: Path, bundle: Path) -> None:
    """Refuse an MLflow model folder whose loading code differs from what was saved.

    On `mlflow.pyfunc.load_model` MLflow runs the file that `MLmodel`'s
    model_code_path names (by its base name, in the model folder); it must
    be one the manifest covers, unchanged, and no pickled model or other
    code (`code_paths`) may be added. Bundles saved before the manifest covered
    code are not checked.
    """
    manifest = _read_json(bundle, "MANIFEST.json")
    covered = manifest.get("code") if isinstance(manifest, dict) else None
    if not isinstance(covered, dict):
        return
    pyfunc = _pyfunc_flavor(model_folder)
    code_path = pyfunc.get("model_code_path")
    entry = Path(str(code_path)).name if code_path else None
    pickled = pyfunc.get("python_model")  # a cloudpickled model would run on unpickling
    if (
        entry not in covered
        or pyfunc.get("loader_module") != PYFUNC_LOADER
        or pickled
        or pyfunc.get("code")
    ):
        raise ModelError(
            f"model {model_folder}: MLmodel loads code (model_code_path {code_path!r}, loader "
            f"{pyfunc.get('loader_module')!r}, python_model {pickled!r}, code paths "
            f"{pyfunc.get('code')!r}) that the bundle's manifest does not cover; the model "
            "folder was changed after training"
        )
    for name, expected in covered.items():
        path = model_folder / name
        actual = _sha256(path) if path.is_file() and Path(name).name == name else "missing"
        if actual != expected:
            raise ModelError(
                f"model {model_folder}: {name} expected sha256 {expected}, got {actual}; "
                "code that MLflow runs on load was changed after training"
            )


def _pyfunc_flavor(model_folder: Path) -> dict[str, Any]:
    import yaml  # MLflow's own dependency, needed only for MLflow model folders

    try:
        described = yaml.safe_load((model_folder / "MLmodel").read_text(encoding="utf-8"))
        flavor = described["flavors"]["python_function"]
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        raise ModelError(f"model {model_folder}: MLmodel cannot be read ({exc})") from exc
    if not isinstance(flavor, dict):
        raise ModelError(f"model {model_folder}: MLmodel has no python_function flavour")
    return flavor


def _read_json(directory: Path, name: str, what: str = "model bundle") -> Any:
    try:
        return json.loads((directory / name).read_text())
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelError(f"{what} {directory}: {name} is not valid JSON ({exc})") from exc


def _read_model(directory: Path, v1: bool) -> ChurnModel:
    """The model's parts; a version 1 bundle is LightGBM alone."""
    calibrator = Calibrator.from_dict(_read_json(directory, "calibrator.json"))
    if not calibrator.keeps_probabilities():
        raise ModelError(
            f"model bundle {directory}: calibrator.json would give probabilities outside [0, 1]"
        )
    trees = directory / "model.txt"
    booster = lgb.Booster(model_str=trees.read_text()) if trees.is_file() else None
    if v1:
        return ChurnModel("lightgbm", booster, None, 1.0, calibrator)
    linear_file = directory / "linear.json"
    linear = (
        LinearScorer.from_dict(_read_json(directory, "linear.json"))
        if linear_file.is_file()
        else None
    )
    described = _read_json(directory, "model.json")
    return ChurnModel(described["name"], booster, linear, described["tree_weight"], calibrator)


def as_json(value: object) -> str:
    """The text of every JSON file of a saved model: sorted keys, indented, stable bytes."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate_bundle(path: Path) -> Path:
    """The bundle folder inside what a user may point at.

    Accepted: a bundle folder; an MLflow model folder (bundle under
    `artifacts/bundle`, its loading code checked by `check_model_code`); an
    export folder holding a `champion` pointer file; or the pointer file itself.
    """
    path = Path(path)
    if path.is_file() and path.name != CHAMPION_POINTER:
        raise ModelError(
            f"model {path}: a file; expected a model bundle folder, an MLflow model folder or "
            "an export folder with a 'champion' pointer"
        )
    if path.is_file():  # the pointer file names a folder beside it
        path = path.parent / _pointed(path)
    elif (path / CHAMPION_POINTER).is_file():
        path = path / _pointed(path / CHAMPION_POINTER)
    for candidate in (path, path / "artifacts" / "bundle", path / "bundle"):
        if (candidate / "MANIFEST.json").is_file():
            if (path / "MLmodel").is_file():
                check_model_code(path, candidate)
            return candidate
    raise ModelError(
        f"model {path}: expected a model bundle, an MLflow model folder or an export folder "
        "with a 'champion' pointer; found none (train one with `churnmodel train`)"
    )


def _pointed(pointer: Path) -> str:
    """The folder a `champion` pointer names: one folder beside it, never a path out of it."""
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"champion pointer {pointer}: unreadable ({exc})") from exc
    if not name or Path(name).name != name or name in (".", ".."):
        raise ModelError(
            f"champion pointer {pointer}: {name!r} is not the name of a folder beside it; "
            "the pointer must name one exported version (e.g. churnmodel-v3)"
        )
    return name
