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

The database stays the judge: a wrong guess costs a round trip, never a wrong number or a forked
chain. Nothing is predicted before this process read or wrote it once.
"""

from __future__ import annotations

import threading


class Predictions:
    """The ledger's tip and each model's last version number, as this process last saw them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tip: tuple[int, str] | None = None
        self._claims: dict[str, tuple[str, int]] = {}

    def tip(self) -> tuple[int, str] | None:
        """The ledger's last (seq, hash), when known."""
        return self._tip

    def learn_tip(self, seq: int, hash_: str) -> None:
        """A committed tip; an older one learned late (threads finish out of order) is not."""
        with self._lock:
            if self._tip is None or seq > self._tip[0]:
                self._tip = (seq, hash_)

    def forget_tip(self) -> None:
        with self._lock:
            self._tip = None

    def claim(self, model: str) -> tuple[str, int] | None:
        """(model id, last version number) of ``model``, when known."""
        return self._claims.get(model)

    def learn_claim(self, model: str, model_id: str, version: int) -> None:
        with self._lock:
            known = self._claims.get(model)
            if known is None or known[0] != model_id or version > known[1]:
                self._claims[model] = (model_id, version)

    def forget_claim(self, model: str) -> None:
        with self._lock:
            self._claims.pop(model, None)
