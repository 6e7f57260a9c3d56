"""The run configuration: one TOML file drives features, training and scoring.

The shape follows the architecture doc, so a config written today keeps
working tomorrow. Unknown keys are errors (`extra="forbid"`): a typo must not
silently fall back to a default. Relative paths are resolved against the
directory of the config file, so a config can be run from anywhere.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from churnmodel.errors import ConfigError

if TYPE_CHECKING:
    from churnmodel.data.quality import QualityRules

TABLES = ("customers", "transactions", "events", "churn", "campaigns")
Tier = Literal["high", "medium", "low"]
T = TypeVar("T")


def resolved(value: T | None, key: str) -> T:
    """A setting that `churnmodel.discovery.resolve` fills in from the data.

    Reading it before the config was resolved is a bug in the caller, not a
    user error, so it raises a plain RuntimeError naming the key.
    """
    if value is None:
        raise RuntimeError(f"{key} is read before the config was resolved against the data")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NumberStyle = Literal["check", "point", "comma"]
"""How numbers written as text are read (see `DataConfig.number_style`)."""


class DataConfig(_Strict):
    """Where the canonical tables come from and how their columns are named.

    A table is a local path (parquet file or folder, csv), a URI the engine
    reads itself (``s3://...``, ``abfss://...``, ``dbfs:/...``), a Delta
    folder (Spark), or ``table:NAME`` for a table the engine already knows
    (a Spark catalog table or temporary view).
    """

    engine: Literal["duckdb", "spark"] = "duckdb"
    # e.g. "4GB": DuckDB spills to disk beyond it (the value goes into a SET statement)
    memory_limit: str | None = Field(None, pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$")
    # e.g. "local[2]", "spark://host:7077"; None: what spark-submit set, else local[*]
    spark_master: str | None = None
    # extra settings for a Spark session churnmodel starts, e.g. spark.driver.memory = "8g"
    spark_conf: dict[str, str] = Field(default_factory=dict)
    # a training matrix with more rows is sampled, stratified by cutoff and label
    max_matrix_rows: int | None = Field(None, gt=0)
    customers: str | None = None
    transactions: str | None = None
    events: str | None = None
    churn: str | None = None
    # past retention campaigns with a random control group, for uplift (`train-uplift`)
    campaigns: str | None = None
    columns: dict[str, dict[str, str]] = Field(default_factory=dict)
    duplicates: Literal["keep", "drop"] = "keep"
    # numbers in text files: "check" stops on 3.260-like values, "point" reads them as 3.26,
    # "comma" reads 1.234,56 (German style)
    number_style: NumberStyle = "check"
    # timestamps after today, before 1970 or past a long gap are left out of the observed range
    # while at most this share of activity rows; more stops the run
    max_outlier_share: float = Field(0.001, ge=0, le=1)
    # rows of a table whose customer_id is not in customers; more stops the run
    max_unmatched_share: float = Field(0.01, ge=0, le=1)

    def quality_rules(self) -> QualityRules:
        """The settings of the cross-row checks (`churnmodel.data.quality`)."""
        from churnmodel.data.quality import QualityRules

        return QualityRules(self.number_style, self.max_outlier_share, self.max_unmatched_share)

    def sources(self) -> dict[str, str]:
        """The configured table locations keyed by canonical table name."""
        found = {name: getattr(self, name) for name in TABLES}
        return {name: where for name, where in found.items() if where is not None}


class LabelConfig(_Strict):
    """What churn means for this business (see the architecture doc, time semantics).

    None means "found in the data" (`churnmodel.discovery`): the business is
    contractual when there is a churn table; the horizon is 90 days unless
    the history is too short to backtest it (then 60 or 30); activity is
    purchases when there are transactions, else any row.
    """

    business: Literal["contractual", "non_contractual"] | None = None
    horizon_days: int | None = Field(None, gt=0)
    activity: Literal["transactions", "any"] | None = None
    active_window_days: int = Field(90, gt=0)

    @property
    def contractual(self) -> bool:
        """Whether cancellations are observed (a resolved config has a business)."""
        return resolved(self.business, "label.business") == "contractual"

    @property
    def horizon(self) -> int:
        """The label window in days (of a resolved config)."""
        return resolved(self.horizon_days, "label.horizon_days")

    @property
    def counts_as_activity(self) -> tuple[str, ...]:
        """The tables whose rows count as activity for eligibility and labels."""
        if resolved(self.activity, "label.activity") == "transactions":
            return ("transactions",)
        return ("transactions", "events")


class CutoffConfig(_Strict):
    """The cutoff schedule; None means the rule in `timeline.cutoffs.default_schedule`.

    `holdout` is the number of backtest cutoffs: each is scored by a model
    trained only on cutoffs whose label window ends before it.
    """

    every: str | None = None
    first: dt.date | None = None
    last: dt.date | None = None
    holdout: int | None = Field(None, ge=1)
    # the default schedule keeps at most this many (the newest) cutoffs
    max_cutoffs: int = Field(24, ge=2)

    @field_validator("every")
    @classmethod
    def _known_step(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[1-9]\d*(d|w|mo)", value):
            raise ValueError(f"expected a step like '7d', '2w' or '1mo', got {value!r}")
        return value


class EngagementConfig(_Strict):
    """Which event types get features of their own, and their weights in the score.

    None: every type with at least `min_share` of the events (at most
    `max_types`, the most frequent first), survey and ticket types aside.
    Events of any other type are counted together as `other` when
    `group_other` is true (None: when the data has such events).
    """

    event_types: list[str] | None = None
    min_share: float = Field(0.001, ge=0, lt=1)
    max_types: int = Field(20, ge=1)
    group_other: bool | None = None
    weights: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _weights_name_known_types(self) -> EngagementConfig:
        if self.event_types is None:
            return self
        unknown = sorted(set(self.weights) - set(self.event_types))
        if unknown:
            raise ValueError(f"weights given for event types not in event_types: {unknown}")
        return self

    @property
    def types(self) -> list[str]:
        """The event types with features of their own (of a resolved config)."""
        return resolved(self.event_types, "features.engagement.event_types")

    def weight(self, event_type: str) -> float:
        """The weight of an event type in the engagement score (1.0 unless configured)."""
        return self.weights.get(event_type, 1.0)


class FeedbackConfig(_Strict):
    """Event types that carry support tickets and survey answers (in `value`).

    Features are built only for the types the data has: training drops a
    ticket type that never occurs and surveys without any answer value.
    """

    ticket_event: str | None = "support_ticket"
    surveys: list[str] = Field(default_factory=lambda: ["nps", "csat", "ces"])

    @property
    def event_types(self) -> list[str]:
        """The event types this family reads: surveys, then the ticket type."""
        return [*self.surveys, *([self.ticket_event] if self.ticket_event else [])]


class ProfileConfig(_Strict):
    """Static customer attributes; None means found in `customers` (`churnmodel.discovery`).

    `attributes` are categories (text with at most `max_categories` values),
    `numeric` numbers, `dates` become an age in days at the cutoff. Text
    with more distinct values (ids, e-mails, free text) is left out.
    """

    attributes: list[str] | None = None
    numeric: list[str] | None = None
    dates: list[str] | None = None
    max_categories: int = Field(50, ge=2)


class FeatureConfig(_Strict):
    """Windows and feature-family settings."""

    windows_days: list[int] = Field(default_factory=lambda: [30, 90, 180, 365])
    trend_windows_days: list[int] = Field(default_factory=lambda: [30, 90])
    engagement: EngagementConfig = Field(default_factory=EngagementConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    # BG/NBD P(alive) and expected purchases; None: on for non-contractual data with purchases
    bgnbd: bool | None = None
    # the expected purchases cover this many days; None: the label horizon
    bgnbd_horizon_days: int | None = Field(None, gt=0)

    @field_validator("windows_days", "trend_windows_days")
    @classmethod
    def _positive_unique(cls, value: list[int]) -> list[int]:
        if any(w <= 0 for w in value) or len(set(value)) != len(value):
            raise ValueError(f"expected distinct positive day counts, got {value}")
        return sorted(value)


class ModelConfig(_Strict):
    """LightGBM settings, calibration and the rolling-origin backtest.

    The defaults are deliberately conservative (small learning rate, small
    regularised trees, their number chosen by the backtest, a strongly
    regularised logistic regression) so a first run on a few thousand
    customers is sound without tuning; `churnmodel train --tune N` searches
    around them.
    """

    learning_rate: float = Field(0.05, gt=0, le=1)
    # small, regularised trees: measured best on ~100 churners per cutoff (docs/training.md)
    num_leaves: int = Field(7, ge=2)
    min_child_samples: int = Field(100, ge=1)
    feature_fraction: float = Field(0.5, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    lambda_l2: float = Field(10.0, ge=0)
    # weigh churners up to balance the classes (LightGBM's is_unbalance); lowered the
    # backtest ROC AUC on every data set tried, so off
    balance_classes: bool = False
    # the most trees the backtest tries; it keeps the count that scores best
    n_estimators: int = Field(1000, ge=1)
    # a fold stops growing trees after this many without a better ROC AUC
    early_stopping_rounds: int = Field(50, ge=1)
    # a backtest fold with more training rows fits on a seeded sample of this many, the same
    # share of every (cutoff, label) stratum; its scored rows and the refit use every row.
    # None: every row (docs/training.md has what the sample costs in ROC AUC)
    backtest_max_rows: int | None = Field(300_000, gt=0)
    # inverse L2 strength of the logistic regression candidate (standardised features)
    logistic_c: float = Field(0.01, gt=0)
    # platt: strictly monotone, never 0 or 1 (see model/calibration.py for the measurements)
    calibration: Literal["isotonic", "platt", "none"] = "platt"
    seed: int = 0
    # no longer used (the backtest replaced the validation cutoff); accepted so older configs load
    validation: int | None = Field(None, ge=1)
    # a backtest ROC AUC at or above this is too good to be true: warn of leakage
    leakage_auc: float = Field(0.98, gt=0.5, le=1)


class ReasonRule(_Strict):
    """How one feature becomes a sentence in the outreach list, and what to do about it.

    `feature` is a regular expression matched against the whole feature name;
    its named groups, the feature's `value`, `pct_down` (for ratios, how far
    below 1 in %) and every feature of the customer can be used in `text`
    (Python format syntax). A rule whose fields are missing for a customer is
    skipped, so a more specific rule can come first. `below` restricts the
    rule to values under a bound (e.g. tenure under 90 days).
    """

    feature: str
    text: str
    action: str
    below: float | None = None


def _contacted_tiers() -> list[Tier]:
    return ["high", "medium"]


class OutreachConfig(_Strict):
    """Risk tiers, segments and reasons of the outreach list."""

    # "top_share": high/medium are shares of scored customers (highest
    # probabilities first); "probability": they are probability thresholds
    tiers: Literal["top_share", "probability"] = "top_share"
    high: float = Field(0.05, gt=0, le=1)
    medium: float = Field(0.20, gt=0, le=1)
    # the tiers the team contacts: every row in them gets reasons and an action, up to
    # max_reason_rows (TreeSHAP costs ~1000x a prediction; beyond the cap, a warning)
    reason_tiers: list[Tier] = Field(default_factory=_contacted_tiers)
    max_reason_rows: int = Field(100_000, ge=0)
    new_customer_days: int = Field(90, gt=0)
    high_value_share: float = Field(0.2, gt=0, le=1)
    # checked before the built-in rules; first applicable rule wins
    reasons: list[ReasonRule] = Field(default_factory=list)
    # the csv files people open: "german" for Excel with a German locale (; and decimal comma)
    csv_style: Literal["international", "german"] = "international"
    # csv headers: "names" (machine names, read back by every command), "en" or "de" words
    headers: Literal["names", "en", "de"] = "names"
    # shown after money in the report (e.g. "EUR" or "€"); the amounts' own currency
    currency: str = ""

    @model_validator(mode="after")
    def _ordered_tiers(self) -> OutreachConfig:
        if self.tiers == "top_share" and self.high > self.medium:
            raise ValueError(f"high ({self.high}) must not exceed medium ({self.medium}) as shares")
        if self.tiers == "probability" and self.high < self.medium:
            raise ValueError(f"high ({self.high}) must not be below medium ({self.medium})")
        return self


class KpiConfig(_Strict):
    """Retention KPIs: period length, segment breakdowns, survey names and CLV settings."""

    period: Literal["month", "quarter"] = "month"
    # static customer attributes to break every KPI down by (e.g. ["plan", "country"])
    segments: list[str] = Field(default_factory=list)
    nps_event: str = "nps"  # answers 0-10
    csat_event: str = "csat"  # answers 1-5
    ces_event: str = "ces"  # answers 1-7
    # CLV = AOV x purchase frequency x expected lifespan x margin
    margin: float = Field(1.0, gt=0, le=1)
    # expected lifespan in periods; None: 100 / churn rate of the period
    lifespan_periods: float | None = Field(None, gt=0)


MONITOR_IGNORE = (
    "*tenure*",
    "*_age_days",
    "*_total",
    "*_count",
    "tx_p_alive",
    "tx_expected_purchases_*",
)
"""Features that drift by design as the customer base ages: tenure, attribute
ages, lifetime totals, survey answer counts and the BG/NBD outputs (which
depend on a customer's age). Their drift is reported, never alarmed on."""


class MonitorConfig(_Strict):
    """When `churnmodel monitor` raises an alert (exit code 3) between retrains."""

    # feature names (shell patterns) whose drift is shown but never alarms
    ignore: list[str] = Field(default_factory=lambda: list(MONITOR_IGNORE))

    # population stability index per feature: 0.1 is a moderate shift, 0.25 a large one
    psi: float = Field(0.25, gt=0)
    # absolute increase of a feature's missing share over training (0.1 = 10 points)
    missing_increase: float = Field(0.10, gt=0, le=1)
    # share of rows whose category was never seen in training
    new_categories: float = Field(0.05, gt=0, le=1)
    # live ROC AUC below the model's backtest ROC AUC minus this
    auc_drop: float = Field(0.05, gt=0, le=1)
    # expected calibration error of the live probabilities above this
    max_ece: float = Field(0.05, gt=0, le=1)


class MlflowConfig(_Strict):
    """Tracking and registry; `tracking_uri` falls back to MLFLOW_TRACKING_URI, then sqlite."""

    tracking_uri: str | None = None
    experiment: str = "churnmodel"
    registered_model: str = "churnmodel"
    # where the champion is exported for scoring without a tracking server;
    # in a config file, relative to the file's folder (like the default store)
    export_dir: Path = Path("models")


class RunConfig(_Strict):
    """One run of churnmodel: data, label, cutoffs, features, model, outreach, KPIs, tracking."""

    data: DataConfig = Field(default_factory=DataConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)
    cutoffs: CutoffConfig = Field(default_factory=CutoffConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    outreach: OutreachConfig = Field(default_factory=OutreachConfig)
    kpi: KpiConfig = Field(default_factory=KpiConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)


def load_config(path: Path | str) -> RunConfig:
    """Read a TOML run config; every relative path in it is taken from the file's folder.

    That covers the data, `mlflow.export_dir` and a relative sqlite store,
    and the default store is `mlflow.db` beside the file (unless
    MLFLOW_TRACKING_URI names one), so a scheduler that runs
    ``churnmodel score --config /abs/churn.toml`` from any folder finds the
    same registry and models as the training did.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; expected a .toml file")
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    home = path.parent.resolve()
    data = raw.get("data", {})
    for name in TABLES:
        where = data.get(name)
        if isinstance(where, str) and is_local_path(where):
            data[name] = str(home / where)
    raw["mlflow"] = _mlflow_paths(raw.get("mlflow", {}), home)
    return parse_config(raw, source=str(path))


def _mlflow_paths(section: Any, home: Path) -> Any:
    """The tracking store and export folder of a config file, anchored at its folder."""
    if not isinstance(section, dict):
        return section  # validation names the problem
    section = dict(section)
    uri = section.get("tracking_uri")
    if uri is None and not os.environ.get("MLFLOW_TRACKING_URI"):
        uri = "sqlite:///mlflow.db"
    if isinstance(uri, str) and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{home / uri.removeprefix('sqlite:///')}"
    if uri is not None:
        section["tracking_uri"] = uri
    export_dir = section.get("export_dir", "models")
    if isinstance(export_dir, str):
        section["export_dir"] = str(home / export_dir)
    return section


def is_local_path(where: str) -> bool:
    """False for ``table:NAME`` and for URIs with a scheme (``s3://``, ``dbfs:/``)."""
    return not re.match(r"^(table:|[a-zA-Z][a-zA-Z0-9+.-]+:/)", where)


def parse_config(raw: dict[str, object], source: str = "config") -> RunConfig:
    """Validate a config mapping, turning pydantic's report into one readable error."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc
