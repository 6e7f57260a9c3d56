"""The MLflow model registry: versions, the champion/challenger aliases, and exports.

The decision itself is `churnmodel.registry.promotion.decide`; this module
only reads and moves aliases. An exported champion is an ordinary MLflow
model folder under `models/` plus a `models/champion` pointer file, so a
batch job can score without a tracking server.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from churnmodel._io import atomic_directory, atomic_path, current_umask, file_lock, scratch_folder
from churnmodel.config import MlflowConfig
from churnmodel.errors import ModelError
from churnmodel.registry.bundle import CHAMPION_POINTER, ModelBundle, load_bundle, locate_bundle
from churnmodel.tracking.runs import tracking_uri, use_tracking

log = logging.getLogger(__name__)


def register_version(model_uri: str, name: str) -> str:
    """Register a logged model under `name`; returns the new version number."""
    return str(mlflow.register_model(model_uri, name).version)


def set_alias(name: str, alias: str, version: str) -> None:
    """Point `alias` (challenger, champion) at `version`."""
    MlflowClient().set_registered_model_alias(name, alias, version)


NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
"""Error codes MLflow uses for an unknown registered model and for an unknown alias."""


def version_of_alias(name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or alias does not exist.

    Any other failure (say, an unreachable server) is raised: treating it as
    "no champion" would promote the challenger unchecked.
    """
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return None
        raise


def load_model_bundle(model: str, config: MlflowConfig) -> tuple[ModelBundle, str]:
    """Load a model given as `models:/...`, `runs:/...` or a local folder; returns a label too.

    Local folders may be a bundle, an MLflow model folder or an export folder
    with a `champion` pointer; those never touch MLflow.
    """
    if not model.startswith(("models:/", "runs:/")):
        bundle = locate_bundle(Path(model))
        return load_bundle(bundle), _local_label(bundle)
    use_tracking(config)
    with scratch_folder("model") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=str(tmp))
        except MlflowException as exc:
            hint = " (no model has been trained and promoted yet: run `churnmodel train`)"
            missing = model.endswith("@champion") and exc.error_code in NOT_FOUND
            raise ModelError(
                f"model {model}: not found in the registry {tracking_uri(config)}"
                f"{hint if missing else ''} ({exc.message})"
            ) from exc
        return load_bundle(locate_bundle(Path(local))), _registry_label(model)


def _registry_label(model: str) -> str:
    """`models:/churnmodel@champion` -> `churnmodel v3 (champion)`; other URIs as given."""
    name, _, alias = model.removeprefix("models:/").partition("@")
    if model.startswith("models:/") and alias:
        version = version_of_alias(name, alias)
        return f"{name} v{version} ({alias})" if version else model
    return model


def _local_label(bundle: Path) -> str:
    """The exported folder a located bundle belongs to, e.g. `models/churnmodel-v3`."""
    folder = bundle.parent.parent if bundle.parent.name == "artifacts" else bundle
    return str(folder)


def promotion_lock(
    config: MlflowConfig, waiting: Callable[[], None] | None = None
) -> AbstractContextManager[None]:
    """The lock every promotion and export repair holds (a file in the export folder).

    Two trainings that finish together then decide one after the other, and
    the second compares itself with the champion the first may have set.
    """
    return file_lock(Path(config.export_dir) / PROMOTION_LOCK, waiting)


PROMOTION_LOCK = ".promotion.lock"


def reconcile_export(name: str, export_dir: Path) -> str | None:
    """Export the registry's champion again when the export folder points elsewhere.

    A run killed between moving the alias and writing the export leaves the
    two disagreeing; the registry is the truth and the export its copy.
    Returns what was repaired, or None. Call it under `promotion_lock`.
    """
    version = version_of_alias(name, "champion")
    if version is None:
        return None
    export_dir = Path(export_dir)
    pointer = export_dir / CHAMPION_POINTER
    expected = f"{name}-v{version}"
    current = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None
    if current == expected and (export_dir / expected).is_dir():
        return None
    message = (
        f"{pointer} pointed at {current or 'nothing'} while the registry's champion is "
        f"{name} v{version} (an interrupted promotion); exported v{version} again"
    )
    export_version(name, version, export_dir)
    log.warning(message)
    return message


def repair_export(config: MlflowConfig) -> str | None:
    """`reconcile_export` for a scoring run: on the configured store, never fatal.

    Scoring with the registry's champion still works when the export folder
    is read-only or the store cannot be asked; that is logged, not raised.
    """
    try:
        use_tracking(config)
        with promotion_lock(config):
            return reconcile_export(config.registered_model, Path(config.export_dir))
    except (OSError, MlflowException) as exc:
        log.warning(
            "could not check the export in %s against the registry (%s)", config.export_dir, exc
        )
        return None


def export_version(name: str, version: str, export_dir: Path) -> Path:
    """Copy a registered version to `export_dir/<name>-v<version>` and point `champion` at it."""
    target = Path(export_dir) / f"{name}-v{version}"
    with scratch_folder("export") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp)
        )
        with atomic_directory(target) as staging:
            shutil.copytree(local, staging, dirs_exist_ok=True)
            staging.chmod(
                0o777 & ~current_umask()
            )  # copytree copied the 0700 download folder's mode
    with atomic_path(Path(export_dir) / CHAMPION_POINTER) as pointer:
        pointer.write_text(f"{target.name}\n")
    return target
