"""TreeSHAP by patterns gives LightGBM's own pred_contrib, row for row.

The split rules are checked where they are easy to get wrong: NaN under each
missing type, zeros under zero_as_missing, values exactly at a threshold and
one step either side, unseen and missing categories, categorical bit sets
of more than one 32-bit word, trees beyond the dense pattern table, and the
best iteration of an early-stopped booster.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnmodel.model.treeshap import (
    DENSE_SPLITS,
    by_patterns,
    difference_from_lightgbm,
    lightgbm_matrix,
    patterned_trees,
    tree_contributions,
)

REGIONS = [f"r{i:02d}" for i in range(40)]
VARIANTS = [
    {"num_leaves": 7},
    {"num_leaves": 40, "min_child_samples": 5},  # more splits than the dense table holds
    {"num_leaves": 7, "zero_as_missing": True},
    {"num_leaves": 7, "use_missing": False},
    {"num_leaves": 15, "max_cat_to_onehot": 64},  # one-vs-rest category splits
]


def _frame(seed: int, rows: int, regions: list[str] = REGIONS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 50.0, rows)
    amount[rng.random(rows) < 0.15] = np.nan
    count = rng.poisson(0.7, rows).astype(float)  # mostly zeros
    ratio = np.where(rng.random(rows) < 0.3, 0.0, rng.normal(0, 1, rows))
    ratio[rng.random(rows) < 0.1] = np.nan
    plan = pd.Categorical(rng.choice(["a", "b", "c", None], rows), categories=["a", "b", "c"])
    region = pd.Categorical(rng.choice(regions, rows), categories=list(dict.fromkeys(regions)))
    return pd.DataFrame(
        {"amount": amount, "count": count, "ratio": ratio, "plan": plan, "region": region}
    )


def _booster(seed: int, params: dict[str, object], rounds: int = 25) -> lgb.Booster:
    frame = _frame(seed, 1500)
    rng = np.random.default_rng(seed + 1)
    risk = (
        0.01 * np.nan_to_num(frame["amount"], nan=80.0)
        - frame["count"]
        + np.nan_to_num(frame["ratio"])
        + (frame["plan"] == "b")
        + frame["region"].cat.codes.to_numpy() % 3
    )
    label = (risk + rng.normal(0, 1, len(frame)) > 1.5).astype(int)
    base = {"objective": "binary", "verbosity": -1, "seed": seed, "min_data_per_group": 5}
    return lgb.train({**base, "cat_smooth": 1.0, **params}, lgb.Dataset(frame, label=label), rounds)


def _at_thresholds(booster: lgb.Booster, rows: int) -> pd.DataFrame:
    """Rows whose numbers sit on the booster's thresholds and one float step either side."""
    frame = _frame(99, rows, REGIONS[:35] + ["unseen"] * 5)
    trees = patterned_trees(booster)
    assert trees is not None
    for f, name in enumerate(["amount", "count", "ratio"]):
        edges = [s.threshold for t in trees for s in t.splits if s.feature == f]
        if edges:
            near = np.concatenate(
                [edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)]
            )
            frame[name] = np.resize(np.append(near, [0.0, -0.0, np.nan]), rows)
    return frame


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), params=st.sampled_from(VARIANTS))
def test_patterns_give_lightgbms_contributions(seed: int, params: dict[str, object]) -> None:
    booster = _booster(seed, params)
    trees = patterned_trees(booster)
    assert trees is not None  # the shortcut applies, so this compares it with LightGBM
    for frame in (_frame(seed + 2, 700), _at_thresholds(booster, 700)):
        direct = booster.predict(frame, pred_contrib=True)
        ours = by_patterns(booster, trees, lightgbm_matrix(booster, frame))
        assert ours.shape == direct.shape
        assert np.abs(ours - direct).max() < 1e-10


def test_wide_trees_index_patterns_by_sorting() -> None:
    booster = _booster(3, VARIANTS[1])
    trees = patterned_trees(booster)
    assert trees is not None and max(len(t.splits) for t in trees) > DENSE_SPLITS


def test_the_matrix_is_lightgbms_own() -> None:
    from lightgbm.basic import _data_from_pandas  # private: its conversion is what predict sees

    booster = _booster(5, VARIANTS[0])
    frame = _frame(6, 300, REGIONS[:30] + ["unseen"] * 10)
    expected = _data_from_pandas(frame, "auto", "auto", booster.pandas_categorical)[0]
    ours = lightgbm_matrix(booster, frame)
    assert np.array_equal(ours, expected, equal_nan=True)
    assert np.isnan(ours[frame["region"] == "unseen", 4]).all()


def test_public_function_matches_and_keeps_the_best_iteration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = _frame(7, 1500)
    label = (np.nan_to_num(frame["amount"]) > 100).astype(int)
    train, valid = frame.iloc[:1000], frame.iloc[1000:]
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "seed": 0, "num_leaves": 7},
        lgb.Dataset(train, label=label[:1000]),
        200,
        valid_sets=[lgb.Dataset(valid, label=label[1000:])],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # as training does: every tree kept
    )
    assert 0 < booster.best_iteration < booster.current_iteration()
    direct = booster.predict(frame, pred_contrib=True)  # the best iteration's trees only
    with caplog.at_level("WARNING"):
        ours = tree_contributions(booster, frame)
    assert not caplog.records  # no fallback: the patterns agreed
    assert np.abs(ours - direct).max() < 1e-10
    assert tree_contributions(booster, frame.iloc[:0]).shape == (0, frame.shape[1] + 1)


def test_a_disagreement_is_found_on_the_sampled_rows() -> None:
    booster = _booster(8, VARIANTS[0])
    frame = _frame(9, 500)
    matrix = lightgbm_matrix(booster, frame)
    right = tree_contributions(booster, frame)
    assert difference_from_lightgbm(booster, matrix, right) < 1e-10
    wrong = right.copy()
    wrong[0, 0] += 1e-6
    assert difference_from_lightgbm(booster, matrix, wrong) == pytest.approx(1e-6)


def test_boosters_outside_the_shortcut_go_to_lightgbm() -> None:
    frame = _frame(10, 600)
    numbers = frame[["amount", "count", "ratio"]]
    label = np.random.default_rng(0).integers(0, 2, len(frame))  # noise: deep trees
    deep = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 80, "min_child_samples": 2},
        lgb.Dataset(numbers, label=label),
        3,
    )
    three_classes = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbosity": -1, "num_leaves": 4},
        lgb.Dataset(numbers, label=frame["count"].clip(0, 2).to_numpy()),
        5,
    )
    for booster in (deep, three_classes):
        assert patterned_trees(booster) is None
        assert np.array_equal(
            tree_contributions(booster, numbers), booster.predict(numbers, pred_contrib=True)
        )


def test_frames_lightgbm_converts_otherwise_go_to_lightgbm() -> None:
    rng = np.random.default_rng(11)
    numbers = pd.DataFrame({"a": rng.normal(size=800), "c": rng.integers(0, 4, 800)})
    label = ((numbers["a"] > 0) ^ (numbers["c"] == 2)).astype(int)
    # trained without pandas categories: LightGBM reads a category column by its own codes
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 7, "min_data_per_group": 5},
        lgb.Dataset(numbers.to_numpy(), label=label, categorical_feature=[1]),
        10,
    )
    assert booster.pandas_categorical is None
    frame = numbers.assign(c=pd.Categorical(numbers["c"]))
    direct = booster.predict(frame, pred_contrib=True)
    assert np.abs(tree_contributions(booster, frame) - direct).max() < 1e-12
    with pytest.raises(ValueError, match="pandas dtypes"):  # text is refused, as before
        tree_contributions(booster, numbers.assign(a=numbers["a"].astype(str)))


def test_values_beyond_the_dumps_clipped_thresholds_go_to_lightgbm() -> None:
    rng = np.random.default_rng(1)
    huge = np.where(
        rng.random(2000) < 0.5, rng.uniform(1, 10, 2000), rng.uniform(1e303, 1e304, 2000)
    )
    frame = pd.DataFrame({"a": huge, "b": rng.normal(size=2000)})
    label = ((huge > 100) ^ (rng.random(2000) < 0.1)).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 4, "min_data_in_bin": 1},
        lgb.Dataset(frame, label=label),
        3,
    )
    # a threshold near 8e303 reads 1e300 in the dump; 2e300 lies between the two
    for rows in (frame.iloc[:50].assign(a=2e300), frame.iloc[:50].assign(b=np.inf)):
        direct = booster.predict(rows, pred_contrib=True)
        assert np.abs(tree_contributions(booster, rows) - direct).max() < 1e-12
    ordinary = frame.iloc[:50].assign(a=np.resize([5.0, 9.0, np.nan], 50))
    assert (
        np.abs(
            tree_contributions(booster, ordinary) - booster.predict(ordinary, pred_contrib=True)
        ).max()
        < 1e-12
    )
