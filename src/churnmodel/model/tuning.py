"""Optional hyperparameter search with Optuna on the out-of-time validation cutoff.

Each trial trains on the training cutoffs and is judged by ROC AUC on the
validation cutoff, the same rows early stopping uses; the holdout is never
seen, so the final holdout metrics stay honest. The sampler is seeded, so
the same data, config and trial count give the same parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pandas as pd

from churnmodel.config import ModelConfig
from churnmodel.model.split import CutoffSplit
from churnmodel.model.training import classifier_from_config


def tune(
    frame: pd.DataFrame,
    feature_names: list[str],
    split: CutoffSplit,
    config: ModelConfig,
    trials: int,
    on_trial: Callable[[int, float], None] | None = None,
) -> dict[str, object]:
    """The best LightGBM parameters found in `trials` trials (validation ROC AUC)."""
    train, valid = split.rows(frame, "train"), split.rows(frame, "validation")

    def objective(trial: optuna.Trial) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 300, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        }
        model = classifier_from_config(config, calibration="none", **params)
        model.fit(train[feature_names], train["label"], valid[feature_names], valid["label"])
        if on_trial is not None:
            on_trial(trial.number, model.validation_auc_)
        return model.validation_auc_

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed)
    )
    study.optimize(objective, n_trials=trials)
    return dict(study.best_params)
