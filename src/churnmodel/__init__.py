"""churnmodel: customer churn prediction from transaction and engagement history.

The verbs of the command line are functions here, each taking a `RunConfig`:

    import churnmodel as cm
    config = cm.load_config("churn.toml")
    features = cm.build_features(config)
    fitted = cm.fit(features)             # backtest and refit, no MLflow, nothing written
    outcome = cm.train(config, features)  # the same, logged, registered, promoted
    run = cm.score(config)                # the outreach list of the champion

`check`, `evaluate`, `monitor`, `kpis` and `train_uplift` (past campaigns,
docs/uplift.md) complete the set; `cm.score(config, budget=cm.Budget(500),
uplift=Path("out/uplift"))` adds the budgeted contact list, and
`ChurnClassifier` is the model as a scikit-learn estimator.

Every name is imported on first use, so `import churnmodel` stays light: a
Spark worker that unpickles a model bundle, or `churnmodel --help`, never
loads MLflow, Optuna, matplotlib or PySpark.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

try:
    __version__ = _version("churnmodel")
except _PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

_PUBLIC = {
    "RunConfig": ("churnmodel.config", "RunConfig"),
    "load_config": ("churnmodel.config", "load_config"),
    "simulate": ("churnmodel.data.simulate", "simulate"),
    "ChurnClassifier": ("churnmodel.model.estimator", "ChurnClassifier"),
    "check": ("churnmodel.workflows", "check_data"),
    "load_data": ("churnmodel.workflows", "load_data"),
    "build_features": ("churnmodel.workflows", "build_features"),
    "write_features": ("churnmodel.workflows", "write_features"),
    "fit": ("churnmodel.workflows", "fit"),
    "train": ("churnmodel.workflows", "train"),
    "evaluate": ("churnmodel.workflows", "evaluate"),
    "score": ("churnmodel.workflows", "score"),
    "write_score_outputs": ("churnmodel.workflows", "write_score_outputs"),
    "monitor": ("churnmodel.workflows", "monitor"),
    "kpis": ("churnmodel.workflows", "compute_kpis"),
    "train_uplift": ("churnmodel.uplift.run", "train_uplift"),
    "Budget": ("churnmodel.uplift.targeting", "Budget"),
}
"""Public name -> (module, attribute), imported when first asked for."""

__all__ = [
    "Budget",
    "ChurnClassifier",
    "RunConfig",
    "__version__",
    "build_features",
    "check",
    "evaluate",
    "fit",
    "kpis",
    "load_config",
    "load_data",
    "monitor",
    "score",
    "simulate",
    "train",
    "train_uplift",
    "write_features",
    "write_score_outputs",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports
    from churnmodel.config import RunConfig as RunConfig
    from churnmodel.config import load_config as load_config
    from churnmodel.data.simulate import simulate as simulate
    from churnmodel.model.estimator import ChurnClassifier as ChurnClassifier
    from churnmodel.uplift.run import train_uplift as train_uplift
    from churnmodel.uplift.targeting import Budget as Budget
    from churnmodel.workflows import build_features as build_features
    from churnmodel.workflows import check_data as check
    from churnmodel.workflows import compute_kpis as kpis
    from churnmodel.workflows import evaluate as evaluate
    from churnmodel.workflows import fit as fit
    from churnmodel.workflows import load_data as load_data
    from churnmodel.workflows import monitor as monitor
    from churnmodel.workflows import score as score
    from churnmodel.workflows import train as train
    from churnmodel.workflows import write_features as write_features
    from churnmodel.workflows import write_score_outputs as write_score_outputs


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'churnmodel' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(_import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names only (plus the submodules already imported)."""
    loaded = [name for name, value in globals().items() if type(value).__name__ == "module"]
    return sorted({*__all__, *(n for n in loaded if not n.startswith("_"))})
