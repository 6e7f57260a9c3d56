"""Past retention campaigns: what uplift can learn from, checked before anything is fitted.

A campaign row says that a customer was sent an offer (`treatment`) or held
out at random (`control`) at `sent_at`. Uplift is the difference in churn
between the two, so a campaign is only usable with a control group drawn
at random from the same customers; everything else here is about failing
early and clearly when the data cannot support that comparison.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import ibis
import pandas as pd

from churnmodel.data.contract import CONTROL
from churnmodel.data.quality import EXAMPLES
from churnmodel.data.validate import ValidatedTables, repeated_keys
from churnmodel.engine import collect, scalar
from churnmodel.errors import ConfigError, DataContractError

log = logging.getLogger(__name__)

TABLE = "campaigns"


@dataclass(frozen=True)
class CampaignSummary:
    """Per campaign: when it was sent, how many customers got each treatment."""

    sends: pd.DataFrame  # campaign_id, first_sent, last_sent, treatment, customers, cost
    findings: tuple[str, ...]  # warnings: what weakens the comparison without stopping it

    @property
    def offers(self) -> list[str]:
        """The treatments other than the control group, sorted."""
        return sorted(t for t in self.sends["treatment"].unique() if t != CONTROL)

    @property
    def unpriced(self) -> list[str]:
        """Offers with no cost in any send: counted as free, so no money budget can be planned."""
        priced = self.sends["cost"].notna().groupby(self.sends["treatment"]).any()
        return [str(t) for t, known in priced.items() if not known and t != CONTROL]


def campaign_table(tables: ValidatedTables) -> ibis.Table:
    """The validated campaigns table, or a clear error when the data has none."""
    campaigns = tables.get(TABLE)
    if campaigns is None:
        raise ConfigError(
            "no campaigns table: set data.campaigns to past retention campaigns "
            "(customer_id, campaign_id, sent_at, treatment with 'control' for the hold-out group)"
        )
    return campaigns


def check_campaigns(tables: ValidatedTables) -> CampaignSummary:
    """Stop on campaign data no uplift can be learned from; warn on what weakens it.

    Errors: no control group at all, a campaign without its own, a customer
    sent the same campaign twice, customers the other tables do not know,
    sends after the data ends, negative costs. Warnings: a campaign with no
    offer besides the control, offer names that differ only in case or
    spaces, and costs that are missing or vary within an offer (the median
    of its sends is its cost).
    """
    campaigns = campaign_table(tables)
    _require_control(campaigns)
    _require_single_sends(campaigns)
    _require_costs_of_zero_or_more(campaigns)
    _require_known_customers(tables, campaigns)
    _require_within_data(tables, campaigns)
    sends = collect(
        campaigns.group_by("campaign_id", "treatment")
        .aggregate(
            first_sent=campaigns.sent_at.min(),
            last_sent=campaigns.sent_at.max(),
            customers=campaigns.count(),
            cost=campaigns.cost.mean() if "cost" in campaigns.columns else ibis.null("float64"),
        )
        .order_by(["campaign_id", "treatment"])
    )
    _require_own_control(sends)
    findings = (*_campaign_findings(sends), *_cost_findings(campaigns), *_lookalike_offers(sends))
    for finding in findings:
        log.warning(finding)
    return CampaignSummary(sends, findings)


def _require_control(campaigns: ibis.Table) -> None:
    treatments = collect(campaigns.select("treatment").distinct().order_by("treatment").limit(10))
    if CONTROL not in set(treatments["treatment"]):
        raise DataContractError(
            TABLE,
            "treatment",
            f"a control group: rows with treatment '{CONTROL}' for the customers held out at "
            "random, without which no effect of an offer can be measured",
            0,
            treatments["treatment"].tolist()[:EXAMPLES],
        )


def _require_single_sends(campaigns: ibis.Table) -> None:
    repeats = repeated_keys(campaigns, ["customer_id", "campaign_id"])
    if repeats.keys:
        raise DataContractError(
            TABLE,
            "customer_id",
            "each customer at most once per campaign_id (one treatment each); "
            f"{repeats.keys:,} customer and campaign pairs appear more than once",
            repeats.rows,
            repeats.examples,
        )


def _require_known_customers(tables: ValidatedTables, campaigns: ibis.Table) -> None:
    """Every campaign customer must be in `customers` (or, without it, in the activity tables)."""
    customers = tables.get("customers")
    if customers is not None:
        known, where = customers.select("customer_id"), "'customers'"
    else:
        activity = [
            t.select("customer_id")
            for n in ("transactions", "events")
            if (t := tables.get(n)) is not None
        ]
        known, where = ibis.union(*activity, distinct=True), "any activity table"
    stray = campaigns.anti_join(known.distinct(), "customer_id")
    found = collect(stray.aggregate(rows=stray.count()))
    rows = int(found["rows"].iloc[0])
    if rows:
        examples = collect(
            stray.select("customer_id").distinct().order_by("customer_id").limit(EXAMPLES)
        )
        raise DataContractError(
            TABLE,
            "customer_id",
            f"customers known to the data; these ids are not in {where} (ids are compared "
            "exactly as text)",
            rows,
            examples["customer_id"].tolist(),
        )


def _require_within_data(tables: ValidatedTables, campaigns: ibis.Table) -> None:
    late = campaigns.filter(campaigns.sent_at >= ibis.literal(tables.observed_until))
    found = collect(late.aggregate(rows=late.count(), first=late.sent_at.min()))
    rows = int(found["rows"].iloc[0])
    if rows:
        raise DataContractError(
            TABLE,
            "sent_at",
            f"sends before the data ends ({tables.observed_until:%Y-%m-%d}): what happened "
            "after a later send is not in the data",
            rows,
            [str(found["first"].iloc[0])],
        )


def _require_own_control(sends: pd.DataFrame) -> None:
    """Each campaign is compared with its own random hold-out; another's is not a control."""
    with_control = set(sends.loc[sends["treatment"] == CONTROL, "campaign_id"])
    without = sends[~sends["campaign_id"].isin(with_control)]
    if len(without):
        names = sorted(without["campaign_id"].unique())
        raise DataContractError(
            TABLE,
            "treatment",
            f"a control group in every campaign (rows with treatment '{CONTROL}'); campaign(s) "
            f"{names} have none, and another campaign's control group was drawn from other "
            "customers at another time",
            int(without["customers"].sum()),
            names[:EXAMPLES],
        )


def _require_costs_of_zero_or_more(campaigns: ibis.Table) -> None:
    if "cost" not in campaigns.columns:
        return
    negative = campaigns.filter(campaigns.cost < 0)
    count = int(scalar(negative.count()))
    if count:
        examples = collect(negative.select("cost").limit(EXAMPLES))["cost"].tolist()
        raise DataContractError(TABLE, "cost", "a cost of 0 or more per send", count, examples)


def _cost_findings(campaigns: ibis.Table) -> list[str]:
    """Offers whose cost is missing, in part or whole, or varies: their median is the cost."""
    offers = campaigns.filter(campaigns.treatment != CONTROL)
    has_cost = "cost" in campaigns.columns
    costs = collect(
        offers.group_by("treatment")
        .aggregate(
            sends=offers.count(),
            priced=offers.cost.count() if has_cost else ibis.literal(0),
            low=offers.cost.min() if has_cost else ibis.null("float64"),
            high=offers.cost.max() if has_cost else ibis.null("float64"),
        )
        .order_by("treatment")
    )
    findings = []
    for row in costs.to_dict("records"):
        sends, priced = int(row["sends"]), int(row["priced"])
        name = f"table '{TABLE}', column 'cost': offer {row['treatment']!r}"
        if priced == 0:
            findings.append(
                f"{name} has no cost in any of its {sends:,} sends: counted as free, so its "
                "expected saved values are before any cost (--budget-money refuses it)"
            )
        elif priced < sends or float(row["low"]) != float(row["high"]):
            findings.append(
                f"{name} costs {float(row['low']):,.2f} to {float(row['high']):,.2f} per send "
                f"({sends - priced:,} of {sends:,} sends without a cost); the median of its "
                "sends is taken as its cost"
            )
    return findings


def _lookalike_offers(sends: pd.DataFrame) -> list[str]:
    """Offer names equal but for case and spaces ('Call ', 'call'): learned as two offers."""
    names = sorted(set(sends["treatment"]))
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(" ".join(str(name).split()).casefold(), []).append(str(name))
    return [
        f"table '{TABLE}', column 'treatment': {', '.join(map(repr, group))} differ only in "
        "case or spaces and are learned as different offers; write them alike if they are one"
        for group in groups.values()
        if len(group) > 1
    ]


def _campaign_findings(sends: pd.DataFrame) -> list[str]:
    findings = []
    for campaign, rows in sends.groupby("campaign_id", sort=True):
        treatments = set(rows["treatment"])
        if treatments == {CONTROL}:
            findings.append(
                f"table '{TABLE}': campaign {campaign!r} has only a control group "
                f"({int(rows['customers'].sum()):,} customers) and no offer"
            )
    return findings
