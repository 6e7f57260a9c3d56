"""Cohort retention by signup month: the share of each cohort still active k months later.

A cohort is the customers who signed up in one whole observed calendar
month; with no signup dates at all, a non-contractual business uses the
month of the first qualifying activity. Customers without a signup date,
or who signed up before the first whole month of data (their first months
were never observed), are counted and left out. "Active in month m" follows the business:

* contractual: still a customer at the end of month m (no churn date
  before the first day of month m + 1);
* non-contractual: qualifying activity (`label.activity`) in month m.

Only whole months inside the observed data are filled in; later months
stay missing, so the matrix is the usual triangle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import pandas as pd

from churnmodel.config import LabelConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.engine import collect, scalar
from churnmodel.errors import DataContractError
from churnmodel.kpi.periods import (
    add_months,
    first_whole_period,
    months_between,
    period_of,
    period_start,
)
from churnmodel.timeline.eligibility import activity_rows


@dataclass(frozen=True)
class Cohorts:
    """The tidy cohort table and who could not be placed in a cohort."""

    table: pd.DataFrame  # cohort, months_since, month, cohort_size, active, retention_rate
    without_signup: int  # customers left out: no signup date
    signed_up_earlier: int  # customers left out: signed up before the first whole month
    signup_from: str  # "signup_date" or "first activity"

    def matrix(self) -> pd.DataFrame:
        """Retention rate (%) with cohorts as rows and months since signup as columns."""
        return self.table.pivot(index="cohort", columns="months_since", values="retention_rate")


def cohort_retention(
    tables: ValidatedTables, label: LabelConfig, max_months: int | None = None
) -> Cohorts:
    """The cohort table over every whole observed month (at most `max_months` per cohort)."""
    members, signup_from, without = _members(tables, label)
    first = first_whole_period(tables.observed_from.date(), "month")
    last = add_months(period_start(tables.observed_until.date(), "month"), -1)
    if label.contractual:
        active = _active_contractual(tables, members)
    else:
        active = _active_non_contractual(tables, label, members)
    sizes = collect(members.group_by("cohort").aggregate(cohort_size=members.count()))
    sizes["cohort"] = pd.to_datetime(sizes["cohort"]).dt.date
    observed = (sizes["cohort"] >= first) & (sizes["cohort"] <= last)
    earlier = int(sizes.loc[sizes["cohort"] < first, "cohort_size"].sum())
    table = _cells(sizes[observed], active, last, label, max_months)
    return Cohorts(table, without, earlier, signup_from)


def _members(tables: ValidatedTables, label: LabelConfig) -> tuple[ibis.Table, str, int]:
    customers = tables.get("customers")
    if customers is not None and "signup_date" in customers.columns:
        known = customers.signup_date.notnull()
        without = int(scalar((~known).cast("int64").sum()) or 0)
        members = customers.filter(known)
        return (
            members.select("customer_id", cohort=period_of(members.signup_date, "month")),
            "signup_date",
            without,
        )
    if label.contractual:
        raise DataContractError(
            "customers", "signup_date", "signup dates for the cohorts of a contractual business"
        )
    activity = activity_rows(tables, label)
    first = activity.group_by("customer_id").aggregate(first=activity.timestamp.min())
    return (
        first.select("customer_id", cohort=period_of(first["first"], "month")),
        "first activity",
        0,
    )


def _active_contractual(tables: ValidatedTables, members: ibis.Table) -> pd.DataFrame:
    """Per cohort and churn month: how many members churned then (for survival counts)."""
    churn = tables.tables["churn"].select(
        "customer_id", churn_month=period_of(ibis._.churn_date, "month")
    )
    joined = members.join(churn, "customer_id")
    churned = collect(joined.group_by("cohort", "churn_month").aggregate(churned=joined.count()))
    for column in ("cohort", "churn_month"):
        churned[column] = pd.to_datetime(churned[column]).dt.date
    return churned


def _active_non_contractual(
    tables: ValidatedTables, label: LabelConfig, members: ibis.Table
) -> pd.DataFrame:
    """Per cohort and calendar month: members with qualifying activity in that month."""
    activity = activity_rows(tables, label)
    months = activity.select("customer_id", month=period_of(activity.timestamp, "month")).distinct()
    joined = members.join(months, "customer_id")
    active = collect(
        joined.group_by("cohort", "month").aggregate(active=joined.customer_id.nunique())
    )
    for column in ("cohort", "month"):
        active[column] = pd.to_datetime(active[column]).dt.date
    return active


def _cells(
    sizes: pd.DataFrame,
    active: pd.DataFrame,
    last: dt.date,
    label: LabelConfig,
    max_months: int | None,
) -> pd.DataFrame:
    rows = []
    for cohort, size in sizes.sort_values("cohort").itertuples(index=False):
        month = cohort
        while month <= last:
            k = months_between(cohort, month)
            if max_months is not None and k > max_months:
                break
            rows.append((cohort, k, month, int(size)))
            month = add_months(month, 1)
    cells = pd.DataFrame(rows, columns=["cohort", "months_since", "month", "cohort_size"])
    if label.contractual:
        # active at the end of month m: no churn in any month up to and including m; a churn
        # dated before the signup month counts from the cohort's first month
        month = active["churn_month"].where(
            active["churn_month"] >= active["cohort"], active["cohort"]
        )
        churned = (
            active.assign(month=month).groupby(["cohort", "month"], as_index=False)["churned"].sum()
        )
        cells = cells.merge(churned, on=["cohort", "month"], how="left")
        lost = cells["churned"].fillna(0).astype("int64").groupby(cells["cohort"]).cumsum()
        cells["active"] = cells["cohort_size"] - lost
        cells = cells.drop(columns="churned")
    else:
        cells = cells.merge(active, on=["cohort", "month"], how="left")
        cells["active"] = cells["active"].fillna(0).astype("int64")
    cells["retention_rate"] = 100 * cells["active"] / cells["cohort_size"]
    return cells
