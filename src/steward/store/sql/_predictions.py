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
  the write goes back to the savepoint, reads the tip and chains onto it: three round trips
  more than reading it would have cost.

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
from collections.abc import Callable
from typing import Generic, TypeVar

# A hit saves one round trip; a miss costs three (the refused attempt, going back to the
# savepoint with the prepared statements dropped, the tip read again): worth it above 3/4.
TRUST = 0.75
_WEIGHT = 0.2  # of the newest outcome in the running score

V = TypeVar("V")


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


class Remembered(Generic[V]):
    """Values of one kind as this process last saw them, by key, and the record of how often
    they were still true. ``supersedes(new, old)``: whether a value learned replaces the one
    remembered (threads commit and report out of order)."""

    def __init__(self, supersedes: Callable[[V, V], bool]) -> None:
        self._supersedes = supersedes
        self._values: dict[str, V] = {}
        self._lock = threading.Lock()
        self.record = TrackRecord()

    def remembered(self, key: str) -> V | None:
        """As last seen, trusted or not."""
        return self._values.get(key)

    def predicted(self, key: str) -> V | None:
        """As last seen, when lately right: the value to use without reading it."""
        return self._values.get(key) if self.record.trusted else None

    def learn(self, key: str, value: V) -> None:
        """A value committed or read."""
        with self._lock:
            known = self._values.get(key)
            if known is None or self._supersedes(value, known):
                self._values[key] = value

    def forget(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    def missed(self, key: str) -> None:
        """What was predicted for ``key`` was refused by the database: forgotten, and scored."""
        with self._lock:
            self._values.pop(key, None)
            self.record.observe(False)

    def score(self, right: bool) -> None:
        """A prediction held (or was refused)."""
        with self._lock:
            self.record.observe(right)

    def observe(self, remembered: V | None, actual: V) -> None:
        """Score what was remembered when a write began against what it then read."""
        if remembered is not None:
            self.score(remembered == actual)


LEDGER = ""  # the key of the ledger's one tip


def _later_tip(new: tuple[int, str], old: tuple[int, str]) -> bool:
    return new[0] > old[0]


def _later_claim(new: tuple[str, int], old: tuple[str, int]) -> bool:
    # another model under the name (renamed, made again) has numbers of its own
    return new[0] != old[0] or new[1] > old[1]


class Predictions:
    """What a PostgreSQL store process remembers: the ledger's tip (seq, hash) under `LEDGER`,
    and each model's (id, last version number) under its name."""

    def __init__(self) -> None:
        self.tip: Remembered[tuple[int, str]] = Remembered(_later_tip)
        self.claims: Remembered[tuple[str, int]] = Remembered(_later_claim)
