"""From scores to a list a retention team can act on: tiers, value at risk, reasons, actions."""

from churnmodel.outreach.build import COLUMNS, build_outreach
from churnmodel.outreach.export import filter_outreach, write_outreach

__all__ = ["COLUMNS", "build_outreach", "filter_outreach", "write_outreach"]
