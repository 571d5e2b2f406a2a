"""The unit key: the same 128-bit MD5 number from hashlib and from DuckDB, null for a null id."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from steward.store import unit_keys
from steward.store.unit_keys import unit_keys as keys_of

IDS = ["alice", "", "ü-7 ✓", "x" * 300, "q-3f2a", "alice"]


def _by_definition(unit: str) -> tuple[int, int]:
    """(hi, lo): bytes 8-15 and 0-7 of the digest, little-endian, as docs/experiments.md says."""
    digest = hashlib.md5(unit.encode()).digest()
    return int.from_bytes(digest[8:], "little"), int.from_bytes(digest[:8], "little")


@pytest.mark.parametrize("bulk", [False, True], ids=["hashlib", "duckdb"])
def test_each_id_gets_its_digest_halves_and_a_null_id_none(
    monkeypatch: pytest.MonkeyPatch, bulk: bool
) -> None:
    monkeypatch.setattr(unit_keys, "_BULK", 1 if bulk else 10**9)
    hi, lo = keys_of(pa.chunked_array([IDS[:3], [None, *IDS[3:]]], pa.string()))
    expected = [_by_definition(u) for u in IDS[:3]] + [(None, None)]
    expected += [_by_definition(u) for u in IDS[3:]]
    assert list(zip(hi.to_pylist(), lo.to_pylist(), strict=True)) == expected
    assert hi.type == lo.type == pa.uint64()


def test_the_two_ways_agree_on_many_ids() -> None:
    ids = pa.array([f"user-{i}" if i % 97 else None for i in range(unit_keys._BULK + 10)])
    assert unit_keys._keys_by_duckdb(ids)[0].equals(unit_keys._keys_by_hashlib(ids)[0])
    assert unit_keys._keys_by_duckdb(ids)[1].equals(unit_keys._keys_by_hashlib(ids)[1])


def test_ids_all_null_or_none_at_all() -> None:
    hi, lo = keys_of(pa.nulls(3, pa.string()))
    assert hi.to_pylist() == lo.to_pylist() == [None, None, None]
    assert [len(a) for a in keys_of(pa.array([], pa.string()))] == [0, 0]
