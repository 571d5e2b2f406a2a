"""The canary watcher alone: its sliding window, its breach rules and its p95 estimate, on a
fake clock."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from steward.domain.deployments import CanarySlo, Deployment
from steward.serving.canary_watch import P95_PRECISION, Breach, CanaryWatch, nearest_rank

CHAMPION, CANARY = 1, 2


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def watch(clock: Clock, **slo: float) -> CanaryWatch:
    return CanaryWatch("churn-api", 7, CHAMPION, CANARY, CanarySlo(**slo), clock=clock)


def feed(w: CanaryWatch, n: int, *, ok: bool = True, seconds: float = 0.01) -> list[Breach]:
    """``n`` canary requests; the breaches they returned."""
    found = [w.record(CANARY, ok, seconds) for _ in range(n)]
    return [b for b in found if b is not None]


def test_error_rate_breach_carries_the_evidence() -> None:
    clock = Clock()
    w = watch(clock, max_error_rate=0.1, min_requests=20)
    for _ in range(30):
        assert w.record(CHAMPION, True, 0.004) is None
    assert w.record(CHAMPION, False, 0.004) is None  # the champion's errors never breach
    assert feed(w, 18) == []
    assert feed(w, 2, ok=False) == []  # 2/20 = 10%: at the limit, not above it
    (breach,) = feed(w, 1, ok=False)  # 3/21 > 10%
    assert breach.breached == ("error_rate",)
    assert (breach.deployment, breach.revision) == ("churn-api", 7)
    assert (breach.canary.requests, breach.canary.errors) == (21, 3)
    assert breach.canary.error_rate == pytest.approx(3 / 21)
    assert (breach.champion.version, breach.champion.requests, breach.champion.errors) == (
        CHAMPION, 31, 1,
    )  # fmt: skip
    evidence = breach.evidence()
    assert json.loads(json.dumps(evidence)) == evidence  # JSON as is, for the ledger
    assert evidence["rule"] == "canary_slo"
    assert evidence["limits"] == {"max_error_rate": 0.1, "max_p95_ms": None}
    assert (evidence["window_s"], evidence["min_requests"]) == (60, 20)
    assert evidence["canary"]["version"] == CANARY
    assert evidence["canary"]["over_p95_limit"] is None
    assert evidence["champion"]["p95_ms"] == pytest.approx(4.0, rel=P95_PRECISION)
    assert "error rate 14.3% > 10.0%" in breach.summary()
    assert "champion v1: error rate 3.2%" in breach.summary()


def test_nothing_is_judged_below_min_requests() -> None:
    w = watch(Clock(), max_error_rate=0.05, max_p95_ms=10, min_requests=50)
    assert feed(w, 49, ok=False, seconds=5.0) == []  # all failing, all slow: too few to judge
    assert len(feed(w, 1, ok=False)) == 1


def test_p95_breach_is_exact_at_the_limit() -> None:
    # nearest-rank p95 of 100 requests is the 95th smallest: 5 slow ones keep it at the limit
    w = watch(Clock(), max_p95_ms=50, min_requests=100)
    assert feed(w, 95, seconds=0.010) == []
    assert feed(w, 5, seconds=0.200) == []  # requests 96-100 are slow: p95 is still 10 ms
    (breach,) = feed(w, 1, seconds=0.200)  # 6 of 101 slow: the 96th smallest is slow
    assert breach.breached == ("p95_ms",)
    assert breach.canary.over_p95_limit == 6
    assert breach.canary.p95_ms is not None
    assert breach.canary.p95_ms > 50  # the estimate sits on the same side of the limit
    assert breach.canary.p95_ms == pytest.approx(200, rel=P95_PRECISION)
    assert breach.canary.errors == 0


def test_both_limits_are_named_when_both_break() -> None:
    w = watch(Clock(), max_error_rate=0.5, max_p95_ms=10, min_requests=10)
    (breach,) = feed(w, 10, ok=False, seconds=1.0)
    assert breach.breached == ("error_rate", "p95_ms")
    assert "error rate 100.0% > 50.0% and p95 " in breach.summary()
    assert " ms > 10 ms over 60 s (10 requests, 10 errors)" in breach.summary()


def test_old_buckets_expire() -> None:
    clock = Clock()
    w = watch(clock, max_error_rate=0.2, window_s=10, min_requests=10)
    assert feed(w, 9, ok=False) == []  # 9 errors at t=1000
    clock.now += 10  # t=1010: the window is 1001..1010, the errors are out of it
    assert feed(w, 9) == []
    assert feed(w, 1, ok=False) == []  # 1/10 errors, not 10/19
    clock.now += 5
    assert feed(w, 1, ok=False) == []  # 2/11
    clock.now += 4.5  # t=1019.5: still holds 1010..1019
    assert len(feed(w, 1, ok=False)) == 1  # 3/12 > 20%


def test_a_long_pause_empties_the_window() -> None:
    clock = Clock()
    w = watch(clock, max_error_rate=0.5, window_s=5, min_requests=4)
    feed(w, 3, ok=False)
    clock.now += 10_000
    assert feed(w, 3) == []  # three old errors are gone: 0/3, under min_requests anyway
    assert feed(w, 1) == []
    assert w._canary.requests == 4
    assert w._canary.errors == 0


def test_breaches_once_per_watch() -> None:
    clock = Clock()
    w = watch(clock, max_error_rate=0.0, min_requests=1)
    assert len(feed(w, 1, ok=False)) == 1
    assert w.breached
    for _ in range(3):
        clock.now += 120
        assert feed(w, 10, ok=False) == []


def test_a_watch_is_per_revision_and_only_with_a_canary_slo() -> None:
    now = "2025-01-01T00:00:00Z"
    base = {
        "name": "d", "model_name": "m", "champion": 1, "created_at": now, "created_by": "a",
        "updated_at": now, "updated_by": "a",
    }  # fmt: skip
    assert CanaryWatch.of(Deployment.model_validate(base)) is None
    canary = {**base, "canary": 2, "canary_share": 0.1}
    assert CanaryWatch.of(Deployment.model_validate(canary)) is None
    slo = {"max_error_rate": 0.1}
    built = CanaryWatch.of(Deployment.model_validate({**canary, "revision": 4, "canary_slo": slo}))
    assert built is not None
    assert (built.revision, built.canary, built.champion) == (4, 2, 1)
    assert built.slo == CanarySlo(max_error_rate=0.1)


def test_other_versions_are_ignored() -> None:
    w = watch(Clock(), max_error_rate=0.0, min_requests=1)
    assert w.record(9, False, 1.0) is None  # a previous-version fallback is not the canary
    assert w._canary.requests == w._champion.requests == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("limit_ms", [None, 50.0])  # above the p95 (~35 ms): no breach
def test_p95_estimate_matches_numpy(seed: int, limit_ms: float | None) -> None:
    rng = np.random.default_rng(seed)
    latencies = rng.lognormal(np.log(0.008), 0.9, size=5_000)  # seconds, a long right tail
    clock = Clock()
    slo = {"max_p95_ms": limit_ms} if limit_ms else {"max_error_rate": 1.0}
    w = watch(clock, window_s=60, min_requests=10_000, **slo)  # never judged: keeps counting
    for i, seconds in enumerate(latencies):
        clock.now = 1_000 + i * 0.01  # 50 s of traffic: all in the window
        w.record(CANARY, True, float(seconds))
    ms = latencies * 1000
    estimate = w._canary.p95_ms()
    assert estimate is not None
    exact = float(np.percentile(ms, 95, method="inverted_cdf"))  # nearest rank
    assert abs(estimate / exact - 1) <= P95_PRECISION + 1e-12
    assert estimate == pytest.approx(float(np.percentile(ms, 95)), rel=0.02)  # linear
    if limit_ms is not None:
        slow = int((ms > limit_ms).sum())
        assert w._canary.slow == slow
        assert (slow > len(ms) - nearest_rank(len(ms))) == (exact > limit_ms)


def test_p95_over_a_sliding_window_matches_numpy_over_the_live_seconds() -> None:
    rng = np.random.default_rng(7)
    clock = Clock(0.0)
    w = watch(clock, max_p95_ms=1_000, window_s=20, min_requests=10_000)
    seen: list[tuple[int, float]] = []
    for second in range(45):
        for seconds in rng.gamma(2.0, 0.002 * (1 + second % 7), size=40):
            clock.now = second + 0.5
            w.record(CANARY, True, float(seconds))
            seen.append((second, float(seconds) * 1000))
    live = np.array([ms for second, ms in seen if second > 44 - 20])
    assert w._canary.requests == len(live) == 20 * 40
    estimate = w._canary.p95_ms()
    assert estimate is not None
    exact = float(np.percentile(live, 95, method="inverted_cdf"))
    assert abs(estimate / exact - 1) <= P95_PRECISION + 1e-12


def test_nearest_rank_is_exact() -> None:
    for n in range(1, 2_000):
        assert nearest_rank(n) == int(np.ceil(0.95 * n - 1e-9))


def test_a_record_is_cheap() -> None:
    w = CanaryWatch("d", 1, CHAMPION, CANARY, CanarySlo(max_error_rate=0.5, max_p95_ms=50))
    n = 50_000
    started = time.perf_counter()
    for i in range(n):
        w.record(CANARY if i % 10 == 0 else CHAMPION, True, 0.004)
    per_record = (time.perf_counter() - started) / n
    # ~1-2 µs on a laptop; the bound only catches an accidental O(window) on the hot path
    assert per_record < 50e-6
