"""Evaluation metrics, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from churnmodel.model.evaluate import evaluate_scores, expected_calibration_error, top_share


def test_lift_and_capture_at_the_top() -> None:
    labels = [1, 0, 1, 0, 0, 0, 0, 0, 1, 0]  # 3 churners in 10
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    assert top_share(labels, scores, 0.1) == pytest.approx((1 / 0.3, 1 / 3))  # top 1: a churner
    assert top_share(labels, scores, 0.2) == pytest.approx((0.5 / 0.3, 1 / 3))  # top 2: one churner
    assert top_share(labels, scores, 0.25) == pytest.approx(((2 / 3) / 0.3, 2 / 3))  # top 3 rows
    assert all(math.isnan(v) for v in top_share([0, 0], [0.1, 0.2], 0.5))


def test_calibration_error_of_perfectly_calibrated_bins_is_zero() -> None:
    labels = [0] * 8 + [1] * 2 + [1] * 8 + [0] * 2
    probabilities = [0.2] * 10 + [0.8] * 10
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.0)


def test_metrics_of_a_perfect_ranking_and_of_raw_scores() -> None:
    labels = [0, 0, 0, 1]
    perfect = evaluate_scores(labels, [0.1, 0.2, 0.3, 0.9])
    assert perfect.roc_auc == 1.0 and perfect.pr_auc == 1.0
    assert perfect.churn_rate == 0.25 and perfect.rows == 4
    assert perfect.brier == pytest.approx((0.01 + 0.04 + 0.09 + 0.01) / 4)
    raw = evaluate_scores(labels, [3, 20, 1, 94])  # e.g. days since last purchase
    assert raw.roc_auc == pytest.approx(1.0)
    assert math.isnan(raw.brier) and math.isnan(raw.ece)  # not probabilities
