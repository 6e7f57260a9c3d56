"""The rows uplift learns from: one per campaign send, with features at the send day.

A send at `sent_at` is a cutoff on its calendar day: the features read only
rows before that midnight (`churnmodel.pointintime`), the label is the
usual churn label over ``[day, day + horizon)``. Sends to customers who were
no longer customers that day (the eligibility rule), or whose label window
is not over yet, cannot be compared; they are counted, never dropped
silently.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import ibis
import pandas as pd

from churnmodel.config import FeatureConfig, RunConfig
from churnmodel.data.validate import ValidatedTables, repeated_keys
from churnmodel.engine import collect
from churnmodel.errors import DataContractError
from churnmodel.features.catalog import FeatureSpec
from churnmodel.features.matrix import FeatureMatrix, build_feature_matrix, resolved_features
from churnmodel.outreach.build import value_12m
from churnmodel.timeline.eligibility import eligible
from churnmodel.timeline.labels import add_labels
from churnmodel.uplift.campaigns import TABLE, campaign_table

log = logging.getLogger(__name__)

SEND_COLUMNS = ["campaign_id", "treatment", "cost"]


@dataclass(frozen=True)
class CampaignMatrix:
    """Features at each send, the treatment, the churn label and the customer's value."""

    frame: pd.DataFrame  # keys, SEND_COLUMNS, label, value_12m, features
    feature_names: list[str]
    left_out: dict[str, int]  # reason -> sends that could not be used
    specs: tuple[FeatureSpec, ...] = ()  # the feature columns, for the saved model
    features: FeatureConfig | None = None  # the settings they were built with, decided

    @property
    def sends(self) -> int:
        """Sends in the matrix."""
        return len(self.frame)


def campaign_matrix(tables: ValidatedTables, config: RunConfig) -> CampaignMatrix:
    """Every usable send with its features at the send day (see the module docstring).

    `config` must have its label settings resolved (as after `build_features`).
    """
    campaigns = campaign_table(tables)
    cost = campaigns.cost if "cost" in campaigns.columns else ibis.null("float64")
    sends = campaigns.select(
        "customer_id", "campaign_id", "treatment", cutoff=campaigns.sent_at.date(), cost=cost
    )
    _require_one_send_per_day(sends)
    horizon = config.label.horizon
    last_day = (tables.observed_until - dt.timedelta(days=horizon)).date()
    days = sorted(collect(sends.select("cutoff").distinct())["cutoff"].tolist())
    spine = sends.select("customer_id", "cutoff").distinct()
    customers = spine.semi_join(eligible(tables, days, config.label), ["customer_id", "cutoff"])
    observed = customers.filter(customers.cutoff <= ibis.literal(last_day))
    counts = collect(
        sends.aggregate(
            total=sends.count(),
            late=sends.count(where=sends.cutoff > ibis.literal(last_day)),
        )
    ).iloc[0]
    labelled = add_labels(tables, observed, config.label)
    features = resolved_features(tables, config.features)
    matrix = build_feature_matrix(tables, labelled, features)
    frame = _with_sends(matrix, collect(sends), max(features.windows_days))
    late = int(counts["late"])
    left_out = {
        f"the {horizon}-day outcome is not in the data yet (sent after {last_day})": late,
        "not a customer on the send day (eligibility rule)": int(counts["total"])
        - late
        - len(frame),
    }
    left_out = {reason: n for reason, n in left_out.items() if n}
    for reason, n in left_out.items():
        log.warning("table '%s': %d send(s) left out: %s", TABLE, n, reason)
    return CampaignMatrix(frame, matrix.feature_names, left_out, matrix.specs, features)


def _require_one_send_per_day(sends: ibis.Table) -> None:
    """Two campaigns reaching a customer on one day: their effects cannot be told apart."""
    repeats = repeated_keys(sends, ["customer_id", "cutoff"])
    if repeats.rows:
        raise DataContractError(
            TABLE,
            "sent_at",
            "at most one send per customer and day (two campaigns on one day cannot be told apart)",
            repeats.rows,
            repeats.examples,
        )


def _with_sends(matrix: FeatureMatrix, sends: pd.DataFrame, window: int) -> pd.DataFrame:
    """The matrix rows with their send's campaign, treatment, cost and the customer's value."""
    frame = matrix.frame
    keys = sends.assign(cutoff=pd.to_datetime(sends["cutoff"]).astype("datetime64[ns]"))
    joined = frame[["customer_id", "cutoff"]].merge(
        keys, on=["customer_id", "cutoff"], how="left", validate="one_to_one"
    )
    extra = pd.DataFrame(
        {
            **{c: joined[c].to_numpy() for c in SEND_COLUMNS},
            "value_12m": value_12m(frame, window),
        },
        index=frame.index,
    )
    parts = [frame[["customer_id", "cutoff", "label"]], extra, frame[matrix.feature_names]]
    return pd.concat(parts, axis=1)
