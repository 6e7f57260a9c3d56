"""LightGBM's TreeSHAP contributions, computed once per way through each tree.

LightGBM's `pred_contrib` runs the TreeSHAP recursion for every row and
tree: about 20 s for the 82k rows a list of 1M customers explains with the
default model (about 1000 trees of 7 leaves). But path-dependent TreeSHAP
reads a row only through the side it takes at each split (a split on a
feature in the coalition follows the row, any other split weighs both sides
by the training counts), so rows that take the same side at every split of
a tree share that tree's contributions. A tree with s splits has at most
2**s such patterns (64 for 7 leaves), and far fewer occur.

So, per tree: the pattern of every row from the split rules in numpy, then
LightGBM's own `pred_contrib` for one row per pattern and that tree alone,
handed to every row with the pattern. The values are LightGBM's; only the
order of the sums across trees differs (differences near 1e-14).

The split rules copy LightGBM's (`NumericalDecision` and
`CategoricalDecision` in tree.h). So that a LightGBM release that changes
them cannot change the reasons silently, every call compares a sample of
rows with LightGBM's direct answer and, on a difference, uses LightGBM's
answer for all rows. Boosters and frames the shortcut does not cover
(more than one tree per round, trees of more than 64 leaves, values
beyond 1e300 in size, text columns) get LightGBM's directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

log = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

ZERO = float(np.float32(1e-35))
"""LightGBM's kZeroThreshold: prediction reads |x| at or below it as 0."""
DENSE_SPLITS = 16
"""Up to this many splits a tree's patterns index a lookup table of 2**s entries."""
MAX_SPLITS = 63
"""Patterns are int64 bit sets; deeper trees go to LightGBM directly."""
CLIPPED = 1e300
"""The dump clips thresholds to +-1e300 (AvoidInf; a split of NaN from all numbers has +inf).

Decisions agree for every value smaller in size, so a frame with any
|x| >= 1e300 (or infinite) goes to LightGBM."""
CHUNK_ROWS = 200_000
"""Rows handled at a time, so the column copies stay small next to the result."""
CHECK_ROWS = 64
"""Rows per call compared with LightGBM's direct answer."""
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Split:
    """One split node, as LightGBM decides it for a raw value."""

    feature: int
    threshold: float
    default_left: bool
    missing: str  # LightGBM's missing type: "None", "Zero" or "NaN"
    left_codes: Mask | None  # categorical: which codes go left (indexed by code)

    def goes_left(self, value: Array, missing: Mask) -> Mask:
        """Whether each row goes left: `value` as LightGBM reads it (`_as_read`), NaN as 0."""
        if self.left_codes is not None:
            # a category is the value truncated to an int; NaN, negatives and codes beyond
            # the bit set go right
            known = ~missing & (value > -1) & (value < len(self.left_codes))
            return known & self.left_codes[np.where(known, value, 0).astype(np.intp)]
        left = value <= self.threshold
        if self.missing == "NaN":
            default = missing
        elif self.missing == "Zero":  # NaN counts as zero
            default = value == 0
        else:  # NaN counts as 0 and is compared like it
            return left
        return left | default if self.default_left else left & ~default


@dataclass(frozen=True)
class Tree:
    """A tree's splits in a fixed order (bit i of a pattern: went left at split i)."""

    splits: tuple[Split, ...]
    columns: tuple[int, ...]  # the features it splits on, then the bias column


def tree_contributions(booster: lgb.Booster, features: pd.DataFrame) -> Array:
    """What ``booster.predict(features, pred_contrib=True)`` returns, computed by patterns."""
    if not len(features):  # LightGBM refuses an empty frame
        return np.empty((0, (booster.num_feature() + 1) * booster.num_model_per_iteration()))
    trees = patterned_trees(booster) if _plain_frame(booster, features) else None
    if trees is None:
        return _direct(booster, features)
    matrix = lightgbm_matrix(booster, features)
    if np.any(np.abs(matrix) >= CLIPPED):  # beyond what the dump's thresholds tell apart
        return _direct(booster, features)
    values = np.empty((len(matrix), matrix.shape[1] + 1))
    for start in range(0, len(matrix), CHUNK_ROWS):
        rows = matrix[start : start + CHUNK_ROWS]
        values[start : start + len(rows)] = by_patterns(booster, trees, rows)
    difference = difference_from_lightgbm(booster, matrix, values)
    if difference > TOLERANCE:
        log.warning(
            "TreeSHAP by patterns differs from LightGBM's by up to %.3g on sampled rows "
            "(LightGBM %s); using LightGBM's pred_contrib for all %d rows",
            difference,
            lgb.__version__,
            len(matrix),
        )
        return _direct(booster, features)
    return values


def _direct(booster: lgb.Booster, features: pd.DataFrame) -> Array:
    return np.asarray(booster.predict(features, pred_contrib=True), dtype=np.float64)


def _plain_frame(booster: lgb.Booster, features: pd.DataFrame) -> bool:
    """Whether `lightgbm_matrix` converts `features` as LightGBM would.

    Numbers and booleans, and as many category columns as the booster has
    training categories; anything else (text, categories of a booster
    trained without pandas) goes to LightGBM, which converts or refuses it.
    """
    kinds = [
        "category"
        if isinstance(dtype, pd.CategoricalDtype)
        else "number"
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
        else "other"
        for dtype in features.dtypes
    ]
    trained = booster.pandas_categorical
    return "other" not in kinds and kinds.count("category") == len(trained or [])


def patterned_trees(booster: lgb.Booster) -> list[Tree] | None:
    """The trees `predict` uses, as split lists; None when the shortcut does not apply."""
    if booster.num_model_per_iteration() != 1:
        return None
    trees = []
    for info in booster.dump_model()["tree_info"]:  # the trees predict uses (best_iteration)
        splits: list[Split] = []
        _collect_splits(info["tree_structure"], splits)
        if len(splits) > MAX_SPLITS:
            return None
        columns = sorted({s.feature for s in splits})
        trees.append(Tree(tuple(splits), (*columns, booster.num_feature())))
    return trees


def _collect_splits(node: dict[str, Any], into: list[Split]) -> None:
    """Append the splits under `node`, depth first."""
    if "split_index" not in node:
        return
    threshold = node["threshold"]
    left_codes = None
    if node["decision_type"] == "==":
        codes = [int(c) for c in str(threshold).split("||")]
        left_codes = np.zeros(max(codes) + 1, dtype=np.bool_)
        left_codes[codes] = True
        threshold = np.nan
    into.append(
        Split(
            int(node["split_feature"]),
            float(threshold),
            bool(node["default_left"]),
            str(node["missing_type"]),
            left_codes,
        )
    )
    _collect_splits(node["left_child"], into)
    _collect_splits(node["right_child"], into)


def lightgbm_matrix(booster: lgb.Booster, features: pd.DataFrame) -> Array:
    """The float matrix LightGBM predicts from (its pandas conversion, as in `_data_from_pandas`).

    Category columns become the codes of the training categories, with
    values training never saw, and missing ones, as NaN.
    """
    known = iter(booster.pandas_categorical or [])
    matrix = np.empty(features.shape, order="F")  # by column: each split reads one column
    for j, name in enumerate(features.columns):
        column = features[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.set_categories(next(known)).cat.codes.to_numpy()
            matrix[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            matrix[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix


def by_patterns(booster: lgb.Booster, trees: list[Tree], rows: Array) -> Array:
    """Contributions of `rows` (n x features, LightGBM's matrix), n x (features + 1)."""
    by_column = np.asfortranarray(rows)
    missing = np.isnan(by_column)
    value = _as_read(by_column, missing)
    out = np.zeros((rows.shape[1] + 1, len(rows)))  # one contiguous line per column
    for index, tree in enumerate(trees):
        pattern = np.zeros(len(rows), dtype=np.int64)
        for bit, split in enumerate(tree.splits):
            f = split.feature
            went_left = split.goes_left(value[:, f], missing[:, f])
            pattern |= went_left.astype(np.int64) << bit
        first, which = _one_row_per_pattern(pattern, len(tree.splits))
        shares = np.asarray(
            booster.predict(rows[first], pred_contrib=True, start_iteration=index, num_iteration=1)
        )
        for column in tree.columns:
            out[column] += shares[:, column][which]
    return out.T


def _as_read(values: Array, missing: Mask) -> Array:
    """The values as LightGBM's prediction reads them: |x| <= kZeroThreshold is 0, NaN is 0 too.

    LightGBM keeps only entries with |x| > kZeroThreshold or NaN and starts
    from zeros, so -1e-36 is 0 to every split.
    """
    return np.where(missing | (np.abs(values) <= ZERO), 0.0, values)


def _one_row_per_pattern(
    pattern: npt.NDArray[np.int64], splits: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """One row per distinct pattern, and each row's position among them."""
    if splits > DENSE_SPLITS:
        _, first, which = np.unique(pattern, return_index=True, return_inverse=True)
        return first, which.reshape(-1)
    row_of = np.full(1 << splits, -1, dtype=np.intp)
    row_of[pattern] = np.arange(len(pattern))  # any row with the pattern will do
    seen = np.flatnonzero(row_of >= 0)
    slot = np.zeros(1 << splits, dtype=np.intp)
    slot[seen] = np.arange(len(seen))
    return row_of[seen], slot[pattern]


def difference_from_lightgbm(booster: lgb.Booster, matrix: Array, values: Array) -> float:
    """Largest difference from LightGBM's direct answer on rows spread over the matrix."""
    sample = np.unique(np.linspace(0, len(matrix) - 1, min(len(matrix), CHECK_ROWS)).astype(int))
    direct = np.asarray(booster.predict(matrix[sample], pred_contrib=True), dtype=np.float64)
    return float(np.abs(values[sample] - direct).max())
