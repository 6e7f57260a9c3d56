"""Training and time-based evaluation (LightGBM arrives with the training issue)."""
