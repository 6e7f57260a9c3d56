"""BG/NBD: the likelihood's slope and the fit it guides, on data drawn from known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from churnmodel.features.bgnbd import BgNbd, _log_likelihood_and_gradient

TRUE = BgNbd(r=0.6, alpha=3.0, a=0.8, b=2.5)


def drawn(model: BgNbd, customers: int, seed: int = 7) -> tuple[np.ndarray, ...]:
    """(x, t_x, T) in weeks of customers who buy and drop out as the model says."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(model.r, 1.0 / model.alpha, customers)
    drop = rng.beta(model.a, model.b, customers)
    big_t = rng.uniform(20.0, 80.0, customers)
    x, t_x = np.zeros(customers), np.zeros(customers)
    for i in range(customers):
        now = 0.0
        while True:
            now += rng.exponential(1.0 / rate[i])
            if now >= big_t[i]:
                break
            x[i], t_x[i] = x[i] + 1, now
            if rng.random() < drop[i]:  # gone after this purchase
                break
    return x, t_x, big_t


def test_the_gradient_is_the_slope_of_the_likelihood() -> None:
    """Against central differences at a point away from the optimum, each parameter in turn."""
    x, t_x, big_t = drawn(TRUE, 500)
    params = np.array([0.4, 5.0, 1.3, 1.7])
    _, gradient = _log_likelihood_and_gradient(params, x, t_x, big_t)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6 * params[i]
        up = _log_likelihood_and_gradient(params + step, x, t_x, big_t)[0].mean()
        down = _log_likelihood_and_gradient(params - step, x, t_x, big_t)[0].mean()
        assert gradient[i] == pytest.approx((up - down) / (2 * step[i]), rel=1e-5, abs=1e-8)


def test_the_fit_finds_the_parameters_the_data_was_drawn_from() -> None:
    x, t_x, big_t = drawn(TRUE, 20_000)
    fitted = BgNbd.fit(x, t_x, big_t)
    assert fitted is not None
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.2), name
    # the optimum: the likelihood's slope vanishes there
    params = np.array([fitted.r, fitted.alpha, fitted.a, fitted.b])
    _, gradient = _log_likelihood_and_gradient(params, x, t_x, big_t)
    assert np.all(np.abs(gradient * params) < 1e-4)
