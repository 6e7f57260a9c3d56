"""Defaults found in the data: event types, surveys, attributes, label settings, `init`."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from ibis.backends.sql import SQLBackend
from typer.testing import CliRunner

from churnmodel.cli import app
from churnmodel.config import (
    EngagementConfig,
    FeatureConfig,
    FeedbackConfig,
    ProfileConfig,
    RunConfig,
    load_config,
    parse_config,
)
from churnmodel.discovery import DataFacts, event_type_findings, gather_facts, resolve
from churnmodel.errors import ConfigError, ModelError
from churnmodel.features.matrix import build_feature_matrix
from churnmodel.registry.bundle import ModelBundle
from churnmodel.scoring import check_compatible
from churnmodel.starter import find_tables, guess_columns
from tests.conftest import frame, spine_of, validated

CUTOFF = dt.date(2025, 3, 1)


def events(counts: dict[str, int], value: bool = True) -> pd.DataFrame:
    """`counts[type]` events of each type, spread over January and February."""
    rows = [
        (f"c{i % 7}", f"2025-01-{1 + i % 28:02d} 10:00", kind, 5.0 if kind == "nps" else None)
        for kind, n in counts.items()
        for i in range(n)
    ]
    out = frame(rows, ["customer_id", "timestamp", "event_type", "value"])
    return out if value else out.drop(columns="value")


def facts_of(con: SQLBackend, tables: dict[str, pd.DataFrame]) -> DataFacts:
    return gather_facts(validated(con, tables))


def test_every_frequent_type_gets_features_and_the_rare_ones_are_other(con) -> None:
    counts = {"scroll": 600, "click": 300, "nps": 50, "support_ticket": 45, "share": 4, "undo": 1}
    facts = facts_of(con, {"events": events(counts)})
    assert list(facts.event_types) == ["scroll", "click", "nps", "support_ticket", "share", "undo"]
    features = resolve(RunConfig(), facts).features
    # 1,000 events: 0.1 % is 1 event, so all but the survey and ticket types have their own
    assert features.engagement.types == ["scroll", "click", "share", "undo"]
    assert (
        features.feedback.surveys == ["nps"] and features.feedback.ticket_event == "support_ticket"
    )
    stricter = RunConfig(features=FeatureConfig(engagement=EngagementConfig(min_share=0.01)))
    engagement = resolve(stricter, facts).features.engagement
    assert engagement.types == ["scroll", "click"] and engagement.group_other
    top = RunConfig(features=FeatureConfig(engagement=EngagementConfig(max_types=1)))
    assert resolve(top, facts).features.engagement.types == ["scroll"]


def test_no_value_column_means_no_survey_features_and_no_crash(con) -> None:
    tables = {"events": events({"login": 40, "nps": 10, "support_ticket": 5}, value=False)}
    data = validated(con, tables)
    config = resolve(RunConfig(), gather_facts(data))
    assert config.features.feedback.surveys == []
    matrix = build_feature_matrix(data, spine_of([("c1", CUTOFF)]), config.features)
    names = matrix.feature_names
    assert "ticket_count_30d" in names and not any(n.startswith("nps_") for n in names)
    # even a config naming surveys builds none without answers to read
    named = config.features.model_copy(update={"feedback": FeedbackConfig(surveys=["nps"])})
    again = build_feature_matrix(data, spine_of([("c1", CUTOFF)]), named)
    assert not any(n.startswith("nps_") for n in again.feature_names)


def test_weights_for_types_the_data_lacks_are_an_error(con) -> None:
    facts = facts_of(con, {"events": events({"login": 10})})
    config = RunConfig(features=FeatureConfig(engagement=EngagementConfig(weights={"swipe": 2.0})))
    with pytest.raises(ConfigError, match="swipe"):
        resolve(config, facts)


def test_customer_columns_become_categories_numbers_dates_or_nothing(con) -> None:
    n = 30
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "plan": ["a", "b", "c"] * 10,  # category
            "seats": [float(i % 4 + 1) for i in range(n)],  # number
            "fee_text": [f"{i * 1.5:.2f}" for i in range(n)],  # number written as text (csv)
            "crm_id": list(range(1000, 1000 + n)),  # a distinct whole number each: an id
            "email": [f"x{i}@example.com" for i in range(n)],  # distinct text: an id
            "renewal": pd.to_datetime(["2025-06-01"] * n, utc=True),  # date
            "started": ["2024-02-01"] * n,  # date written as text
            "notes": [None] * n,  # empty
            "vip": [True, False] * 15,  # flag: category
        }
    )
    tx = frame([("c1", "2025-01-05", 10.0)], ["customer_id", "timestamp", "amount"])
    facts = facts_of(con, {"customers": customers, "transactions": tx})
    profile = resolve(RunConfig(), facts).features.profile
    assert profile.attributes == ["plan", "vip"]
    assert profile.numeric == ["seats", "fee_text"]
    assert profile.dates == ["renewal", "started"]
    chosen = ProfileConfig(numeric=["seats"])  # the user picked: nothing else is added
    picked = resolve(RunConfig(features=FeatureConfig(profile=chosen)), facts).features.profile
    assert (picked.attributes, picked.numeric, picked.dates) == ([], ["seats"], [])


def test_numbers_and_dates_written_as_text_become_numeric_features(con) -> None:
    customers = frame(
        [("a", "7", "2025-01-10"), ("b", "x", "2025-05-01"), ("c", None, None)],
        ["customer_id", "seats", "renewal"],
    )
    tx = frame([(c, "2025-02-01", 5.0) for c in "abc"], ["customer_id", "timestamp", "amount"])
    config = FeatureConfig(profile=ProfileConfig(numeric=["seats"], dates=["renewal"]))
    data = validated(con, {"customers": customers, "transactions": tx})
    matrix = build_feature_matrix(data, spine_of([(c, CUTOFF) for c in "abc"]), config)
    rows = matrix.frame.set_index("customer_id")
    assert rows.loc["a", "seats"] == 7.0 and pd.isna(rows.loc["b", "seats"])  # unreadable: missing
    assert rows.loc["a", "renewal_age_days"] == 50  # 2025-01-10 -> 2025-03-01
    assert pd.isna(rows.loc["b", "renewal_age_days"])  # not yet happened at the cutoff


def test_label_settings_follow_the_tables(con) -> None:
    tx = frame(
        [("a", "2024-01-01", 5.0), ("a", "2025-01-01", 5.0)], ["customer_id", "timestamp", "amount"]
    )
    churn = frame([("a", "2024-06-01")], ["customer_id", "churn_date"])
    people = frame([("a", "2023-01-01")], ["customer_id", "signup_date"])
    shop = resolve(RunConfig(), facts_of(con, {"transactions": tx})).label
    assert (shop.business, shop.activity, shop.horizon_days) == (
        "non_contractual",
        "transactions",
        90,
    )
    contract = resolve(
        RunConfig(), facts_of(con, {"transactions": tx, "churn": churn, "customers": people})
    ).label
    assert contract.business == "contractual"
    only_events = resolve(RunConfig(), facts_of(con, {"events": events({"login": 5})})).label
    assert only_events.activity == "any"
    assert only_events.horizon_days == 30  # two months of data: the shortest horizon


def test_resolving_is_idempotent_and_keeps_what_the_user_set(con) -> None:
    facts = facts_of(con, {"events": events({"zed": 10, "alpha": 5})})
    config = RunConfig.model_validate({"label": {"horizon_days": 14}, "cutoffs": {"every": "2w"}})
    once = resolve(config, facts)
    assert once.label.horizon_days == 14 and once.cutoffs.every == "2w"
    assert resolve(once, facts) == once
    # the order of event types (most frequent first) survives JSON with sorted keys
    stored = json.loads(json.dumps(facts.to_dict(), sort_keys=True))
    assert list(DataFacts.from_dict(stored).event_types) == ["zed", "alpha"]
    assert DataFacts.from_dict(stored) == facts


def test_scoring_resolves_the_config_like_training_did(con) -> None:
    facts = facts_of(con, {"events": events({"login": 30, "swipe": 20})})
    trained = resolve(RunConfig(), facts)
    bundle = ModelBundle(None, (), trained, {"data_facts": facts.to_dict()})  # type: ignore[arg-type]
    check_compatible(bundle, RunConfig())  # names only the tables: takes the model's settings
    check_compatible(bundle, RunConfig.model_validate({"label": {"horizon_days": 30}}))
    with pytest.raises(ModelError, match=r"label\.horizon_days: model 30, config 60"):
        check_compatible(bundle, RunConfig.model_validate({"label": {"horizon_days": 60}}))
    with pytest.raises(ModelError, match=r"features\.engagement\.event_types"):
        check_compatible(
            bundle, RunConfig.model_validate({"features": {"engagement": {"event_types": ["x"]}}})
        )


def test_tables_and_columns_are_found_by_their_names(tmp_path: Path) -> None:
    for name in ("Orders.csv", "users.parquet", "usage", "notes.txt"):
        (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("")
    found = find_tables(tmp_path)
    assert found == {
        "customers": tmp_path / "users.parquet",
        "transactions": tmp_path / "Orders.csv",
        "events": tmp_path / "usage",
    }
    assert guess_columns("transactions", ["User ID", "order_ts", "Total", "sku"]) == {
        "customer_id": "User ID",
        "timestamp": "order_ts",
        "amount": "Total",
    }
    with pytest.raises(Exception, match="amount"):
        guess_columns("transactions", ["user_id", "ts", "sku"])
    with pytest.raises(ConfigError, match="no transactions or events table"):
        find_tables(tmp_path / "usage")


def test_init_prints_the_findings_and_writes_a_config_that_trains_the_same(tmp_path: Path) -> None:
    from churnmodel.data.foreign import simulate_subscription, tables

    data = tables(simulate_subscription(600, seed=4))
    folder = tmp_path / "exports"
    folder.mkdir()
    data["customers"].rename(columns={"customer_id": "account_id"}).to_csv(
        folder / "accounts.csv", index=False
    )
    data["events"].rename(columns={"customer_id": "account_id", "event_type": "action"}).to_parquet(
        folder / "events.parquet"
    )
    data["churn"].rename(columns={"customer_id": "account_id"}).to_parquet(folder / "churn.parquet")
    out = tmp_path / "churn.toml"
    result = CliRunner().invoke(app, ["init", "--data", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for expected in ("accounts.csv", "customer_id=account_id", "contractual", "account_uuid"):
        assert expected in result.output
    written = tomllib.loads(out.read_text())
    assert written["data"]["columns"]["events"] == {
        "customer_id": "account_id",
        "event_type": "action",
    }
    assert written["label"]["horizon_days"] == 30 and written["cutoffs"]["every"] == "1w"
    assert written["features"]["profile"]["numeric"] == ["seats"]
    assert "account_uuid" not in written["features"]["profile"]["attributes"]
    config = load_config(out)  # loads, and its paths point at the files
    assert Path(config.data.customers or "").name == "accounts.csv"
    again = CliRunner().invoke(app, ["init", "--data", str(folder), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output


def test_event_types_the_settings_name_but_the_data_lacks_are_said_with_a_near_miss() -> None:
    engagement = {"event_types": ["login", "feature_use"], "group_other": False}
    no_tickets = {"ticket_event": None}  # as resolved for data without them
    config = parse_config({"features": {"engagement": engagement, "feedback": no_tickets}})
    counts = {"Login": 500, "feature_use ": 300, "page_view": 100, "nps": 50}
    findings = event_type_findings(config, counts)
    assert findings == [
        "table 'events', column 'event_type': 'login' (features.engagement.event_types) "
        "never occurs; did you mean 'Login' (500 rows)?",
        "table 'events', column 'event_type': 'feature_use' (features.engagement.event_types) "
        "never occurs; did you mean 'feature_use ' (300 rows)?",
        "table 'events', column 'event_type': 95% of the events have a type no setting uses, "
        "e.g. 'Login' (500), 'feature_use ' (300), 'page_view' (100)",
    ]
    exact = {"login": 500, "feature_use": 300, "page_view": 100}
    assert event_type_findings(config, exact) == []
    nothing_named = parse_config({"features": {"feedback": no_tickets}})
    assert event_type_findings(nothing_named, counts) == []
    tickets = parse_config({"features": {"feedback": {"ticket_event": "support_ticket"}}})
    assert event_type_findings(tickets, counts) == [
        "table 'events', column 'event_type': 'support_ticket' (features.feedback.ticket_event) "
        "never occurs"
    ]
