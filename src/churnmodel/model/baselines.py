"""Simple baselines scored on the same rows as the model, so every run shows its worth.

* recency only: a logistic curve on days since the last purchase (or, with
  no transactions, the last event); missing recency gets its own indicator;
* logistic regression on every feature: median-imputed with missing
  indicators, standardised numbers, one-hot attributes.

Both return calibrated-ish probabilities (logistic fits), so Brier score and
calibration error are comparable with the model's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

RECENCY_COLUMNS = ("days_since_last_tx", "days_since_last_event")


def recency_column(features: pd.DataFrame) -> str:
    """The recency feature the baseline uses."""
    return next(c for c in RECENCY_COLUMNS if c in features.columns)


def recency_baseline() -> Pipeline:
    """log(1 + days since last activity), with a missing indicator, into a logistic curve."""
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        FunctionTransformer(np.log1p),
        LogisticRegression(),
    )


def logistic_baseline(features: pd.DataFrame) -> Pipeline:
    """Logistic regression on all features of `features`' layout."""
    categorical = [
        c for c in features.columns if isinstance(features[c].dtype, pd.CategoricalDtype)
    ]
    numeric = [c for c in features.columns if c not in categorical]
    prepare = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return make_pipeline(prepare, LogisticRegression(max_iter=2000))


def fit_predict_baselines(
    train: pd.DataFrame, labels: npt.ArrayLike, holdout: pd.DataFrame
) -> dict[str, npt.NDArray[np.float64]]:
    """Fit both baselines on `train` and return their churn probabilities on `holdout`."""
    column = [recency_column(train)]
    recency = recency_baseline().fit(train[column], labels)
    logistic = logistic_baseline(train).fit(_as_object(train), labels)
    return {
        "recency": recency.predict_proba(holdout[column])[:, 1],
        "logistic": logistic.predict_proba(_as_object(holdout))[:, 1],
    }


def _as_object(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as plain objects with a missing marker, which OneHotEncoder accepts."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype("object").where(out[column].notna(), "<missing>")
    return out
