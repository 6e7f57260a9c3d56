"""What each feature is: name, family, dtype and a plain-language description.

The descriptions are written for a retention team, not for a data
scientist: they end up as the reasons in the outreach list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import ibis
import ibis.expr.types as ir

from churnmodel._text import slug
from churnmodel.pointintime import Lookup

__all__ = ["FeatureFamily", "FeatureSpec", "Features", "described", "slug"]

Dtype = Literal["float64", "category"]


@dataclass(frozen=True)
class FeatureSpec:
    """One column of the feature matrix."""

    name: str
    family: str
    description: str
    dtype: Dtype = "float64"


Features = list[tuple[FeatureSpec, ir.Value]]


@dataclass(frozen=True)
class FeatureFamily:
    """A family of features, declared in two steps.

    `lookup` names the windowed aggregates the family needs (or None); the
    matrix runs it as one history pass and joins the result onto the spine.
    `finish` turns that table into the family's features, possibly joining
    extra columns onto it first. Keeping the two apart lets the matrix decide
    how passes are run and stored, while each family stays one small unit.
    """

    name: str
    lookup: Lookup | None
    finish: Callable[[ibis.Table], tuple[ibis.Table, Features]]


def described(family: str, features: dict[str, tuple[ir.Value, str]]) -> Features:
    """(spec, expression) pairs from ``name -> (expression, description)``, as float64."""
    return [(FeatureSpec(n, family, d), e.cast("float64")) for n, (e, d) in features.items()]
