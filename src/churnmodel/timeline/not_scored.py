"""Who is not scored at a date, and why: the eligibility rules of `eligibility.py`, turned around.

Every input customer (an id in any table) is either eligible at the
scoring date (`eligibility.eligible`, and then scored) or here, with the
first reason that applies, in this order:

* signed up on or after the date (a contract not started yet);
* churned before the date;
* no row before the date at all (for a contractual customer: and no
  customers row either);
* contractual, but not in the customers table (no contract to score);
* no qualifying activity in the active window before the date (lapsed:
  these go to the win-back list).

Timestamps meet the date only through `pointintime` (`before`,
`within_history_window`), so the time rule has one home; property tests
check that eligible and not scored are disjoint and add up to the input.
"""

from __future__ import annotations

import datetime as dt

import ibis

from churnmodel.config import LabelConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.pointintime import before, within_history_window

NOT_SCORED_REASONS = {
    "signup": "signed up on or after the scoring date",
    "churned": "churned before the scoring date",
    "no_history": "no transactions or events before the scoring date",
    "no_signup": "not in the customers table (a contractual customer needs a signup row)",
    "inactive": "inactive: no {activity} in the {days} days before the scoring date",
}
OTHER_REASON = "not eligible at the scoring date"


def inactive_reason(label: LabelConfig) -> str:
    """The not-scored reason of lapsed customers, who go to the win-back list instead."""
    return NOT_SCORED_REASONS["inactive"].format(
        activity="purchase" if label.activity == "transactions" else "activity",
        days=label.active_window_days,
    )


def not_scored_customers(
    tables: ValidatedTables, as_of: dt.date, label: LabelConfig, scored: ibis.Table
) -> ibis.Table:
    """Every customer id in the input not in `scored`, with the first reason that applies.

    An expression, so that each engine computes it where the data is
    (Spark writes it without collecting); ordered by customer id.
    """
    date = ibis.literal(as_of)
    facts = customer_facts(tables, label, as_of)
    facts = facts.anti_join(scored.select("customer_id"), "customer_id")
    has_customer_row = facts.in_customers.fill_null(False)
    no_history = facts.first_seen.isnull()
    if label.contractual:  # a contractual customer needs no activity, only a customers row
        no_history &= ~has_customer_row
    recent = within_history_window(facts.last_active, date, label.active_window_days)
    branches = [
        (facts.signup_date.notnull() & ~before(facts.signup_date, date), "signup"),
        (facts.churn_date.notnull() & before(facts.churn_date, date), "churned"),
        (no_history, "no_history"),
        *([(~has_customer_row, "no_signup")] if label.contractual else []),
    ]
    reason = ibis.cases(
        *[(condition, NOT_SCORED_REASONS[key]) for condition, key in branches],
        (facts.last_active.isnull() | ~recent, inactive_reason(label)),
        else_=OTHER_REASON,
    )
    return facts.select("customer_id", reason=reason).order_by("customer_id")


def customer_facts(tables: ValidatedTables, label: LabelConfig, as_of: dt.date) -> ibis.Table:
    """One row per customer id in any table: signup, churn, first history, last activity.

    One grouped pass per table (first and last timestamp before the date),
    then the small per-customer results are combined: no DISTINCT over the
    tens of millions of raw rows.
    """
    date = ibis.literal(as_of)
    named = tables.tables
    parts = []
    for name, table in named.items():
        if name in ("transactions", "events"):
            earlier = before(table.timestamp, date)
            last = (
                table.timestamp.max(where=earlier)
                if name in label.counts_as_activity
                else ibis.null("timestamp")
            )
            parts.append(
                table.group_by("customer_id").aggregate(
                    first_seen=table.timestamp.min(where=earlier), last_active=last
                )
            )
        else:
            parts.append(
                table.select(
                    "customer_id",
                    first_seen=ibis.null("timestamp"),
                    last_active=ibis.null("timestamp"),
                )
            )
    stacked = ibis.union(*parts)
    facts = stacked.group_by("customer_id").aggregate(
        first_seen=stacked.first_seen.min(), last_active=stacked.last_active.max()
    )
    customers = named.get("customers")
    if customers is not None:
        signup = (
            customers.signup_date if "signup_date" in customers.columns else ibis.null("timestamp")
        )
        rows = customers.select("customer_id", signup_date=signup, in_customers=ibis.literal(True))
        facts = facts.left_join(rows, "customer_id").select(
            *facts.columns, "signup_date", "in_customers"
        )
    else:
        facts = facts.mutate(signup_date=ibis.null("timestamp"), in_customers=ibis.null("boolean"))
    churn = named.get("churn")
    if churn is not None:
        facts = facts.left_join(churn.select("customer_id", "churn_date"), "customer_id").select(
            *facts.columns, "churn_date"
        )
    else:
        facts = facts.mutate(churn_date=ibis.null("timestamp"))
    return facts
