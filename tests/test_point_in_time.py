"""The point-in-time rule as a property: the future never changes the present.

Rows are generated around a cutoff, with extra weight on the boundary
instants (exactly the cutoff, one second either side, one day either side).
Replacing every row at or after the cutoff by an arbitrary other set of such
rows must leave every feature at the cutoff (and at an earlier cutoff)
unchanged; replacing every row outside the label window must leave the
labels unchanged.
"""

from __future__ import annotations

import datetime as dt
import gc

import ibis
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ibis.backends.sql import SQLBackend

from churnmodel import pointintime
from churnmodel.config import EngagementConfig, FeatureConfig, LabelConfig, ProfileConfig
from churnmodel.engine import collect
from churnmodel.features.matrix import (
    add_derived,
    feature_families,
    feature_table,
    to_stable_dtypes,
)
from churnmodel.timeline import build_spine
from churnmodel.timeline.eligibility import eligible
from churnmodel.timeline.labels import add_labels
from churnmodel.timeline.not_scored import NOT_SCORED_REASONS, OTHER_REASON, not_scored_customers
from tests.conftest import features_at, spine_of, validated

CUTOFF = dt.date(2025, 3, 1)
EARLIER = dt.date(2025, 1, 29)
HORIZON = 30
DAY = 86_400
CUSTOMERS = ["a", "b", "00c"]
# Every feature family and kind: named event types and the "other" bucket, a window longer
# than the data (rates over observed days), numeric and date attributes, and BG/NBD.
CONFIG = FeatureConfig(
    windows_days=[7, 400],
    trend_windows_days=[7],
    engagement=EngagementConfig(event_types=["login", "feature_use"], group_other=True),
    profile=ProfileConfig(attributes=["plan"], numeric=["seats"], dates=["renewal"]),
    bgnbd=True,
    bgnbd_horizon_days=30,
)
EDGES = [0, 1, -1, DAY, -DAY, HORIZON * DAY, HORIZON * DAY - 1]

settings.register_profile(
    "pit",
    max_examples=14,  # each example builds every feature twice; boundary instants are drawn often
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# both plans also meet the pandas reference at scale (benchmarks): fewer examples here
settings.register_profile("plans", settings.get_profile("pit"), max_examples=10)


def offsets(low: int, high: int) -> st.SearchStrategy[int]:
    """Seconds relative to the cutoff instant, boundary instants drawn often."""
    edges = [e for e in EDGES if low <= e < high]
    return (
        st.one_of(st.sampled_from(edges), st.integers(low, high - 1))
        if edges
        else st.integers(low, high - 1)
    )


def transactions(low: int, high: int) -> st.SearchStrategy[list[tuple[str, int, float]]]:
    return st.lists(
        st.tuples(
            st.sampled_from(CUSTOMERS),
            offsets(low, high),
            st.sampled_from([-20.0, 0.0, 15.5, 100.0]),
        ),
        max_size=12,
    )


def events(low: int, high: int) -> st.SearchStrategy[list[tuple[str, int, str, float | None]]]:
    kind = st.sampled_from(["login", "feature_use", "page_view", "support_ticket", "nps", "csat"])
    return st.lists(
        st.tuples(
            st.sampled_from(CUSTOMERS),
            offsets(low, high),
            kind,
            st.sampled_from([None, 1.0, 4.0, 9.0]),
        ),
        max_size=12,
    )


Person = tuple[int, str, float, int]  # signup offset, plan, seats, renewal offset


def signups(low: int, high: int) -> st.SearchStrategy[list[Person]]:
    return st.lists(
        st.tuples(
            offsets(low, high),
            st.sampled_from(["basic", "pro"]),
            st.sampled_from([1.0, 5.0, 40.0]),
            offsets(PAST, FUTURE),
        ),
        min_size=3,
        max_size=3,
    )


PAST = -200 * DAY
FUTURE = 200 * DAY


def tables(
    tx: list[tuple[str, int, float]],
    ev: list[tuple[str, int, str, float | None]],
    people: list[Person],
    churn: list[tuple[str, int]] | None = None,
) -> dict[str, pd.DataFrame]:
    """Frames from offsets; one anchor row far in the past keeps each table non-empty."""
    start = pd.Timestamp(CUTOFF, tz="UTC")
    at = lambda s: start + pd.Timedelta(seconds=s)  # noqa: E731
    out = {
        "transactions": pd.DataFrame(
            [("a", at(-300 * DAY), 1.0)] + [(c, at(s), a) for c, s, a in tx],
            columns=["customer_id", "timestamp", "amount"],
        ),
        "events": pd.DataFrame(
            [("a", at(-300 * DAY), "login", None)] + [(c, at(s), k, v) for c, s, k, v in ev],
            columns=["customer_id", "timestamp", "event_type", "value"],
        ),
        "customers": pd.DataFrame(
            [(c, at(s), p, n, at(r)) for c, (s, p, n, r) in zip(CUSTOMERS, people, strict=True)],
            columns=["customer_id", "signup_date", "plan", "seats", "renewal"],
        ),
    }
    if churn is not None:
        out["churn"] = pd.DataFrame(
            [(c, at(s)) for c, s in churn], columns=["customer_id", "churn_date"]
        ).drop_duplicates("customer_id")
    return out


def keep_past(people: list[Person], future: list[Person]) -> list[Person]:
    """Customers who signed up before the cutoff keep their record; later ones take `future`'s."""
    return [p if p[0] < 0 else f for p, f in zip(people, future, strict=True)]


@settings(settings.get_profile("pit"))
@given(
    past_tx=transactions(PAST, 0),
    past_ev=events(PAST, 0),
    people=signups(PAST, FUTURE),
    future_a=st.tuples(transactions(0, FUTURE), events(0, FUTURE), signups(0, FUTURE)),
    future_b=st.tuples(transactions(0, FUTURE), events(0, FUTURE), signups(0, FUTURE)),
)
def test_rows_at_or_after_the_cutoff_never_change_features(
    con: SQLBackend, past_tx, past_ev, people, future_a, future_b
) -> None:
    spine = [(c, d) for c in CUSTOMERS for d in (EARLIER, CUTOFF)]
    results = []
    for tx, ev, later in (future_a, future_b):
        data = tables(past_tx + tx, past_ev + ev, keep_past(people, later))
        results.append(features_at(con, data, spine, CONFIG))
    pd.testing.assert_frame_equal(results[0], results[1])


@settings(settings.get_profile("pit"))
@given(
    past_tx=transactions(PAST, 0),
    people=signups(PAST, FUTURE),
    future_a=transactions(0, FUTURE),
    future_b=transactions(0, FUTURE),
)
def test_eligibility_only_reads_history(
    con: SQLBackend, past_tx, people, future_a, future_b
) -> None:
    label = LabelConfig(business="non_contractual", activity="transactions", active_window_days=30)
    spines = []
    for future in (future_a, future_b):
        data = validated(con, tables(past_tx + future, [], people))
        spine = build_spine(data, [EARLIER, CUTOFF], label, with_labels=False)
        spines.append(collect(spine).sort_values(["customer_id", "cutoff"], ignore_index=True))
    pd.testing.assert_frame_equal(spines[0], spines[1])


@settings(settings.get_profile("plans"))
@given(
    tx=transactions(PAST, FUTURE),
    ev=events(PAST, FUTURE),
    people=signups(PAST, FUTURE),
)
def test_every_history_plan_gives_the_same_features(con: SQLBackend, tx, ev, people) -> None:
    """Spark's plans (a join for one cutoff, running totals in SQL) equal numpy's binned sums."""
    data = tables(tx, ev, people)
    spine = [(c, d) for c in CUSTOMERS for d in (EARLIER, CUTOFF)]
    direct = features_at(con, data, spine, CONFIG, method="direct")
    running = features_at(con, data, spine, CONFIG, method="running")
    binned = features_at(con, data, spine, CONFIG, method="binned")
    pd.testing.assert_frame_equal(direct, running)
    pd.testing.assert_frame_equal(binned, running, check_exact=True)  # exact decimals in both


@settings(settings.get_profile("plans"), max_examples=7)  # four matrices per example
@given(
    tx=transactions(PAST, FUTURE),
    ev=events(PAST, FUTURE),
    people=signups(PAST, FUTURE),
)
def test_bands_of_days_give_the_features_of_daily_rows(con: SQLBackend, tx, ev, people) -> None:
    """Events reduced by bands between probe days (`banded_rows`) lose nothing a feature reads.

    At two cutoffs (training) and at one (scoring: other bands, and the
    rows of the one cutoff's customers only).
    """
    data = tables(tx, ev, people)
    for cutoffs in ([EARLIER, CUTOFF], [CUTOFF]):
        pairs = [(c, d) for c in CUSTOMERS for d in cutoffs]
        banded = features_at(con, data, pairs, CONFIG)
        # (a category column lists the values of its own rows)
        pd.testing.assert_frame_equal(
            _categories_as_text(banded),
            _categories_as_text(daily_features(con, data, pairs)),
        )


def daily_features(
    con: SQLBackend, data: dict[str, pd.DataFrame], pairs: list[tuple[str, dt.date]]
) -> pd.DataFrame:
    """`features_at` from rows reduced per day: the families given no cutoffs to band by."""
    families = feature_families(validated(con, data), CONFIG)
    table, specs = feature_table(spine_of(pairs), families, method="binned")
    frame = collect(table).sort_values(["customer_id", "cutoff"], ignore_index=True)
    frame, _ = add_derived(to_stable_dtypes(frame, specs), CONFIG, None, fit=True)
    return frame.set_index("customer_id")


def _categories_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: object for c in frame.select_dtypes("category").columns})


def outside_label_window() -> st.SearchStrategy[int]:
    return st.one_of(offsets(PAST, 0), offsets(HORIZON * DAY, FUTURE))


def labels_for(con: SQLBackend, data: dict[str, pd.DataFrame], business: str) -> dict[str, int]:
    label = LabelConfig(business=business, horizon_days=HORIZON, activity="any")
    spine = spine_of([(c, CUTOFF) for c in CUSTOMERS])
    labelled = collect(add_labels(validated(con, data), spine, label))
    return dict(zip(labelled["customer_id"], labelled["label"].astype(int), strict=True))


PEOPLE = [(PAST, "basic", 1.0, PAST)] * 3


@settings(settings.get_profile("pit"))
@given(
    inside=st.lists(st.tuples(st.sampled_from(CUSTOMERS), offsets(0, HORIZON * DAY)), max_size=6),
    outside_a=st.lists(st.tuples(st.sampled_from(CUSTOMERS), outside_label_window()), max_size=6),
    outside_b=st.lists(st.tuples(st.sampled_from(CUSTOMERS), outside_label_window()), max_size=6),
)
def test_non_contractual_label_is_no_activity_in_the_window(
    con: SQLBackend, inside, outside_a, outside_b
) -> None:
    active = {c for c, _ in inside}
    for outside in (outside_a, outside_b):
        tx = [(c, s, 10.0) for c, s in inside + outside]
        labels = labels_for(con, tables(tx, [], PEOPLE), "non_contractual")
        assert labels == {c: int(c not in active) for c in CUSTOMERS}


@settings(settings.get_profile("pit"))
@given(
    churn_inside=st.lists(st.one_of(st.none(), offsets(0, HORIZON * DAY)), min_size=3, max_size=3),
    outside_a=st.lists(st.one_of(st.none(), outside_label_window()), min_size=3, max_size=3),
    outside_b=st.lists(st.one_of(st.none(), outside_label_window()), min_size=3, max_size=3),
)
def test_contractual_label_is_a_churn_date_in_the_window(
    con: SQLBackend, churn_inside, outside_a, outside_b
) -> None:
    for outside in (outside_a, outside_b):
        dates = [i if i is not None else o for i, o in zip(churn_inside, outside, strict=True)]
        churn = [(c, d) for c, d in zip(CUSTOMERS, dates, strict=True) if d is not None]
        data = tables([], [], PEOPLE, churn)
        labels = labels_for(con, data, "contractual")
        assert labels == {
            c: int(i is not None) for c, i in zip(CUSTOMERS, churn_inside, strict=True)
        }


MANY = [f"m{i:02d}" for i in range(30)]
BGNBD_ONLY = FeatureConfig(
    windows_days=[30],
    trend_windows_days=[30],
    engagement=EngagementConfig(event_types=[], group_other=False),
    profile=ProfileConfig(attributes=[], numeric=[], dates=[]),
    bgnbd=True,
    bgnbd_horizon_days=30,
)


def purchases(low: int, high: int, size: int) -> st.SearchStrategy[list[tuple[str, int, float]]]:
    return st.lists(
        st.tuples(st.sampled_from(MANY), offsets(low, high), st.just(20.0)),
        min_size=size // 2,
        max_size=size,
    )


@settings(settings.get_profile("pit"))
@given(
    past=purchases(PAST, 0, 120),
    future_a=purchases(0, FUTURE, 40),
    future_b=purchases(0, FUTURE, 40),
)
def test_bgnbd_is_fitted_on_history_only(con: SQLBackend, past, future_a, future_b) -> None:
    """The per-cutoff BG/NBD fit (population parameters) reads only the cutoff's history."""
    spine = [(c, d) for c in MANY for d in (EARLIER, CUTOFF)]
    results = []
    for future in (future_a, future_b):
        rows = pd.DataFrame(past + future, columns=["customer_id", "timestamp", "amount"])
        rows["timestamp"] = pd.Timestamp(CUTOFF, tz="UTC") + pd.to_timedelta(rows["timestamp"], "s")
        results.append(features_at(con, {"transactions": rows}, spine, BGNBD_ONLY))
    pd.testing.assert_frame_equal(results[0], results[1])


def _accounted(con: SQLBackend, data: dict[str, pd.DataFrame], label: LabelConfig):
    """Eligible ids at CUTOFF, and the not-scored ids with their reasons."""
    validated_tables = validated(con, data)
    spine = build_spine(validated_tables, [CUTOFF], label, with_labels=False)
    eligible = collect(spine.select("customer_id"))["customer_id"]
    left = collect(not_scored_customers(validated_tables, CUTOFF, label, spine))
    return set(eligible), dict(zip(left["customer_id"], left["reason"], strict=True))


@settings(settings.get_profile("pit"))
@given(
    tx=transactions(PAST, FUTURE),
    ev=events(PAST, FUTURE),
    people=signups(PAST, FUTURE),
    churned=st.lists(st.one_of(st.none(), offsets(PAST, FUTURE)), min_size=3, max_size=3),
)
def test_contractual_eligibility_and_every_customer_accounted_for(
    con: SQLBackend, tx, ev, people, churned
) -> None:
    """Eligible exactly when signed up before the date and not churned before it; every
    input customer is eligible or not scored with a reason, never both, never neither."""
    churn = [(c, d) for c, d in zip(CUSTOMERS, churned, strict=True) if d is not None]
    data = tables(tx, ev, people, churn)
    label = LabelConfig(business="contractual", horizon_days=HORIZON, activity="any")
    eligible, left = _accounted(con, data, label)
    expected = {
        c
        for c, (signup, *_), churn_at in zip(CUSTOMERS, people, churned, strict=True)
        if signup < 0 and (churn_at is None or churn_at >= 0)
    }
    assert eligible == expected
    everyone = set(pd.concat([f["customer_id"] for f in data.values()]))
    assert eligible.isdisjoint(left) and eligible | set(left) == everyone
    for c, (signup, *_), churn_at in zip(CUSTOMERS, people, churned, strict=True):
        if signup >= 0:
            assert left[c] == NOT_SCORED_REASONS["signup"]
        elif churn_at is not None and churn_at < 0:
            assert left[c] == NOT_SCORED_REASONS["churned"]


@settings(settings.get_profile("pit"))
@given(tx=transactions(PAST, FUTURE), ev=events(PAST, FUTURE), people=signups(PAST, FUTURE))
def test_non_contractual_customers_are_eligible_or_not_scored_with_the_inactive_reason(
    con: SQLBackend, tx, ev, people
) -> None:
    label = LabelConfig(business="non_contractual", activity="transactions", active_window_days=30)
    data = tables(tx, ev, people)
    eligible, left = _accounted(con, data, label)
    bought = {c for c, s, _ in [("a", -300 * DAY, 1.0), *tx] if -30 * DAY <= s < 0}
    assert eligible == bought
    everyone = set(pd.concat([f["customer_id"] for f in data.values()]))
    assert eligible.isdisjoint(left) and eligible | set(left) == everyone
    assert OTHER_REASON not in left.values()


def test_the_binned_plan_with_missing_values_and_extremes_equals_the_sql_plan(
    con: SQLBackend,
) -> None:
    """NULL measures, awkward decimals, integers spanning 2**63: the SQL plan's values.

    The span makes the running extremes rank their values first; a float
    maximum, which the binned plan leaves to SQL, must still come out.
    """
    day = pointintime.day_number_of
    daily = con.create_table(
        "binned_daily",
        pa.table(
            {
                "customer_id": ["a", "a", "a", "b", "b", "c", "c", "e", "e", "f"],
                "day": [day(dt.date(2025, 2, d)) for d in (1, 20, 27)]
                + [day(EARLIER)] * 2
                + [0, day(CUTOFF) - 5, day(CUTOFF) - 3, day(CUTOFF) - 2, day(CUTOFF) - 1],
                # large sums round in DECIMAL(38, 9) as DuckDB casts them; 1.5e10
                # billionths overflow int64 (found by review: both differed as floats)
                "x": [
                    *(0.1, 0.2, None, None, 1e-9, 123456.789, None),
                    *(484260785.16, 168141525.49, 1.5e10),
                ],
                # -(2**63) beside another value: negated, it would be the largest
                "n": [1, 2, 3, 4, 5, -(2**63), 6, 7, -8, 2**61],
            }
        ),
        temp=True,
    )
    # an in-memory spine beside the engine's tables: the result is stored beside the latter
    spine = ibis.memtable(
        pa.table(
            {
                "customer_id": ["a", "a", "b", "c", "d", "e", "f"],
                "cutoff": [CUTOFF, EARLIER, CUTOFF, CUTOFF, CUTOFF, CUTOFF, CUTOFF],
            }
        )
    )
    lookup = pointintime.Lookup(
        "",
        daily.mutate(x_day=ibis.ifelse(daily.x.isnull(), ibis.null("int64"), daily.day)),
        {
            "x_7": pointintime.Agg("x", "sum", pointintime.Window(7)),
            "x_all": pointintime.Agg("x", "sum"),
            "n_prev": pointintime.Agg("n", "sum", pointintime.Window(30, skip=7)),
            "last_x": pointintime.Agg("x_day", "max"),
            "first_x": pointintime.Agg("x_day", "min"),
            "n_max": pointintime.Agg("n", "max"),
            "n_min": pointintime.Agg("n", "min"),
        },
    )

    def plan(method: pointintime.Method) -> pd.DataFrame:
        found = collect(pointintime.history(spine, lookup, method=method))
        return found.sort_values(["customer_id", "cutoff"], ignore_index=True)

    binned, running = plan("binned"), plan("running")
    pd.testing.assert_frame_equal(binned, running, check_exact=True)
    at = binned.set_index(["customer_id", binned["cutoff"].astype(str)])
    assert at.loc[("a", str(CUTOFF)), "x_7"] == 0  # only a NULL in the last 7 days: an empty sum
    assert at.loc[("a", str(CUTOFF)), "x_all"] == pytest.approx(0.3, abs=1e-12)
    assert at.loc[("a", str(CUTOFF)), "n_prev"] == 3  # days 1 and 20 lie 8-36 days back
    assert at.loc[("b", str(CUTOFF)), "x_all"] == pytest.approx(1e-9, abs=1e-15)  # NULL skipped
    assert pd.isna(at.loc[("d", str(CUTOFF)), "x_all"])  # no history: NULL, not 0
    assert at.loc[("a", str(CUTOFF)), "last_x"] == day(dt.date(2025, 2, 20))
    assert at.loc[("c", str(CUTOFF)), "first_x"] == 0
    assert at.loc[("e", str(CUTOFF)), "x_7"] == 652402310.65
    assert at.loc[("f", str(CUTOFF)), "x_all"] == 1.5e10
    assert (at.loc[("e", str(CUTOFF)), "n_max"], at.loc[("e", str(CUTOFF)), "n_min"]) == (7, -8)
    assert at.loc[("c", str(CUTOFF)), "n_min"] == -(2**63)  # whose negation overflows
    assert at.loc[("f", str(CUTOFF)), "n_max"] == 2**61
    floats = pointintime.Lookup("", daily, {"x_max": pointintime.Agg("x", "max")})
    assert not pointintime._binnable(floats)
    maxima = collect(pointintime.history(spine, floats, method="binned"))
    assert maxima.set_index("customer_id").loc["e", "x_max"] == 484260785.16


def test_fetched_measures_are_narrowed_per_batch_without_changing_a_value(
    con: SQLBackend,
) -> None:
    """Small batches keep one to four bytes; one wide value widens the whole column back."""
    rows = con.create_table(
        "narrow_rows",
        pa.table(
            {
                "order": list(range(6)),
                "small": [1, 0, 1, 1, 0, 1],
                "mixed": [1, -2, 300, 70_000, 2**40, None],
                "x": [0.5, None, float("nan"), 1.0, 2.0, 3.0],
            }
        ),
        temp=True,
    )
    fetched = pointintime._fetched_narrow(rows.order_by("order"), batch_rows=2)
    small, no_gaps = fetched["small"]
    assert small.dtype == "int8" and small.tolist() == [1, 0, 1, 1, 0, 1] and no_gaps is None
    mixed, present = fetched["mixed"]
    assert mixed.dtype == "int64"  # batches of int8, int32 and int64: the widest
    assert mixed.tolist() == [1, -2, 300, 70_000, 2**40, 0]
    assert present is not None and present.tolist() == [True] * 5 + [False]
    x, x_present = fetched["x"]
    assert x_present is not None and x_present.tolist() == [True, False, False, True, True, True]
    assert x.tolist() == [0.5, 0.0, 0.0, 1.0, 2.0, 3.0]  # NaN is missing, as SQL skips NULL


def test_the_binned_plan_drops_its_stored_tables_with_its_expression(con: SQLBackend) -> None:
    """Its results live in temporary tables; a long session must not collect them."""
    data = validated(con, tables([("a", -DAY, 5.0)], [], PEOPLE))
    label = LabelConfig(
        business="non_contractual", activity="transactions", active_window_days=30, horizon_days=30
    )
    # the test's tables are in-memory ones: results are stored in the default engine
    engine = data.tables["transactions"]._find_backend(use_default=True)

    def stored() -> set[str]:
        # (Ibis' list_tables calls a method DuckDB 2.0 no longer has)
        names = engine.raw_sql("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
        return {name for (name,) in names}

    before = stored()
    spine = build_spine(data, [EARLIER, CUTOFF], label)  # one pass, binned for two cutoffs
    made = stored() - before
    assert any(name.startswith("churnmodel_binned_") for name in made)
    assert len(collect(spine)) == 1
    del spine
    gc.collect()
    assert not stored() - before  # its results and the activity bands it stored


def test_no_cutoffs_means_no_eligible_rows(con: SQLBackend) -> None:
    """Nothing to band by: an empty spine, not a crash (campaigns may give no days)."""
    data = validated(con, tables([("a", -DAY, 5.0)], [], PEOPLE))
    label = LabelConfig(business="non_contractual", activity="transactions")
    found = collect(eligible(data, [], label))
    assert found.empty and list(found.columns) == ["customer_id", "cutoff"]


def test_an_empty_spine_gives_every_plan_the_same_typed_empty_table(con: SQLBackend) -> None:
    """Two lookups, no probes: the binned plan falls back to the SQL plan's union of both."""
    daily = con.create_table(
        "empty_daily",
        pa.table({"customer_id": ["a"], "day": [20_000], "x": [1.5], "n": [2]}),
        temp=True,
    )
    spine = con.create_table(
        "empty_spine",
        pa.table({"customer_id": pa.array([], pa.string()), "cutoff": pa.array([], pa.date32())}),
        temp=True,
    )
    lookups = [
        pointintime.Lookup("a_", daily, {"x": pointintime.Agg("x", "sum", pointintime.Window(7))}),
        pointintime.Lookup("b_", daily, {"n": pointintime.Agg("n", "sum")}),
    ]
    found = {
        m: collect(pointintime.history(spine, *lookups, method=m)) for m in ("binned", "running")
    }
    assert found["binned"].empty
    assert found["binned"].dtypes.to_dict() == found["running"].dtypes.to_dict()
