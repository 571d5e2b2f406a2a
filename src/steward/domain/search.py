"""The filter grammar of `steward models --filter` and `steward versions --filter`.

``metrics.auc > 0.8 and tags.team = 'risk' and tier <= 2`` parses into a list of conditions
joined by AND. Written by hand because it is twenty lines of regex and a store-neutral AST;
a parser library would add a dependency to the SDK for no gain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from steward.errors import InvalidInput

Op = Literal["=", "!=", "<", "<=", ">", ">=", "like"]
Scope = Literal["field", "metrics", "params", "tags"]

# Plain fields and the type of their values; aliases map user spellings to column names.
MODEL_FIELDS = {"name": str, "owner": str, "team": str, "tier": int, "use_case": str}
VERSION_FIELDS = {
    **MODEL_FIELDS,
    "version": int,
    "status": str,
    "flavor": str,
    "created_by": str,
    "run_id": str,
}
_FIELD_ALIASES = {"risk_tier": "tier", "model": "name", "model_name": "name"}

_CONDITION_RE = re.compile(
    r"""\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_.\-]+|`[^`]+`))?)\s*
    (?P<op>!=|<=|>=|=|<|>|\blike\b)\s*
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*""",
    re.VERBOSE | re.IGNORECASE,
)
_AND_RE = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    scope: Scope
    key: str
    op: Op
    value: str | float | int


def parse_filter(text: str | None, *, fields: dict[str, type] = VERSION_FIELDS) -> list[Condition]:
    """Parse a filter string; an empty or missing filter matches everything."""
    if text is None or not text.strip():
        return []
    conditions: list[Condition] = []
    for part in _split_on_and(text):
        match = _CONDITION_RE.fullmatch(part)
        if match is None:
            raise InvalidInput(
                f"Cannot read the condition {part.strip()!r} in the filter. Write conditions like "
                '"metrics.auc > 0.8", "tags.team = \'risk\'" or "tier <= 2", joined by AND.',
                field="filter",
            )
        conditions.append(_condition(match, fields))
    return conditions


def _split_on_and(text: str) -> list[str]:
    # Split on AND outside quotes only, so a quoted value may contain the word.
    parts, quote, start = [], "", 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        else:
            match = _AND_RE.match(text, i)
            if match is not None and i > 0:
                parts.append(text[start:i])
                start = i = match.end()
                continue
        i += 1
    parts.append(text[start:])
    return parts


# Whole-number fields are 32-bit columns; a larger literal could only overflow the driver.
_MAX_INT = 2**31 - 1


def _unquote(raw: str) -> str:
    try:
        return bytes(raw[1:-1], "utf-8").decode("unicode_escape")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The quoted value {raw} has a broken escape sequence ({exc.reason}); "
            "escape a backslash as \\\\.",
            field="filter",
        ) from None


def _condition(match: re.Match[str], fields: dict[str, type]) -> Condition:
    key, op, raw = match["key"], match["op"].lower(), match["value"]
    value: str | float | int
    quoted = raw[0] in "'\""
    value = _unquote(raw) if quoted else float(raw)
    if "." in key:
        scope, sub = key.split(".", 1)
        scope = scope.lower()
        if scope not in ("metrics", "params", "tags"):
            raise InvalidInput(
                f"Unknown filter key {key!r}: prefixed keys are metrics.X, params.X or tags.X.",
                field="filter",
            )
        sub = sub.strip("`")
        if scope == "metrics" and quoted:
            raise InvalidInput(
                f"The value compared with {key!r} must be a number. Got {raw}.", field="filter"
            )
        if scope != "metrics" and not quoted:
            value = raw  # params and tags are strings; compare the literal text
        if op == "like" and scope == "metrics":
            raise InvalidInput("LIKE works on text, not on metrics.", field="filter")
        return Condition(scope, sub, op, value)  # type: ignore[arg-type]
    name = _FIELD_ALIASES.get(key.lower(), key.lower())
    if name not in fields:
        known = ", ".join(sorted(fields))
        raise InvalidInput(
            f"Unknown filter field {key!r}. Use one of {known}, or metrics.X, params.X, tags.X.",
            field="filter",
        )
    if fields[name] is int:
        if quoted or not float(value).is_integer() or abs(float(value)) > _MAX_INT:
            raise InvalidInput(
                f"The field {key!r} takes a whole number up to {_MAX_INT}. Got {raw}.",
                field="filter",
            )
        value = int(float(value))
    elif not quoted:
        value = raw
    return Condition("field", name, op, value)  # type: ignore[arg-type]
