"""The canary watcher: is a canary breaking its SLO? Pure, in memory, cheap on the hot path.

One `CanaryWatch` per deployment revision whose spec has a ``canary_slo``. The gateway calls
``watch.record(version, ok, seconds)`` once per request assigned to the canary or the champion
(client errors are not recorded: they are not the model's fault). ``record`` returns a
`Breach` the first time the canary, with at least ``min_requests`` requests in the window,
has an error rate above ``max_error_rate`` or a p95 latency above ``max_p95_ms``; never again
for that watch (so never twice for a revision: a new revision gets a new watch).

The window is the last ``window_s`` seconds in one-second buckets: the current second and the
``window_s - 1`` before it, so it spans between ``window_s - 1`` and ``window_s`` seconds. Each
bucket holds its requests, errors, requests slower than the p95 limit, and a sparse latency
histogram; running totals over the live buckets are updated as buckets are added and expire,
so a record is O(1) amortized (each second's bucket is reset once) and the check is a few
integer comparisons:

- error rate: ``errors / requests > max_error_rate``;
- p95: the nearest-rank 95th percentile (the ``ceil(0.95 n)``-th smallest latency, numpy's
  ``method="inverted_cdf"``) is above the limit exactly when more than ``n - ceil(0.95 n)``
  requests were slower than the limit. That count is exact, so the breach decision is too.

The ``p95_ms`` reported in the evidence is read from the histograms, once, when the breach is
built: bins are log-spaced by a factor of 1.02 and anchored at the limit (so a p95 above the
limit reads above it); the estimate is the bin's geometric midpoint, within 1% of the
nearest-rank p95 (``sqrt(1.02) - 1``). Latency covers the whole answer, fallback included, and
errors count in it. A request is "ok" when its assigned version answered; an error or timeout
that a fallback covered is an error of the assigned version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from steward.domain.clock import utcnow
from steward.domain.deployments import CanarySlo, Deployment

# Log-spaced latency bins: bin k holds [anchor * RATIO**k, anchor * RATIO**(k+1)) ms.
RATIO = 1.02
_LOG_RATIO = math.log(RATIO)
_MIN_MS = 1e-6  # a zero latency (a coarse clock) still has a bin
P95_PRECISION = math.sqrt(RATIO) - 1  # the estimate's largest relative error


def nearest_rank(n: int) -> int:
    """The rank of the nearest-rank 95th percentile of ``n`` values: ``ceil(0.95 n)``, in
    integers so that 0.95 * n never rounds the wrong way."""
    return (95 * n + 99) // 100


class _Window:
    """One version's requests over the last ``size`` seconds, in one-second buckets."""

    __slots__ = (
        "_anchor", "_errors", "_head", "_hist", "_limit_s", "_requests", "_second", "_slow",
        "errors", "requests", "size", "slow",
    )  # fmt: skip

    def __init__(self, size: int, limit_ms: float | None, anchor_ms: float) -> None:
        self.size = size
        self._limit_s = math.inf if limit_ms is None else limit_ms / 1000
        self._anchor = anchor_ms
        self._second = [-1] * size  # the second each bucket holds (-1: none yet)
        self._requests = [0] * size
        self._errors = [0] * size
        self._slow = [0] * size
        self._hist: list[dict[int, int]] = [{} for _ in range(size)]
        self._head = -1  # the newest second recorded
        # totals over the live buckets
        self.requests = 0
        self.errors = 0
        self.slow = 0

    def add(self, second: int, ok: bool, seconds: float) -> None:
        if second > self._head:
            self.advance(second)
        i = self._head % self.size  # a late record (clock skew) joins the newest bucket
        self._requests[i] += 1
        self.requests += 1
        if not ok:
            self._errors[i] += 1
            self.errors += 1
        if seconds > self._limit_s:
            self._slow[i] += 1
            self.slow += 1
        hist = self._hist[i]
        k = self._bin(seconds)
        hist[k] = hist.get(k, 0) + 1

    def advance(self, second: int) -> None:
        """Make ``second`` the newest bucket; buckets older than the window expire."""
        if second <= self._head:
            return
        first = max(self._head + 1, second - self.size + 1)
        for t in range(first, second + 1):  # at most `size` steps; each second once overall
            i = t % self.size
            if self._second[i] >= 0:
                self.requests -= self._requests[i]
                self.errors -= self._errors[i]
                self.slow -= self._slow[i]
                self._requests[i] = self._errors[i] = self._slow[i] = 0
                self._hist[i] = {}
            self._second[i] = t
        self._head = second

    def _bin(self, seconds: float) -> int:
        ms = max(seconds * 1000, _MIN_MS)
        return math.floor(math.log(ms / self._anchor) / _LOG_RATIO)

    def p95_ms(self) -> float | None:
        """The nearest-rank p95 from the histograms (see the module's docstring)."""
        if self.requests == 0:
            return None
        merged: dict[int, int] = {}
        for i, second in enumerate(self._second):
            if second >= 0:
                for k, count in self._hist[i].items():
                    merged[k] = merged.get(k, 0) + count
        rank = nearest_rank(self.requests)
        seen = 0
        for k in sorted(merged):
            seen += merged[k]
            if seen >= rank:
                return float(self._anchor * RATIO ** (k + 0.5))
        return None  # unreachable: the counts add up to `requests`

    def stats(self, version: int, limit_ms: float | None) -> VersionStats:
        p95 = self.p95_ms()
        return VersionStats(
            version=version,
            requests=self.requests,
            errors=self.errors,
            error_rate=self.errors / self.requests if self.requests else None,
            p95_ms=None if p95 is None else round(p95, 3),
            over_p95_limit=self.slow if limit_ms is not None else None,
        )


@dataclass(frozen=True, slots=True)
class VersionStats:
    """One version's requests in the window."""

    version: int
    requests: int
    errors: int
    error_rate: float | None  # None without requests
    p95_ms: float | None  # the histogram's estimate (within 1%); None without requests
    over_p95_limit: int | None  # requests slower than max_p95_ms (None: no p95 limit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p95_ms": self.p95_ms,
            "over_p95_limit": self.over_p95_limit,
        }


@dataclass(frozen=True, slots=True)
class Breach:
    """A canary over its SLO: the evidence a rollback records and an alert shows."""

    deployment: str
    revision: int
    breached: tuple[str, ...]  # "error_rate", "p95_ms": which limits were exceeded
    slo: CanarySlo
    canary: VersionStats
    champion: VersionStats
    detected_at: datetime

    def evidence(self) -> dict[str, Any]:
        """JSON-ready, as the ``deployment.rolled_back`` event's ``evidence``."""
        return {
            "rule": "canary_slo",
            "deployment": self.deployment,
            "revision": self.revision,
            "breached": list(self.breached),
            "window_s": self.slo.window_s,
            "min_requests": self.slo.min_requests,
            "limits": {"max_error_rate": self.slo.max_error_rate,
                       "max_p95_ms": self.slo.max_p95_ms},
            "canary": self.canary.as_dict(),
            "champion": self.champion.as_dict(),
            "detected_at": self.detected_at.isoformat(),
        }  # fmt: skip

    def summary(self) -> str:
        """One line: what the canary did, against which limit, and what the champion did."""
        parts = []
        if "error_rate" in self.breached:
            parts.append(
                f"error rate {_pct(self.canary.error_rate)} > {_pct(self.slo.max_error_rate)}"
            )
        if "p95_ms" in self.breached:
            parts.append(f"p95 {self.canary.p95_ms:.1f} ms > {self.slo.max_p95_ms:g} ms")
        champion = self.champion
        return (
            f"canary v{self.canary.version}: {' and '.join(parts)} over {self.slo.window_s} s "
            f"({self.canary.requests} requests, {self.canary.errors} errors); champion "
            f"v{champion.version}: error rate {_pct(champion.error_rate)}, p95 "
            f"{'-' if champion.p95_ms is None else f'{champion.p95_ms:.1f} ms'} "
            f"({champion.requests} requests)"
        )


class CanaryWatch:
    """The canary and champion windows of one deployment revision; see the module."""

    __slots__ = ("_canary", "_champion", "_clock", "_done", "canary", "champion", "deployment",
                 "revision", "slo")  # fmt: skip

    def __init__(
        self,
        deployment: str,
        revision: int,
        champion: int,
        canary: int,
        slo: CanarySlo,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deployment = deployment
        self.revision = revision
        self.champion = champion
        self.canary = canary
        self.slo = slo
        self._clock = clock
        # Anchored at the limit, so the reported p95 sits on the same side of it as the
        # exact decision; 1 ms is as good an anchor as any without one.
        anchor = slo.max_p95_ms or 1.0
        self._canary = _Window(slo.window_s, slo.max_p95_ms, anchor)
        self._champion = _Window(slo.window_s, slo.max_p95_ms, anchor)
        self._done = False

    @classmethod
    def of(cls, deployment: Deployment) -> CanaryWatch | None:
        """The watch of ``deployment``'s revision, or None when it has no canary SLO."""
        if deployment.canary_slo is None or deployment.canary is None:
            return None
        return cls(
            deployment.name,
            deployment.revision,
            deployment.champion,
            deployment.canary,
            deployment.canary_slo,
        )

    @property
    def breached(self) -> bool:
        return self._done

    def record(self, version: int, ok: bool, seconds: float) -> Breach | None:
        """Count one request assigned to ``version``; the breach, the first time only."""
        if self._done:
            return None
        if version == self.canary:
            second = int(self._clock())
            self._canary.add(second, ok, seconds)
            return self._check(second)
        if version == self.champion:
            self._champion.add(int(self._clock()), ok, seconds)
        return None

    def _check(self, second: int) -> Breach | None:
        window, slo = self._canary, self.slo
        n = window.requests
        if n < slo.min_requests:
            return None
        breached: list[str] = []
        if slo.max_error_rate is not None and window.errors > slo.max_error_rate * n:
            breached.append("error_rate")
        if slo.max_p95_ms is not None and window.slow > n - nearest_rank(n):
            breached.append("p95_ms")
        if not breached:
            return None
        self._done = True
        self._champion.advance(second)  # drop the champion's expired buckets too
        return Breach(
            self.deployment,
            self.revision,
            tuple(breached),
            slo,
            window.stats(self.canary, slo.max_p95_ms),
            self._champion.stats(self.champion, slo.max_p95_ms),
            utcnow(),
        )


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"
