"""Optional hyperparameter search with Optuna, judged by the same backtest as training.

Each trial runs the LightGBM candidate through the backtest folds and is
scored by its mean backtest ROC AUC (trees chosen as in training). The
sampler is seeded, so the same data, config and trial count give the same
parameters. The trials see the backtest rows, so the run's backtest is
then a little optimistic for LightGBM; the baselines are not tuned.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pandas as pd

from churnmodel.config import ModelConfig
from churnmodel.model.backtest import Fold, run_backtest
from churnmodel.model.candidates import Candidate, Part


def tune(
    frame: pd.DataFrame,
    feature_names: list[str],
    folds: list[Fold],
    config: ModelConfig,
    trials: int,
    on_trial: Callable[[int, float], None] | None = None,
) -> ModelConfig:
    """`config` with the best LightGBM parameters found in `trials` trials."""
    lightgbm = Candidate("lightgbm", ((Part("trees", "trees", tuple(feature_names)), 1.0),))

    def objective(trial: optuna.Trial) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 500, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        }
        trial_config = config.model_copy(update={**params, "calibration": "none"})
        auc = run_backtest(frame, [lightgbm], folds, trial_config).metrics["lightgbm"].roc_auc
        if on_trial is not None:
            on_trial(trial.number, auc)
        return auc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed)
    )
    study.optimize(objective, n_trials=trials)
    return config.model_copy(update=study.best_params)
