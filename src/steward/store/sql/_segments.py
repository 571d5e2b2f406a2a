"""Packing a batch's points into per-key segments, and back.

stdlib ``array`` rather than numpy: the store must not pull numpy into every process that logs a
metric, and ``array`` packs a list of floats at C speed. Byte order is fixed (little-endian) so
a database written on one machine reads the same on another.
"""

from __future__ import annotations

import sys
from array import array
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from steward.domain.entities import MetricPoint
from steward.store.base import PointRow

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SWAP = sys.byteorder != "little"
_POINTS = TypeAdapter(list[MetricPoint])


@dataclass(frozen=True)
class Segment:
    key: str
    count: int
    steps: bytes
    values: bytes
    timestamps: bytes


def pack(points: Sequence[PointRow]) -> list[Segment]:
    """One segment per key, points in the order they were logged."""
    micros: dict[datetime, int] = {}
    by_key: dict[str, tuple[array[int], array[float], array[int]]] = defaultdict(
        lambda: (array("q"), array("d"), array("q"))
    )
    for key, value, step, moment in points:
        stamp = micros.get(moment)
        if stamp is None:
            stamp = micros[moment] = (moment - _EPOCH) // _MICROSECOND
        steps, values, stamps = by_key[key]
        steps.append(step)
        values.append(value)
        stamps.append(stamp)
    return [
        Segment(key, len(steps), _bytes(steps), _bytes(values), _bytes(stamps))
        for key, (steps, values, stamps) in by_key.items()
    ]


def unpack(key: str, segments: Sequence[tuple[bytes, bytes, bytes]]) -> list[MetricPoint]:
    """Every point of ``key``, ordered by step, then time, then the order they were logged."""
    rows: list[tuple[int, int, int, float]] = []
    order = 0
    for raw_steps, raw_values, raw_stamps in segments:
        steps, values, stamps = (
            _array("q", raw_steps),
            _array("d", raw_values),
            _array("q", raw_stamps),
        )
        for step, value, stamp in zip(steps, values, stamps, strict=True):
            rows.append((step, stamp, order, value))
            order += 1
    rows.sort()
    # One validation call over plain dicts runs in pydantic-core; building each entity from
    # Python costs ten times more on long histories (measured on 15,000 points).
    return _POINTS.validate_python(
        [
            {"key": key, "value": value, "step": step, "timestamp": _EPOCH + stamp * _MICROSECOND}
            for step, stamp, _, value in rows
        ]
    )


def _bytes(values: array[int] | array[float]) -> bytes:
    if _SWAP:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _array(typecode: str, raw: bytes) -> array:  # type: ignore[type-arg]
    values = array(typecode)
    values.frombytes(raw)
    if _SWAP:
        values.byteswap()
    return values
