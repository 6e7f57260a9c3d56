"""What each feature is: name, family, dtype and a plain-language description.

The descriptions are written for a retention team, not for a data
scientist: they end up as the reasons in the outreach list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import ibis

Dtype = Literal["float64", "category"]


@dataclass(frozen=True)
class FeatureSpec:
    """One column of the feature matrix."""

    name: str
    family: str
    description: str
    dtype: Dtype = "float64"


@dataclass(frozen=True)
class FeatureFamily:
    """A builder's result: one row per spine row, keyed by (customer_id, cutoff)."""

    name: str
    table: ibis.Table
    specs: tuple[FeatureSpec, ...]


def slug(value: str) -> str:
    """A column-safe form of a user's name for something (e.g. an event type).

    >>> slug("Feature Use!")
    'feature_use'
    """
    cleaned = re.sub(r"[^0-9a-z]+", "_", value.lower()).strip("_")
    return cleaned or "blank"
