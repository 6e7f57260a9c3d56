"""Who the customer is: static attributes and how long they have been a customer.

Attributes are read only for customers whose signup date lies before the
cutoff (or is unknown): a customer record that starts after the cutoff is
information from the future. Attributes are the customer's current values;
if a plan changes over time, give the history as events instead.

Three kinds (`ProfileConfig`, found in the data by `churnmodel.discovery`):
categories (text), numbers (also numbers written as text, as CSV files give
them) and dates, which become an age in days at the cutoff (missing when the
date is not before the cutoff: it had not happened yet).
"""

from __future__ import annotations

from functools import partial

import ibis
import ibis.expr.types as ir

from churnmodel.config import ProfileConfig
from churnmodel.errors import DataContractError
from churnmodel.features.catalog import FeatureFamily, Features, FeatureSpec
from churnmodel.pointintime import before, day_number

FAMILY = "profile"


def profile_columns(customers: ibis.Table, config: ProfileConfig) -> dict[str, list[str]]:
    """The configured attribute, numeric and date columns (missing ones are an error)."""
    chosen = {
        "attributes": config.attributes or [],
        "numeric": config.numeric or [],
        "dates": config.dates or [],
    }
    for names in chosen.values():
        missing = [a for a in names if a not in customers.columns]
        if missing:
            raise DataContractError(
                "customers",
                missing[0],
                f"the profile columns {names} to exist; the table has "
                f"{', '.join(customers.columns)}",
            )
    return chosen


def profile_family(customers: ibis.Table, config: ProfileConfig) -> FeatureFamily:
    """Attributes as categoricals, numbers, ages of dates, and tenure in days since signup."""
    return FeatureFamily(FAMILY, None, partial(_features, customers=customers, config=config))


def _features(
    t: ibis.Table, customers: ibis.Table, config: ProfileConfig
) -> tuple[ibis.Table, Features]:
    chosen = profile_columns(customers, config)
    has_signup = "signup_date" in customers.columns
    signup = customers.signup_date if has_signup else ibis.null("timestamp")
    known = customers.select(
        "customer_id",
        _signup=signup,
        **{f"_attr_{a}": customers[a].cast("string") for a in chosen["attributes"]},
        **{f"_num_{a}": _as_number(customers[a]) for a in chosen["numeric"]},
        **{f"_date_{a}": _as_timestamp(customers[a]) for a in chosen["dates"]},
    )
    t = t.left_join(known, "customer_id").select(*t.columns, *known.columns[1:])
    visible = t._signup.isnull() | before(t._signup, t.cutoff)
    features: Features = [
        (
            FeatureSpec(a, FAMILY, f"Customer {a.replace('_', ' ')}", "category"),
            ibis.ifelse(visible, t[f"_attr_{a}"], ibis.null("string")),
        )
        for a in chosen["attributes"]
    ]
    features += [
        (
            FeatureSpec(a, FAMILY, f"Customer {a.replace('_', ' ')}"),
            ibis.ifelse(visible, t[f"_num_{a}"], ibis.null("float64")),
        )
        for a in chosen["numeric"]
    ]
    for a in chosen["dates"]:
        date = t[f"_date_{a}"]
        age = (day_number(t.cutoff) - day_number(date)).cast("float64")
        features.append(
            (
                FeatureSpec(
                    f"{a}_age_days", FAMILY, f"Days since the customer's {a.replace('_', ' ')}"
                ),
                ibis.ifelse(visible & before(date, t.cutoff), age, ibis.null("float64")),
            )
        )
    if has_signup:
        tenure = (day_number(t.cutoff) - day_number(t._signup)).cast("float64")
        features.append(
            (
                FeatureSpec("tenure_days", FAMILY, "Days since the customer signed up"),
                ibis.ifelse(visible, tenure, ibis.null("float64")),
            )
        )
    return t, features


def _as_number(value: ir.Column) -> ir.Value:
    """Numbers stay numbers; text (from CSV) is read as a number, unreadable text as missing."""
    if value.type().is_string():
        return value.strip().try_cast("float64")
    return value.cast("float64")


def _as_timestamp(value: ir.Column) -> ir.Value:
    """Dates and timestamps as naive UTC timestamps, like the contract's timestamp columns."""
    if value.type().is_string():
        return value.strip().try_cast("timestamp('UTC')").cast("timestamp")
    return value.cast("timestamp")
