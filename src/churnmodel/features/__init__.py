"""Point-in-time feature families and the feature matrix built from them."""

from churnmodel.features.catalog import FeatureFamily, FeatureSpec
from churnmodel.features.matrix import FeatureMatrix, build_feature_matrix

__all__ = ["FeatureFamily", "FeatureMatrix", "FeatureSpec", "build_feature_matrix"]
