"""Opaque page tokens: an offset, base64-encoded so callers do not build them by hand."""

from __future__ import annotations

import base64
import binascii

from steward.errors import InvalidInput

MAX_PAGE_SIZE = 10_000


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        offset = -1
    if offset < 0:
        raise InvalidInput(
            "The page_token is not one this server issued; pass next_page_token back unchanged.",
            field="page_token",
        )
    return offset


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def check_page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"The page size must be between 1 and {MAX_PAGE_SIZE}. Got {limit}.", field="limit"
        )
    return limit
