"""The released model as plain files, and the champion/challenger decision.

Nothing here imports mlflow: a batch job scores from an exported bundle
without a tracking server, and `churnmodel.tracking` only moves bundles in
and out of MLflow.
"""
