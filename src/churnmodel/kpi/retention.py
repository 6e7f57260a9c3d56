"""Retention, revenue and survey KPIs per period and segment.

Who is a customer is the eligibility rule of the model itself, so the KPIs
and the churn labels never disagree about it:

* contractual: a customer at instant ``t`` signed up before ``t`` (or has no
  signup date) and had not churned before ``t``. *New* in a period: signed
  up in it. *Lost*: a customer at the period start whose churn date falls
  in the period.
* non-contractual: a customer at ``t`` had qualifying activity
  (`label.activity`) in the `active_window_days` before ``t``. *New*: first
  qualifying activity in the data falls in the period. *Lost*: a customer
  at the period start who is no longer one at its end.

Per period (CS, CE: customers at start and end; CN: new customers):

* retention rate ``(CE - CN) / CS * 100``. It is not ``100 - churn rate``:
  new customers who leave within the period pull it down, and (non-
  contractual) returning customers push it up;
* churn rate ``lost / CS * 100``;
* average order value: net revenue (refunds included) / orders, where an
  order is a distinct `order_id` (or a row) with a positive amount;
  purchase frequency: orders / customers who ordered;
* CLV: AOV x purchase frequency x expected lifespan x margin, the lifespan
  being `kpi.lifespan_periods` or ``100 / churn rate`` periods;
* revenue from new customers (new in the period) and from existing ones;
* NPS: % promoters (9-10) minus % detractors (0-6); CSAT: % answers 4-5;
  CES: mean answer; survey response rate: customers who answered any survey
  / customers during the period (at its start, or new in it), in %.

A rate whose denominator is zero is missing (NaN), never 0 or infinity.
Counts are computed by the engine (DuckDB or Spark); only the small
(period x segment) table comes back to pandas for the ratios.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from churnmodel.config import KpiConfig, LabelConfig
from churnmodel.data.validate import ValidatedTables, check_survey_scales
from churnmodel.engine import collect
from churnmodel.errors import DataContractError
from churnmodel.kpi.periods import period_of
from churnmodel.timeline.eligibility import activity_rows, eligible

ALL = "all"
"""`segment_by` and `segment` of the rows over all customers."""
MISSING_SEGMENT = "(missing)"

FLAGS = ("at_start", "at_end", "new", "lost", "responded")
"""0/1 per customer and period (the maximum over sources); the other measures add up."""
MEASURES: dict[str, str] = {
    **dict.fromkeys(FLAGS, "int64"),
    "revenue": "float64",
    "orders": "int64",
    "nps_n": "int64",
    "nps_promoters": "int64",
    "nps_detractors": "int64",
    "csat_n": "int64",
    "csat_satisfied": "int64",
    "ces_n": "int64",
    "ces_sum": "float64",
}


def customer_periods(
    tables: ValidatedTables,
    periods: list[tuple[dt.date, dt.date]],
    label: LabelConfig,
    config: KpiConfig,
) -> ibis.Table:
    """One row per (customer_id, period) with the customer's flags and measures.

    Built as a union of small per-source tables and one group-by, which
    every engine runs as a single pass.
    """
    grid = ibis.memtable(
        pa.table(
            {
                "period": pa.array([s for s, _ in periods], pa.date32()),
                "period_end": pa.array([e for _, e in periods], pa.date32()),
            }
        )
    )
    parts = [
        _at(eligible(tables, [s for s, _ in periods], label), grid, "period", "at_start"),
        _at(eligible(tables, [e for _, e in periods], label), grid, "period_end", "at_end"),
        _new(tables, label, grid, config),
    ]
    if label.contractual:
        churn = tables.tables["churn"]
        parts.append(_in_period(churn, churn.churn_date, grid, config, lost=ibis.literal(1)))
    transactions = tables.get("transactions")
    if transactions is not None:
        parts.append(_purchases(transactions, grid, config))
    events = tables.get("events")
    if events is not None:
        parts.append(_surveys(events, grid, config))
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.union(part)
    per = rows.group_by("customer_id", "period").aggregate(
        **{name: rows[name].max() if name in FLAGS else rows[name].sum() for name in MEASURES}
    )
    # contractual: `lost` so far marks a churn date in the period; only customers count
    left = (1 - per.at_end) if not label.contractual else per.lost
    return per.mutate(lost=per.at_start * left)


def _filled(table: ibis.Table, **values: ir.Value) -> ibis.Table:
    """`table` with every measure column, those not given set to zero."""
    columns = {
        name: (values[name] if name in values else ibis.literal(0)).cast(dtype)
        for name, dtype in MEASURES.items()
    }
    return table.select(customer_id=table.customer_id, period=table.period, **columns)


def _at(customers: ibis.Table, grid: ibis.Table, boundary: str, flag: str) -> ibis.Table:
    joined = customers.join(grid, customers.cutoff == grid[boundary])
    return _filled(joined, **{flag: ibis.literal(1)})


def _in_period(
    table: ibis.Table,
    when: ir.TimestampValue,
    grid: ibis.Table,
    config: KpiConfig,
    **values: ir.Value,
) -> ibis.Table:
    """One row per row of `table` with the given measures, keyed by the period of `when`."""
    return _filled(_keyed(table, when, grid, config), **values)


def _keyed(
    table: ibis.Table, when: ir.TimestampValue, grid: ibis.Table, config: KpiConfig
) -> ibis.Table:
    """`table` with the `period` that `when` falls in; rows outside every period go."""
    return table.mutate(period=period_of(when, config.period)).join(grid, "period")


def _new(
    tables: ValidatedTables, label: LabelConfig, grid: ibis.Table, config: KpiConfig
) -> ibis.Table:
    if label.contractual:
        customers = tables.tables["customers"]
        signed = customers.filter(customers.signup_date.notnull())
        return _in_period(signed, signed.signup_date, grid, config, new=ibis.literal(1))
    activity = activity_rows(tables, label)
    first = activity.group_by("customer_id").aggregate(first=activity.timestamp.min())
    return _in_period(first, first["first"], grid, config, new=ibis.literal(1))


def _purchases(transactions: ibis.Table, grid: ibis.Table, config: KpiConfig) -> ibis.Table:
    t = _keyed(transactions, transactions.timestamp, grid, config)
    positive = t.amount > 0
    orders = (
        t.order_id.nunique(where=positive)
        if "order_id" in t.columns
        else positive.cast("int64").sum()
    )
    per = t.group_by("customer_id", "period").aggregate(revenue=t.amount.sum(), orders=orders)
    return _filled(per, revenue=per.revenue, orders=per.orders)


def _surveys(events: ibis.Table, grid: ibis.Table, config: KpiConfig) -> ibis.Table:
    names = {"nps": config.nps_event, "csat": config.csat_event, "ces": config.ces_event}
    check_survey_scales(events, names)
    answers = events.filter(events.event_type.isin(list(names.values())) & events.value.notnull())
    a = _keyed(answers, answers.timestamp, grid, config)
    kind = {s: a.event_type == name for s, name in names.items()}
    per = a.group_by("customer_id", "period").aggregate(
        nps_n=kind["nps"].cast("int64").sum(),
        nps_promoters=(kind["nps"] & (a.value >= 9)).cast("int64").sum(),
        nps_detractors=(kind["nps"] & (a.value <= 6)).cast("int64").sum(),
        csat_n=kind["csat"].cast("int64").sum(),
        csat_satisfied=(kind["csat"] & (a.value >= 4)).cast("int64").sum(),
        ces_n=kind["ces"].cast("int64").sum(),
        ces_sum=ibis.coalesce(a.value.sum(where=kind["ces"]), 0.0),
    )
    return _filled(
        per, **{c: per[c] for c in per.columns if c in MEASURES}, responded=ibis.literal(1)
    )


def period_counts(per_customer: ibis.Table, segment: ir.StringValue | None) -> ibis.Table:
    """The counts behind every KPI, per period (and segment value)."""
    t = per_customer.mutate(segment=segment if segment is not None else ibis.literal(ALL))
    during = ibis.greatest(t.at_start, t.new)
    return t.group_by("period", "segment").aggregate(
        customers_start=t.at_start.sum(),
        customers_end=t.at_end.sum(),
        new_customers=t.new.sum(),
        lost_customers=t.lost.sum(),
        retained_customers=(t.at_start * t.at_end).sum(),
        customers_during=during.sum(),
        revenue=t.revenue.sum(),
        revenue_new=t.revenue.sum(where=t.new == 1),
        orders=t.orders.sum(),
        buyers=(t.orders > 0).cast("int64").sum(),
        nps_answers=t.nps_n.sum(),
        nps_promoters=t.nps_promoters.sum(),
        nps_detractors=t.nps_detractors.sum(),
        csat_answers=t.csat_n.sum(),
        csat_satisfied=t.csat_satisfied.sum(),
        ces_answers=t.ces_n.sum(),
        ces_sum=t.ces_sum.sum(),
        respondents=(t.responded * during).sum(),
    )


def retention_kpis(
    tables: ValidatedTables,
    periods: list[tuple[dt.date, dt.date]],
    label: LabelConfig,
    config: KpiConfig,
) -> pd.DataFrame:
    """The tidy KPI table: one row per period and segment, overall rows first."""
    per_customer = customer_periods(tables, periods, label, config)
    counts = [_complete(collect(period_counts(per_customer, None)), ALL, [ALL], periods)]
    for attribute in config.segments:
        values = _attribute(tables, attribute)
        joined = per_customer.left_join(values, "customer_id")
        segment = ibis.coalesce(joined.segment_value, MISSING_SEGMENT)
        found = collect(period_counts(joined, segment))
        counts.append(_complete(found, attribute, sorted(found["segment"].unique()), periods))
    return with_rates(pd.concat(counts, ignore_index=True), config)


def _attribute(tables: ValidatedTables, attribute: str) -> ibis.Table:
    customers = tables.get("customers")
    if customers is None or attribute not in customers.columns:
        have = ", ".join(customers.columns) if customers is not None else "no customers table"
        raise DataContractError(
            "customers", attribute, f"the segment attribute named in kpi.segments (found: {have})"
        )
    return customers.select("customer_id", segment_value=customers[attribute].cast("string"))


def _complete(
    found: pd.DataFrame,
    segment_by: str,
    segments: list[str],
    periods: list[tuple[dt.date, dt.date]],
) -> pd.DataFrame:
    """Every (period, segment) pair, with zero counts where no customer had a row."""
    grid = pd.MultiIndex.from_product(
        [[s for s, _ in periods], segments], names=["period", "segment"]
    )
    found["period"] = pd.to_datetime(found["period"]).dt.date
    counts = found.set_index(["period", "segment"]).reindex(grid, fill_value=0).reset_index()
    ends = dict(periods)
    counts.insert(1, "period_end", counts["period"].map(ends))
    counts.insert(2, "segment_by", segment_by)
    return counts


def with_rates(counts: pd.DataFrame, config: KpiConfig) -> pd.DataFrame:
    """Add the KPIs to the counts; a zero denominator gives NaN."""
    c = counts.astype({"revenue": "float64", "revenue_new": "float64", "ces_sum": "float64"})
    c["revenue_new"] = c["revenue_new"].fillna(0.0)
    c["revenue_existing"] = c["revenue"] - c["revenue_new"]
    c["retention_rate"] = 100 * _ratio(
        c["customers_end"] - c["new_customers"], c["customers_start"]
    )
    c["churn_rate"] = 100 * _ratio(c["lost_customers"], c["customers_start"])
    c["aov"] = _ratio(c["revenue"], c["orders"])
    c["purchase_frequency"] = _ratio(c["orders"], c["buyers"])
    c["expected_lifespan_periods"] = (
        config.lifespan_periods if config.lifespan_periods else _ratio(100.0, c["churn_rate"])
    )
    c["clv"] = c["aov"] * c["purchase_frequency"] * c["expected_lifespan_periods"] * config.margin
    c["nps"] = 100 * _ratio(c["nps_promoters"] - c["nps_detractors"], c["nps_answers"])
    c["csat"] = 100 * _ratio(c["csat_satisfied"], c["csat_answers"])
    c["ces"] = _ratio(c["ces_sum"], c["ces_answers"])
    c["survey_response_rate"] = 100 * _ratio(c["respondents"], c["customers_during"])
    return c


def _ratio(numerator: pd.Series | float, denominator: pd.Series) -> pd.Series:
    """Numerator / denominator, NaN where the denominator is 0 (or missing)."""
    denominator = denominator.astype("float64").replace(0.0, np.nan)
    return (numerator / denominator).astype("float64")
