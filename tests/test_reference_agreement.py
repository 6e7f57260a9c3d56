"""The Ibis pipeline and the plain pandas reference agree on simulated data.

The reference (benchmarks/reference.py) is a per-cutoff groupby loop written
independently of the window machinery, so agreement on thousands of rows is
strong evidence that both implement the documented definitions.

The simulated tables get extras that the simulator does not make: numeric,
numeric-as-text and date customer attributes, event types that are not
configured (the `other` bucket), a survey type without answers, and a window
longer than the history before the early cutoffs (rates over observed days).
The contractual case also has seven named event types (ratios are built for
the first six), one of them called "Other", and explicit profile columns with
unreadable numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from benchmarks.reference import reference_features

from churnmodel.config import RunConfig
from churnmodel.data.simulate import simulate
from churnmodel.features.catalog import FeatureSpec
from churnmodel.features.matrix import derived_specs
from churnmodel.workflows import build_features

SETTINGS = {
    "non_contractual": {"windows_days": [30, 90, 400]},
    "contractual": {
        # unsorted on purpose; the longest trend window is also a window: with trends
        # [14, 60] and windows [30, 90, 400] the package fails (no ev__active_60 aggregate)
        "windows_days": [400, 30, 60],
        "trend_windows_days": [60, 14],
        "profile": {
            "attributes": ["plan", "country", "channel", "billing"],
            "numeric": ["seats", "fee"],
            "dates": ["renewal"],
        },
    },
}
RELABELLED = ["page_view", "search", "Other", "share", "comment"]
"""Contractual case: login events spread over these too, so there are 7 named types."""


@dataclass(frozen=True)
class Compared:
    business: str
    ours: pd.DataFrame
    theirs: pd.DataFrame
    specs: tuple[FeatureSpec, ...]


@pytest.fixture(scope="module", params=["non_contractual", "contractual"])
def compared(request: pytest.FixtureRequest) -> Compared:
    business = request.param
    data = simulate(1_200, seed=21, business=business)
    tables = _with_extras(data.as_tables(), business)
    config = RunConfig.model_validate(
        {"label": {"business": business}, "features": SETTINGS[business]}
    )
    run = build_features(config, sources=tables)
    features = run.config.features
    _check_exercised(features, business)
    fitted = {spec.name for spec in derived_specs(features)}  # BG/NBD: tested on its own
    ours = run.matrix.frame.drop(columns=["label", *fitted])
    naive = {name: _naive_utc(t) for name, t in tables.items()}
    start = min(naive[n]["timestamp"].min() for n in ("transactions", "events")).floor("D")
    assert start == pd.Timestamp(run.tables.observed_from.date())
    theirs = reference_features(naive, ours[["customer_id", "cutoff"]], features, start)
    keys = ["customer_id", "cutoff"]
    ours = ours.sort_values(keys).set_index(keys)
    theirs = theirs.sort_values(keys).set_index(keys)
    _check_values(ours, features, business, start)
    specs = tuple(s for s in run.matrix.specs if s.name not in fitted)
    return Compared(business, ours, theirs, specs)


@pytest.mark.slow
def test_ibis_features_match_the_pandas_reference(compared: Compared) -> None:
    ours, theirs = compared.ours, compared.theirs
    assert list(theirs.columns) == list(ours.columns)
    assert [s.name for s in compared.specs] == list(ours.columns)
    for spec in compared.specs:
        a, b = ours[spec.name], theirs[spec.name]
        if spec.dtype == "category":
            assert (a.astype("object").fillna("<NA>") == b.astype("object").fillna("<NA>")).all(), (
                spec.name
            )
            continue
        np.testing.assert_allclose(
            a.to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=spec.name
        )
    assert len(ours) > 3_000


def _with_extras(tables: dict[str, pd.DataFrame], business: str) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    customers = tables["customers"].copy()
    n = len(customers)
    customers["seats"] = rng.integers(1, 21, n).astype(float)
    customers.loc[rng.random(n) < 0.05, "seats"] = np.nan
    fee = np.array([f"{x:.2f}" for x in rng.uniform(5, 60, n)], dtype=object)
    fee[rng.random(n) < 0.05] = None
    if business == "non_contractual":
        padded = (rng.random(n) < 0.05) & (fee != None)  # noqa: E711 (elementwise)
        fee[padded] = [f" {v} " for v in fee[padded]]  # whitespace around a number still reads
    else:
        fee[rng.random(n) < 0.05] = "n/a"  # explicit numeric column: unreadable text is NaN
    customers["fee"] = pd.Series(fee, dtype="string")
    renewal = pd.Timestamp("2023-06-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 1_100 * 24 * 60, n), unit="min"
    )
    customers["renewal"] = pd.Series(renewal).where(rng.random(n) >= 0.05)
    events = tables["events"].copy()
    if business == "contractual":
        logins = np.flatnonzero((events["event_type"] == "login").to_numpy())
        relabel = rng.choice(len(RELABELLED) + 1, len(logins), p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
        types = events["event_type"].to_numpy(object)
        types[logins[relabel > 0]] = [RELABELLED[k - 1] for k in relabel[relabel > 0]]
        events["event_type"] = pd.Series(types, dtype="string")
    # rare types (under min_share 0.001 of the events): counted together as other
    rare = events.sample(60, random_state=3).assign(event_type="export", value=np.nan)
    unanswered = events.sample(30, random_state=4).assign(event_type="ces", value=np.nan)
    events = pd.concat([events, rare, unanswered], ignore_index=True)
    events["event_type"] = events["event_type"].astype("string")
    return {**tables, "customers": customers, "events": events}


def _check_exercised(features, business: str) -> None:
    """The resolved config uses what the extras were made for."""
    assert features.engagement.group_other
    assert "ces" not in features.feedback.event_types
    assert "export" not in features.engagement.types
    assert features.profile.numeric == ["seats", "fee"]
    assert features.profile.dates == ["renewal"]
    if business == "contractual":
        assert len(features.engagement.types) == 7
        assert "Other" in features.engagement.types


def _check_values(ours: pd.DataFrame, features, business: str, start: pd.Timestamp) -> None:
    """The agreement above is not an agreement on empty columns."""
    other = "other_types" if business == "contractual" else "other"
    longest = max(features.windows_days)
    assert (ours[f"ev_{other}_count_{longest}d"] > 0).any()
    assert ours["fee"].notna().any() and ours["fee"].isna().any()
    age = ours["renewal_age_days"]
    assert age.notna().any() and age.isna().any()
    cutoffs = ours.index.get_level_values("cutoff")
    assert ((cutoffs - start).days < longest).any()  # rates over fewer observed days
    assert ours[f"ev_active_week_share_{longest}d"].between(0, 1).any()
    if business == "contractual":
        ratios = [c for c in ours.columns if "_per_" in c and c.endswith("_14d")]
        assert len(ratios) == 15  # pairs of the first 6 of 7 named types


def _naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return out
