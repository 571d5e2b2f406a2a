"""Pure numerics (numpy/scipy, no I/O): evaluation metrics with bootstrap intervals
(``evaluation``), data drift tests (``drift``) and mergeable column profiles (``profile``), and
later the A/B engine's estimators."""
