"""The buy-till-you-die view for non-contractual data: BG/NBD P(alive) and expected purchases.

The BG/NBD model (Fader, Hardie & Lee, "Counting your customers the easy
way", Marketing Science 2005) says each customer buys at their own Poisson
rate (gamma-distributed, parameters r and alpha) and, after any purchase,
drops out for good with their own probability (beta-distributed, a and b).
Fitted on the customers' (x, t_x, T) — repeat purchase days, the time of the
last one and the time since the first, all before the cutoff — it gives two
numbers per customer that recency and frequency alone do not: the
probability the customer is still "alive", and the purchases to expect in
the next days.

Point in time: at each training cutoff the model is fitted on that
cutoff's rows only, whose summaries come from history before the cutoff.
Scoring uses the parameters fitted at the newest training cutoff (stored
with the model): still only the past, the same on every engine, and no
population-wide fit in a batch job. Time runs in weeks; a fit uses at
most `FIT_ROWS` rows (a seeded sample) because the four parameters are
population-level.

The fit is a small maximum-likelihood search (scipy's L-BFGS-B on log
parameters) rather than pymc-marketing's CLV module, which would bring
PyMC, PyTensor and their compilers into the lock for four numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

Array = npt.NDArray[np.float64]
FIT_ROWS = 20_000
MIN_ROWS = 10
"""Fewer customers with a purchase than this cannot identify four parameters: no fit."""
WEEK = 7.0
SUMMARY = ("tx_purchase_days_total", "tx_tenure_days", "days_since_last_tx")
"""The feature columns the model reads: purchase days, days since the first and the last."""


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (time in weeks)."""

    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(cls, x: Array, t_x: Array, big_t: Array) -> BgNbd | None:
        """Maximum-likelihood parameters, or None when the data cannot identify them."""
        if len(x) < MIN_ROWS or not np.any(x > 0):
            return None

        def loss(log_params: Array) -> tuple[float, Array]:
            params = np.exp(log_params)
            each, gradient = _log_likelihood_and_gradient(params, x, t_x, big_t)
            value = -float(np.mean(each))
            if not math.isfinite(value):
                return 1e12, np.zeros(4)
            # the search runs on log parameters: d/d(log p) = p d/dp
            return value, -gradient * params

        with np.errstate(all="ignore"):
            found = minimize(
                loss,
                x0=np.zeros(4),
                jac=True,  # one pass for value and slope: finite differences took five
                method="L-BFGS-B",
                bounds=[(-8.0, 8.0)] * 4,
            )
        if not np.all(np.isfinite(found.x)):
            return None
        r, alpha, a, b = np.exp(found.x).tolist()
        return cls(r, alpha, a, b)

    def p_alive(self, x: Array, t_x: Array, big_t: Array) -> Array:
        """P(the customer has not dropped out) given their history."""
        with np.errstate(all="ignore"):
            return np.asarray(1.0 / (1.0 + self._odds_dead(x, t_x, big_t)))

    def expected_purchases(self, weeks: float, x: Array, t_x: Array, big_t: Array) -> Array:
        """Expected repeat purchase days in the next `weeks` (equation 10 of the paper)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if abs(a - 1.0) < 1e-6:  # the closed form divides by a - 1
            a = 1.0 + 1e-6
        with np.errstate(all="ignore"):
            z = weeks / (alpha + big_t + weeks)
            head = (a + b + x - 1.0) / (a - 1.0)
            tail = ((alpha + big_t) / (alpha + big_t + weeks)) ** (r + x) * hyp2f1(
                r + x, b + x, a + b + x - 1.0, z
            )
            value = head * (1.0 - tail) / (1.0 + self._odds_dead(x, t_x, big_t))
        return np.asarray(np.where(np.isfinite(value), np.maximum(value, 0.0), np.nan))

    def _odds_dead(self, x: Array, t_x: Array, big_t: Array) -> Array:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        ratio = (a / (b + np.maximum(x, 1.0) - 1.0)) * ((alpha + big_t) / (alpha + t_x)) ** (r + x)
        return np.asarray(np.where(x > 0, ratio, 0.0))

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BgNbd:
        """Inverse of `to_dict`."""
        return cls(**{k: float(v) for k, v in data.items()})


def _log_likelihood_and_gradient(
    params: Array, x: Array, t_x: Array, big_t: Array
) -> tuple[Array, Array]:
    """Per-customer log-likelihood, and the gradient of its mean in (r, alpha, a, b).

    Equation 6 of the paper, in a stable form. The likelihood is a sum of
    the customer staying alive through T and of dropping out after the last
    purchase (``logaddexp(stay, leave)``); each part's slope counts by its
    share of the sum.
    """
    r, alpha, a, b = params
    first = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    second = betaln(a, b + x) - betaln(a, b)
    stay = -(r + x) * np.log(alpha + big_t)
    buys = b + np.maximum(x, 1.0) - 1.0
    leave = np.where(x > 0, np.log(a) - np.log(buys) - (r + x) * np.log(alpha + t_x), -np.inf)
    either = np.logaddexp(stay, leave)
    p_stay, p_leave = np.exp(stay - either), np.exp(leave - either)
    d_r = (
        digamma(r + x)
        - digamma(r)
        + np.log(alpha)
        - p_stay * np.log(alpha + big_t)
        - p_leave * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - (r + x) * (p_stay / (alpha + big_t) + p_leave / (alpha + t_x))
    d_a = digamma(a + b) - digamma(a + b + x) + p_leave / a
    d_b = digamma(b + x) - digamma(a + b + x) - digamma(b) + digamma(a + b) - p_leave / buys
    gradient = np.array([np.mean(d) for d in (d_r, d_alpha, d_a, d_b)])
    return np.asarray(first + second + either), gradient


def summaries(frame: pd.DataFrame) -> tuple[Array, Array, Array]:
    """(x, t_x, T) in weeks from the feature columns; rows without purchases are NaN."""
    days = frame[SUMMARY[0]].to_numpy(np.float64)
    big_t = frame[SUMMARY[1]].to_numpy(np.float64)
    recency = frame[SUMMARY[2]].to_numpy(np.float64)
    x = np.where(days > 0, days - 1.0, np.nan)
    return x, (big_t - recency) / WEEK, big_t / WEEK


def fit_at_cutoff(rows: pd.DataFrame, seed: int = 0) -> BgNbd | None:
    """Fit on one cutoff's rows (a seeded sample of at most `FIT_ROWS` with a purchase)."""
    x, t_x, big_t = summaries(rows)
    known = np.flatnonzero(np.isfinite(x) & np.isfinite(big_t) & (big_t > 0))
    if len(known) > FIT_ROWS:
        known = np.sort(np.random.default_rng(seed).choice(known, FIT_ROWS, replace=False))
    return BgNbd.fit(x[known], t_x[known], big_t[known])


def bgnbd_columns(rows: pd.DataFrame, model: BgNbd | None, horizon_days: int) -> dict[str, Array]:
    """P(alive), expected purchase days in the label horizon and in a year, per row."""
    names = feature_names(horizon_days)
    if model is None:
        return {n: np.full(len(rows), np.nan) for n in names}
    x, t_x, big_t = summaries(rows)
    return dict(
        zip(
            names,
            (
                model.p_alive(x, t_x, big_t),
                model.expected_purchases(horizon_days / WEEK, x, t_x, big_t),
                model.expected_purchases(365 / WEEK, x, t_x, big_t),
            ),
            strict=True,
        )
    )


def feature_names(horizon_days: int) -> tuple[str, str, str]:
    """Column names of the three BG/NBD features."""
    return (
        "tx_p_alive",
        f"tx_expected_purchases_{horizon_days}d",
        "tx_expected_purchases_365d",
    )
