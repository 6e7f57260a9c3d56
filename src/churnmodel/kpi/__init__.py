"""Retention KPIs and cohort tables from the canonical tables, on any engine.

`compute_kpis` is the entry point; `churnmodel kpis` writes its result.
"""

from churnmodel.kpi.cohorts import Cohorts, cohort_retention
from churnmodel.kpi.periods import complete_periods
from churnmodel.kpi.report import charts, churn_by_segment, cohort_heatmap, overall, write_kpis
from churnmodel.kpi.retention import customer_periods, retention_kpis

__all__ = [
    "Cohorts",
    "charts",
    "churn_by_segment",
    "cohort_heatmap",
    "cohort_retention",
    "complete_periods",
    "customer_periods",
    "overall",
    "retention_kpis",
    "write_kpis",
]
