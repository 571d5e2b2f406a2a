"""Pure numerics (numpy/scipy, no I/O): evaluation metrics with bootstrap intervals
(``evaluation``), data drift tests (``drift``) and mergeable column profiles (``profile``), the
monitor's data quality, CBPE and SLO statistics (``quality``, ``cbpe``, ``slo``), and the A/B
engine's estimators (``ab`` with ``srm``, ``cuped``, ``corrections``, ``power``;
``sequential``; ``bayesian``)."""
