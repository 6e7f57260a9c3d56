"""Column-safe names for the user's own words (event types, attribute values)."""

from __future__ import annotations

import re


def slug(value: str) -> str:
    """A column-safe form of a user's name for something (e.g. an event type).

    >>> slug("Feature Use!")
    'feature_use'
    """
    cleaned = re.sub(r"[^0-9a-z]+", "_", value.lower()).strip("_")
    return cleaned or "blank"
