"""Sticky assignment: where a unit falls in an experiment's split, the same on any machine.

The gateway assigns requests with these functions and the experiments engine recomputes the
assignment offline with them, so the two cannot disagree. ``bucket(salt, id)`` is the first 8
bytes of ``sha256(f"{salt}:{id}")`` read as a big-endian unsigned integer, shifted right by 11
bits (its top 53 bits) and divided by 2**53, which puts it exactly in [0, 1).
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Mapping

_SCALE = float(2**53)


def bucket(salt: str, unit_id: str) -> float:
    """The unit's place in [0, 1) for ``salt`` (an experiment name): stable across processes.

    ``int.from_bytes(sha256(f"{salt}:{unit_id}".encode()).digest()[:8], "big") >> 11`` divided
    by ``2**53``. The same salt and id always give the same number, on any machine.
    """
    digest = hashlib.sha256(f"{salt}:{unit_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / _SCALE


def canary_salt(canary: int) -> str:
    """The salt of a canary's hash: a new canary version draws a fresh set of units."""
    return f"canary:v{canary}"


def variant_name(version: int) -> str:
    """The name of a split's variant: ``v`` and its version number (``v3``)."""
    return f"v{version}"


def split_boundaries(split: Mapping[int, float]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The split's versions in ascending order and the upper end of each one's slice of [0, 1).

    Slices are laid out in ascending version order, each as wide as its weight divided by the
    total (weights are normalised, so ``{3: 1, 4: 3}`` is 25% / 75%); the last ends at 1.0.
    The order does not depend on how the mapping was written.
    """
    versions = tuple(sorted(split))
    total = math.fsum(split[v] for v in versions)
    bounds: list[float] = []
    cumulative = 0.0
    for version in versions:
        cumulative += split[version] / total
        bounds.append(cumulative)
    bounds[-1] = 1.0
    return versions, tuple(bounds)


def variant_for(split: Mapping[int, float], unit_id: str, *, experiment: str) -> int:
    """The version of ``split`` that ``unit_id`` is assigned to in ``experiment``.

    The same function the gateway uses: ``bucket(experiment, unit_id)`` falls in one version's
    slice (see `split_boundaries`).
    """
    versions, bounds = split_boundaries(split)
    return versions[bisect_right(bounds, bucket(experiment, unit_id))]
