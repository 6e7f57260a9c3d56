"""The MLflow pyfunc model, logged as code ("models from code"), not as a pickle.

MLflow runs this file when the model is loaded. The model reads the plain
bundle logged beside it (`artifacts/bundle`, checked by sha256) and returns
calibrated churn probabilities, not class labels as the lightgbm flavour's
pyfunc would. Text columns arrive as strings (the signature cannot describe
pandas categories) and are cast back to the training categories here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import numpy.typing as npt
import pandas as pd
from mlflow.pyfunc.model import PythonModel, PythonModelContext

from churnmodel.registry.bundle import ModelBundle, load_bundle


class ChurnProbability(PythonModel):
    """Feature matrix in, calibrated churn probability out."""

    bundle: ModelBundle

    def load_context(self, context: PythonModelContext) -> None:
        """Load and verify the bundle logged with the model."""
        self.bundle = load_bundle(Path(context.artifacts["bundle"]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Churn probability per row of `model_input` (the model's feature columns)."""
        return self.bundle.predict(model_input)


mlflow.models.set_model(ChurnProbability())
