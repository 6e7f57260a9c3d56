"""The canonical tables as data: which columns each needs and of what kind.

Users map their own column names onto these; nothing else is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """What a column must hold; validation casts and checks by kind."""

    ID = "customer id (text, kept exactly as given)"
    TIMESTAMP = "a timestamp (ISO 8601 text, or a date/time type)"
    NUMBER = "a number"
    TEXT = "text"


@dataclass(frozen=True)
class TableSpec:
    """The contract of one canonical table."""

    name: str
    required: dict[str, Kind]
    optional: dict[str, Kind]
    open_columns: bool = False  # customers keep any extra static attribute
    nullable: frozenset[str] = frozenset()
    may_be_empty: bool = False  # an empty churn table means nobody has churned yet

    @property
    def columns(self) -> dict[str, Kind]:
        """Required and optional columns together."""
        return {**self.required, **self.optional}


CONTRACT: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "customers",
            required={"customer_id": Kind.ID},
            optional={"signup_date": Kind.TIMESTAMP},
            open_columns=True,
            nullable=frozenset({"signup_date"}),
        ),
        TableSpec(
            "transactions",
            required={"customer_id": Kind.ID, "timestamp": Kind.TIMESTAMP, "amount": Kind.NUMBER},
            optional={"quantity": Kind.NUMBER, "category": Kind.TEXT, "order_id": Kind.TEXT},
            nullable=frozenset({"quantity", "category", "order_id"}),
        ),
        TableSpec(
            "events",
            required={"customer_id": Kind.ID, "timestamp": Kind.TIMESTAMP, "event_type": Kind.TEXT},
            optional={"value": Kind.NUMBER},
            nullable=frozenset({"value"}),
        ),
        TableSpec(
            "churn",
            required={"customer_id": Kind.ID, "churn_date": Kind.TIMESTAMP},
            optional={"reason": Kind.TEXT},
            nullable=frozenset({"reason"}),
            may_be_empty=True,
        ),
        TableSpec(
            "campaigns",
            required={
                "customer_id": Kind.ID,
                "campaign_id": Kind.TEXT,
                "sent_at": Kind.TIMESTAMP,
                "treatment": Kind.TEXT,
            },
            optional={"cost": Kind.NUMBER},
            nullable=frozenset({"cost"}),
        ),
    )
}

CONTROL = "control"
"""The `treatment` of the customers a campaign held out at random (contacted by nobody)."""
