"""NULL-aware arithmetic shared by the feature families."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir


def zero_if_null(value: ir.NumericValue) -> ir.NumericValue:
    """A SQL sum over no rows is NULL; a count or an amount over no rows is 0."""
    return ibis.coalesce(value, 0)


def ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """Numerator / denominator; NULL (not infinity) when the denominator is 0 or NULL."""
    quotient = numerator.cast("float64") / denominator
    return ibis.ifelse(denominator > 0, quotient, ibis.null("float64"))
