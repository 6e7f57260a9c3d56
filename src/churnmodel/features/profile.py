"""Who the customer is: static attributes and how long they have been a customer.

Attributes are read only for customers whose signup date lies before the
cutoff (or is unknown): a customer record that starts after the cutoff is
information from the future. Attributes are the customer's current values;
if a plan changes over time, give the history as events instead.
"""

from __future__ import annotations

import ibis

from churnmodel.config import ProfileConfig
from churnmodel.errors import DataContractError
from churnmodel.features.catalog import FeatureFamily, FeatureSpec
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


def profile_features(
    customers: ibis.Table, spine: ibis.Table, config: ProfileConfig
) -> FeatureFamily:
    """Static attributes as categoricals, and tenure in days since signup."""
    attributes = profile_attributes(customers, config)
    has_signup = "signup_date" in customers.columns
    signup = customers.signup_date if has_signup else ibis.null("timestamp")
    known = customers.select(
        "customer_id", signup_date=signup, **{a: customers[a].cast("string") for a in attributes}
    )
    joined = spine.select("customer_id", "cutoff").left_join(known, "customer_id")
    visible = joined.signup_date.isnull() | before(joined.signup_date, joined.cutoff)
    tenure = day_number(joined.cutoff) - day_number(joined.signup_date)
    columns = {a: ibis.ifelse(visible, joined[a], ibis.null("string")) for a in attributes}
    specs = [
        FeatureSpec(a, FAMILY, f"Customer {a.replace('_', ' ')}", "category") for a in attributes
    ]
    if has_signup:
        columns["tenure_days"] = ibis.ifelse(visible, tenure.cast("float64"), ibis.null("float64"))
        specs.append(FeatureSpec("tenure_days", FAMILY, "Days since the customer signed up"))
    table = joined.select("customer_id", "cutoff", **columns)
    return FeatureFamily(FAMILY, table, tuple(specs))
