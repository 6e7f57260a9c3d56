"""Who the customer is: static attributes and how long they have been a customer.

Attributes are read only for customers whose signup date lies before the
cutoff (or is unknown): a customer record that starts after the cutoff is
information from the future. Attributes are the customer's current values;
if a plan changes over time, give the history as events instead.
"""

from __future__ import annotations

from functools import partial

import ibis

from churnmodel.config import ProfileConfig
from churnmodel.errors import DataContractError
from churnmodel.features.catalog import FeatureFamily, Features, FeatureSpec
from churnmodel.pointintime import before, day_number

FAMILY = "profile"


def profile_attributes(customers: ibis.Table, config: ProfileConfig) -> list[str]:
    """The static attributes to use: configured, or every text column but the id."""
    if config.attributes is None:
        schema = customers.schema()
        return [c for c in customers.columns if c != "customer_id" and schema[c].is_string()]
    missing = [a for a in config.attributes if a not in customers.columns]
    if missing:
        raise DataContractError(
            "customers",
            missing[0],
            f"the profile attributes {config.attributes} as columns; "
            f"the table has {', '.join(customers.columns)}",
        )
    return list(config.attributes)


def profile_family(customers: ibis.Table, config: ProfileConfig) -> FeatureFamily:
    """Static attributes as categoricals, and tenure in days since signup."""
    return FeatureFamily(FAMILY, None, partial(_features, customers=customers, config=config))


def _features(
    t: ibis.Table, customers: ibis.Table, config: ProfileConfig
) -> tuple[ibis.Table, Features]:
    attributes = profile_attributes(customers, config)
    has_signup = "signup_date" in customers.columns
    signup = customers.signup_date if has_signup else ibis.null("timestamp")
    known = customers.select(
        "customer_id",
        _signup=signup,
        **{f"_attr_{a}": customers[a].cast("string") for a in attributes},
    )
    t = t.left_join(known, "customer_id").select(*t.columns, *known.columns[1:])
    visible = t._signup.isnull() | before(t._signup, t.cutoff)
    features: Features = [
        (
            FeatureSpec(a, FAMILY, f"Customer {a.replace('_', ' ')}", "category"),
            ibis.ifelse(visible, t[f"_attr_{a}"], ibis.null("string")),
        )
        for a in attributes
    ]
    if has_signup:
        tenure = (day_number(t.cutoff) - day_number(t._signup)).cast("float64")
        features.append(
            (
                FeatureSpec("tenure_days", FAMILY, "Days since the customer signed up"),
                ibis.ifelse(visible, tenure, ibis.null("float64")),
            )
        )
    return t, features
