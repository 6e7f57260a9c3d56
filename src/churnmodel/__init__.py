"""churnmodel: customer churn prediction from transaction and engagement history."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("churnmodel")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["__version__"]
