"""Join the feature families onto the spine and hand a pandas frame to the model.

This is where results cross from the engine into pandas: one row per
(customer, cutoff), one column per feature, with stable names and dtypes
(float64 for numbers, category for attributes) whatever the engine.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import ibis
import pandas as pd

from churnmodel.config import FeatureConfig, resolved
from churnmodel.data.validate import ValidatedTables
from churnmodel.discovery import gather_facts, is_resolved, resolve_features
from churnmodel.engine import cache, collect, collect_later, scalar
from churnmodel.errors import ConfigError
from churnmodel.features.bgnbd import SUMMARY, BgNbd, bgnbd_columns, fit_at_cutoff
from churnmodel.features.bgnbd import feature_names as bgnbd_names
from churnmodel.features.catalog import FeatureFamily, FeatureSpec
from churnmodel.features.engagement import engagement_family
from churnmodel.features.feedback import feedback_family
from churnmodel.features.profile import profile_family
from churnmodel.features.transactions import transaction_family
from churnmodel.pointintime import (
    Method,
    Probes,
    day_number_of,
    plan,
    plan_for,
    totals_at_edges,
    with_history,
)

log = logging.getLogger(__name__)

KEYS = ["customer_id", "cutoff"]


@dataclass(frozen=True)
class FeatureMatrix:
    """The model's input: keys, features (and label) plus what each feature means.

    `bgnbd` is the BG/NBD fit at the newest cutoff (or the one given), which
    a model keeps for scoring.
    """

    frame: pd.DataFrame
    specs: tuple[FeatureSpec, ...]
    bgnbd: BgNbd | None = None

    @property
    def feature_names(self) -> list[str]:
        """Feature columns in matrix order."""
        return [s.name for s in self.specs]

    @property
    def has_labels(self) -> bool:
        """Whether the frame carries a label column."""
        return "label" in self.frame.columns


def feature_families(
    tables: ValidatedTables,
    config: FeatureConfig,
    cutoffs: Sequence[dt.date] | None = None,
    store: Callable[[ibis.Table], ibis.Table] = lambda table: table,
) -> list[FeatureFamily]:
    """Every family the available tables support, in a fixed order.

    Settings the config leaves open (event types, attributes) are first
    decided from these tables; training resolves them once, and a model
    carries the resolved config, so scoring never decides them again.
    `cutoffs`, when every spine row has one of them, lets a family reduce
    its rows for those alone (`pointintime.banded_rows`); `store`
    materialises rows a family reads twice.
    """
    config = resolved_features(tables, config)
    start = day_number_of(tables.data_start.date())
    families = []
    if (transactions := tables.get("transactions")) is not None:
        families.append(transaction_family(transactions, config, start, cutoffs))
    if (events := tables.get("events")) is not None:
        families.append(engagement_family(events, config, start, cutoffs))
        if (feedback := feedback_family(events, config, store, cutoffs)) is not None:
            families.append(feedback)
    if (customers := tables.get("customers")) is not None:
        families.append(profile_family(customers, config.profile))
    return families


def resolved_features(tables: ValidatedTables, config: FeatureConfig) -> FeatureConfig:
    """`config`, with what it leaves open decided from `tables` (a no-op once resolved)."""
    return config if is_resolved(config) else resolve_features(config, gather_facts(tables))


def derived_specs(config: FeatureConfig) -> tuple[FeatureSpec, ...]:
    """Features computed in pandas after the engine's part: the BG/NBD view."""
    if not config.bgnbd:
        return ()
    horizon = resolved(config.bgnbd_horizon_days, "features.bgnbd_horizon_days")
    p_alive, in_horizon, in_year = bgnbd_names(horizon)
    return (
        FeatureSpec(p_alive, "transactions", "Chance the customer still buys (BG/NBD P(alive))"),
        FeatureSpec(
            in_horizon, "transactions", f"Purchase days to expect in the next {horizon} days"
        ),
        FeatureSpec(in_year, "transactions", "Purchase days to expect in the next year"),
    )


def add_derived(
    frame: pd.DataFrame, config: FeatureConfig, bgnbd: BgNbd | None, fit: bool = False
) -> tuple[pd.DataFrame, BgNbd | None]:
    """`frame` with the derived features added, and the BG/NBD fit used last.

    With `fit`, BG/NBD is fitted at every cutoff on that cutoff's rows;
    otherwise `bgnbd` (the newest training fit) scores every row. The
    result shares the matrix's columns (pandas' copy-on-write concat), so
    a matrix of gigabytes is not held twice.
    """
    if not config.bgnbd:
        return frame, None
    horizon = resolved(config.bgnbd_horizon_days, "features.bgnbd_horizon_days")
    # the fit reads three columns: grouping only those keeps the per-cutoff copies small
    # (Spark's scoring batches carry no cutoff column, and need none)
    groups: Iterable[tuple[object, pd.DataFrame]] = (
        frame[["cutoff", *SUMMARY]].groupby("cutoff", sort=True)
        if fit
        else [(None, frame[list(SUMMARY)])]
    )
    parts = []
    for _, rows in groups:
        bgnbd = fit_at_cutoff(rows) if fit else bgnbd
        parts.append(pd.DataFrame(bgnbd_columns(rows, bgnbd, horizon), index=rows.index))
    if not parts:  # no rows at all
        parts.append(pd.DataFrame(bgnbd_columns(frame, None, horizon), index=frame.index))
    return pd.concat([frame, pd.concat(parts).reindex(frame.index)], axis=1), bgnbd


def feature_table(
    spine: ibis.Table,
    families: list[FeatureFamily],
    materialize: Callable[[ibis.Table], ibis.Table] = lambda table: table,
    method: Method = "running",
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[ibis.Table, tuple[FeatureSpec, ...]]:
    """One history pass per family, then each family's features, keyed like the spine.

    The result has exactly the spine's rows (customers without any rows keep
    their place) and the spine's columns followed by the features, in no
    particular order: a sort of the whole matrix is the caller's to ask for
    (`collect_later` sorts for less). Each pass's totals are joined to the
    table once (`with_history`). `materialize` may store each pass's
    totals, so that the engine holds one pass in memory at a time (the
    binned plan stores its own).
    """
    table = spine
    specs: list[FeatureSpec] = []
    probes = Probes()  # every pass reads the same spine
    for family in families:
        if family.lookup is not None:
            progress(f"{family.name} history pass")
            # One pass per family: a window row costs every aggregate of its pass,
            # so stacking all families' rows together would cost more, not less.
            runs = plan_for(method, family.lookup)
            at_edges = totals_at_edges(spine, family.lookup, method=runs, probes=probes)
            if runs != "binned":  # the binned plan has stored its result already
                at_edges = materialize(at_edges)
            table = with_history(table, at_edges, family.lookup)
        table, features = family.finish(table)
        table = table.mutate(**{spec.name: value for spec, value in features})
        specs.extend(spec for spec, _ in features)
    names = Counter(spec.name for spec in specs)
    clashes = sorted(n for n, count in names.items() if count > 1 or n in spine.columns)
    if clashes:
        raise ConfigError(
            f"feature names used twice (rename the attribute or event type): {clashes}"
        )
    return table.select(*spine.columns, *names), tuple(specs)


def build_feature_matrix(
    tables: ValidatedTables,
    spine: ibis.Table,
    config: FeatureConfig,
    method: Method | None = None,
    max_rows: int | None = None,
    seed: int = 0,
    bgnbd: BgNbd | None = None,
    fit_bgnbd: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> FeatureMatrix:
    """Compute all features for every spine row and collect them as pandas.

    The spine is materialised first: every family reads it, and it is itself
    a history pass (eligibility, labels) that should run once, not per family.
    `method` picks the `history` plan; by default the engine's cheapest
    (`pointintime.plan`). A spine longer than
    `max_rows` is cut by `stratified_sample` before any feature is computed.
    The BG/NBD features are fitted per cutoff (`fit_bgnbd`, training) or
    come from the given fit (`bgnbd`, the model's: scoring).
    """
    config = resolved_features(tables, config)
    with ExitStack() as cached:
        progress("eligibility and labels")

        def materialize(table: ibis.Table) -> ibis.Table:
            return cached.enter_context(cache(table))

        spine = materialize(spine)
        if max_rows is not None and (rows := int(scalar(spine.count()))) > max_rows:
            spine = materialize(stratified_sample(spine, max_rows / rows, seed))
            log.warning(
                "feature matrix: %d of %d rows kept by a sample stratified by cutoff%s "
                "(data.max_matrix_rows = %d, seed %d)",
                scalar(spine.count()),
                rows,
                " and label" if "label" in spine.columns else "",
                max_rows,
                seed,
            )
        cutoffs = cutoffs_of(spine)
        method = method or plan(spine, len(cutoffs))
        if len(cutoffs) == 1:  # scoring: often a fraction of the customers
            tables = tables.of_customers(spine)
        families = feature_families(tables, config, cutoffs, materialize)
        table, specs = feature_table(spine, families, materialize, method, progress)
        progress("joining and fetching the matrix")
        fetch = collect_later(table, order_by=KEYS)
        del table  # drops the binned plan's stored passes before pandas holds the matrix
    frame = fetch()  # the cached passes are gone too
    progress("dtypes and derived features")
    frame, fitted = add_derived(to_stable_dtypes(frame, specs), config, bgnbd, fit=fit_bgnbd)
    return FeatureMatrix(frame, (*specs, *derived_specs(config)), fitted)


def cutoffs_of(spine: ibis.Table) -> list[dt.date]:
    """The distinct cutoffs of the spine's rows, in order."""
    found = collect(spine.select("cutoff").distinct())["cutoff"]
    return sorted(pd.Timestamp(cutoff).date() for cutoff in found)


def stratified_sample(spine: ibis.Table, share: float, seed: int) -> ibis.Table:
    """The same `share` of every (cutoff, label) stratum, so churn rates stay as they were.

    Within a stratum, rows are ranked by a hash of the seed and the customer
    id, and the first ``ceil(share * stratum size)`` are kept: the same seed
    keeps the same rows on every run, and mostly the same customers from one
    cutoff to the next, without a random generator the engines would seed
    differently. Hash functions differ between engines, so DuckDB and Spark
    keep different (equally valid) rows.
    """
    strata = [spine.cutoff, *([spine.label] if "label" in spine.columns else [])]
    key = ibis.literal(f"{seed}:").concat(spine.customer_id).hash()
    ranked = spine.mutate(
        _rank=ibis.row_number().over(group_by=strata, order_by=[key, spine.customer_id]),
        _size=spine.count().over(group_by=strata),
    )
    return ranked.filter(ranked._rank < (ranked._size * share).ceil()).drop("_rank", "_size")


def to_stable_dtypes(frame: pd.DataFrame, specs: tuple[FeatureSpec, ...]) -> pd.DataFrame:
    """Fix column order and dtypes, so equal inputs give equal frames.

    Rows arrive sorted by (customer_id, cutoff) (`collect_later`). Works in
    place where it can: the matrix can be gigabytes.
    """
    label = ["label"] if "label" in frame.columns else []
    order = [*KEYS, *label, *(s.name for s in specs)]
    out = frame if list(frame.columns) == order else frame[order]
    out["customer_id"] = out["customer_id"].astype("str")
    out["cutoff"] = pd.to_datetime(out["cutoff"]).astype("datetime64[ns]")
    if label:
        out["label"] = out["label"].astype("int8")
    for spec in specs:
        column = out[spec.name]
        if spec.dtype == "category":
            # codes straight from the (Arrow) text column: no Python string per row
            codes, categories = pd.factorize(column, sort=True, use_na_sentinel=True)
            out[spec.name] = pd.Categorical.from_codes(codes, categories=categories)
        else:
            out[spec.name] = column.astype("float64")
    return out
