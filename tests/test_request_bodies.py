"""Request bodies refuse NUL characters anywhere in their text (steward.schemas.RequestBody),
naming the field, and accept everything else, including text that merely looks like an escaped
NUL."""

from __future__ import annotations

from typing import Any

import pytest

from steward.errors import InvalidInput
from steward.schemas import parse
from steward.schemas.registry import VersionCreate

DIGEST = "sha256:" + "a" * 64


def _body(**fields: Any) -> dict[str, Any]:
    return {"flavor": "python", "files": {"model.pkl": {"digest": DIGEST, "size": 3}}, **fields}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tags": {"team": "fr\x00aud"}}, "tags"),
        ({"tags": {"te\x00am": "fraud"}}, "tags"),  # in a key
        ({"params": {"layers": "b\x00"}}, "params"),
        ({"lineage": {"git": {"commit": "ab\x00c"}}}, "lineage"),
        ({"files": {"model\x00.pkl": {"digest": DIGEST, "size": 3}}}, "files"),
        ({"description": "\x00"}, "description"),
    ],
)
def test_nul_anywhere_in_a_body_is_refused_naming_its_field(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput, match="NUL") as refused:
        parse(VersionCreate, _body(**fields))
    assert refused.value.field == field


@pytest.mark.parametrize("text", ["\\u0000", "back\\slash", "é☃𝄞", "", "\\\\u0000 and \\u0000"])
def test_text_that_only_looks_like_an_escaped_nul_is_accepted(text: str) -> None:
    body = parse(VersionCreate, _body(tags={"note": text}, params={text: text}))
    assert body.tags == {"note": text}
    assert body.params == {text: text}
