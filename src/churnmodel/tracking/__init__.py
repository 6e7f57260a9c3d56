"""Everything that talks to MLflow: runs, the pyfunc model, the registry and exports.

This is the only package that imports mlflow. The model bundle and the
promotion rule live in `churnmodel.registry`, so scoring from an exported
folder never needs MLflow or a tracking server.
"""

from churnmodel.tracking.registry import (
    export_version,
    load_model_bundle,
    promotion_lock,
    reconcile_export,
    register_version,
    repair_export,
    set_alias,
    version_of_alias,
)
from churnmodel.tracking.runs import (
    PYFUNC_CODE,
    TrainingRun,
    log_evaluation_run,
    log_monitor_run,
    start_training_run,
    use_tracking,
)

__all__ = [
    "PYFUNC_CODE",
    "TrainingRun",
    "export_version",
    "load_model_bundle",
    "log_evaluation_run",
    "log_monitor_run",
    "promotion_lock",
    "reconcile_export",
    "register_version",
    "repair_export",
    "set_alias",
    "start_training_run",
    "use_tracking",
    "version_of_alias",
]
