"""Pure numerics (numpy/scipy, no I/O): evaluation metrics with bootstrap intervals, and later
drift statistics and the A/B engine's estimators."""
