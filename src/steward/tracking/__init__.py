"""Training runs: params, metric time series, artifacts, and the versions they produced."""
