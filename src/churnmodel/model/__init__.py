"""Training: candidates, the rolling-origin backtest, the shipped model, and their metrics."""
