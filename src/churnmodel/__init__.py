"""churnmodel: customer churn prediction from transaction and engagement history."""

from importlib.metadata import PackageNotFoundError, version

from churnmodel.config import RunConfig, load_config
from churnmodel.data.simulate import simulate
from churnmodel.workflows import build_features, load_data, write_features

try:
    __version__ = version("churnmodel")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "RunConfig",
    "__version__",
    "build_features",
    "load_config",
    "load_data",
    "simulate",
    "write_features",
]
