"""What a PostgreSQL store expects of its database, so a write can skip the reads it would make.

A registration read two things before it could write: its model's next version number (the
claim) and the ledger's tip (to chain its event). Each read is a round trip, and a round trip
on a small VM costs ~0.15-0.3 ms (measured: the three of a registration 0.85 ms, one 0.4 ms).
What this process committed last is, nearly always, what the database holds: one server writes
most of the time. So the write uses it and lets the database check it:

- the claim becomes an UPDATE guarded by the number expected, which fails when another writer
  moved it (the write is refused with `StalePrediction`, nothing written, and run again with
  the claim read);
- the event goes in under the ledger's lock behind a SAVEPOINT, after a check that the tip is
  still in the ledger (a database restored to an earlier state would have lost it); a tip
  moved by another writer makes the event's sequence number collide with theirs. Either way
  the write goes back to the savepoint, reads the tip and chains onto it: two round trips more
  than the prediction saved.

The database stays the judge: a wrong guess costs round trips, never a wrong number or a forked
chain. Nothing is predicted before this process read or wrote it once, and nothing is predicted
while it has lately been wrong: with several server processes writing to one database (scaled
out behind a balancer), what one remembers is mostly stale, and a miss costs three round trips
where a hit saves one. So every write scores what was remembered against what the database
held (a write that reads the tip or the claim checks it for free), and predictions are made
while that score stays above `TRUST`.
"""

from __future__ import annotations

import threading

# A hit saves one round trip; a miss costs three (the refused attempt, going back to the
# savepoint with the prepared statements dropped, the tip read again): worth it above 3/4.
TRUST = 0.75
_WEIGHT = 0.2  # of the newest outcome in the running score


class TrackRecord:
    """How often what was remembered was still what the database held, recent outcomes
    weighing most (an exponentially weighted mean, starting trusted)."""

    def __init__(self) -> None:
        self.score = 1.0

    def observe(self, right: bool) -> None:
        self.score += _WEIGHT * ((1.0 if right else 0.0) - self.score)

    @property
    def trusted(self) -> bool:
        return self.score >= TRUST


class Predictions:
    """The ledger's tip and each model's last version number, as this process last saw them,
    with the record of how often they were still true."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tip: tuple[int, str] | None = None
        self._claims: dict[str, tuple[str, int]] = {}
        self.tip_record = TrackRecord()
        self.claim_record = TrackRecord()

    def remembered_tip(self) -> tuple[int, str] | None:
        """The ledger's last (seq, hash) as this process last saw it, trusted or not."""
        return self._tip

    def tip(self) -> tuple[int, str] | None:
        """The tip to chain onto without reading it: remembered, and lately right."""
        return self._tip if self.tip_record.trusted else None

    def observe_tip(self, remembered: tuple[int, str] | None, actual: tuple[int, str]) -> None:
        """Score ``remembered`` (as it was when the write began) against the tip read."""
        if remembered is not None:
            self.score_tip(remembered == actual)

    def score_tip(self, right: bool) -> None:
        with self._lock:
            self.tip_record.observe(right)

    def learn_tip(self, seq: int, hash_: str) -> None:
        """A committed tip; an older one learned late (threads finish out of order) is not."""
        with self._lock:
            if self._tip is None or seq > self._tip[0]:
                self._tip = (seq, hash_)

    def forget_tip(self) -> None:
        with self._lock:
            self._tip = None

    def remembered_claim(self, model: str) -> tuple[str, int] | None:
        """(model id, last version number) of ``model`` as last seen, trusted or not."""
        return self._claims.get(model)

    def claim(self, model: str) -> tuple[str, int] | None:
        """(model id, last version number) of ``model`` to claim after without reading it."""
        return self._claims.get(model) if self.claim_record.trusted else None

    def observe_claim(self, remembered: tuple[str, int] | None, actual: tuple[str, int]) -> None:
        """Score ``remembered`` against the (model id, last number) a claim read."""
        if remembered is not None:
            self.score_claim(remembered == actual)

    def score_claim(self, right: bool) -> None:
        with self._lock:
            self.claim_record.observe(right)

    def learn_claim(self, model: str, model_id: str, version: int) -> None:
        with self._lock:
            known = self._claims.get(model)
            if known is None or known[0] != model_id or version > known[1]:
                self._claims[model] = (model_id, version)

    def forget_claim(self, model: str) -> None:
        with self._lock:
            self._claims.pop(model, None)
