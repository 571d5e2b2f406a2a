"""The ledger's hash chain, as pure functions so `audit verify` and the store agree exactly."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(
    *,
    seq: int,
    id: str,
    occurred_at: datetime,
    actor: str,
    kind: str,
    subject_type: str,
    subject_id: str,
    payload: dict[str, Any],
    prev_hash: str,
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "id": id,
            "occurred_at": occurred_at.isoformat(timespec="microseconds"),
            "actor": actor,
            "kind": kind,
            "subject": [subject_type, subject_id],
            "payload": payload,
            "prev": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()
