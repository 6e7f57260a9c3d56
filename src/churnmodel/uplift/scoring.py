"""Predicted uplift of the scored customers, from the uplift model's own features."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import ibis
import pandas as pd
import pyarrow as pa

from churnmodel.data.validate import ValidatedTables
from churnmodel.errors import ModelError
from churnmodel.features.matrix import build_feature_matrix
from churnmodel.timeline import build_spine
from churnmodel.uplift.bundle import WHAT, UpliftBundle


def predicted_uplift(
    tables: ValidatedTables,
    bundle: UpliftBundle,
    customers: pd.Series,
    as_of: dt.date,
    progress: Callable[[str], None] = lambda _: None,
) -> pd.DataFrame:
    """Per customer id (the index) and offer: the predicted drop in churn probability.

    The features are built with the settings the uplift model learned with
    (its `config.json`), at `as_of`, for the given customers that are
    eligible under its label settings; the others are missing from the result
    (the caller says how many).
    BG/NBD, if the settings use it, is fitted at `as_of` as it was at each
    send day in training.
    """
    ids = ibis.memtable(pa.table({"customer_id": pa.array(customers, pa.string())}))
    spine = build_spine(tables, [as_of], bundle.config.label, with_labels=False)
    matrix = build_feature_matrix(
        tables, spine.semi_join(ids, "customer_id"), bundle.config.features, progress=progress
    )
    missing = [n for n in bundle.model.feature_names if n not in matrix.frame.columns]
    if missing:
        raise ModelError(
            f"{WHAT}: expected its {len(bundle.model.feature_names)} feature columns; "
            f"{len(missing)} not built from this data (e.g. {', '.join(missing[:3])}); "
            "retrain it with `churnmodel train-uplift` on data with the same tables"
        )
    frame = matrix.frame
    return bundle.model.uplift(frame).set_axis(frame["customer_id"].astype(str).to_numpy())
