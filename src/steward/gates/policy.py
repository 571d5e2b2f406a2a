"""Release policies as code: a YAML file listing checks, parsed with the line of every error.

Parsing goes through the YAML node tree (``SafeLoader``) rather than ``safe_load``: the nodes
carry the line each key and value came from, so a rejected upload can say "line 7". Keys are
read as written, which also spares policy authors YAML 1.1's ``on``/``no`` booleans as keys.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from importlib.resources import files
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import ErrorDetails
from yaml.reader import ReaderError

from steward.domain.entities import Entity
from steward.errors import InvalidInput
from steward.gates.checks import Check, CheckParams, available_checks

TIERS = (1, 2, 3)


class CheckSpec(Entity):
    check: str  # the check's registered name
    params: dict[str, Any]  # validated by the check's Params, defaults filled in
    line: int  # 1-based line of the entry in the policy text


class Policy(Entity):
    name: str
    description: str | None = None
    applies_to: int | None = None  # the risk tier this policy is written for
    checks: list[CheckSpec]
    digest: str  # sha256 of the text, so a gate report names exactly what it ran


class _Header(CheckParams):
    """The policy's own keys, validated like a check's parameters to share the error path."""

    name: str = Field(min_length=1)
    description: str | None = None
    applies_to: int | None = Field(default=None, ge=1, le=3)


def policy_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_policy_text(tier: int) -> str:
    """The policy shipped for a risk tier (1 strictest, 3 lightest)."""
    if tier not in TIERS:
        raise InvalidInput(
            f"There is no default policy for tier {tier}; tiers are 1, 2 and 3.",
            field="tier",
            details={"tier": tier},
        )
    resource = files("steward.gates") / "default_policies" / f"tier{tier}.yaml"
    return resource.read_text(encoding="utf-8")


def parse_policy(
    text: str, *, source: str = "policy", checks: Mapping[str, Check] | None = None
) -> Policy:
    """Parse and validate a policy; any problem raises InvalidInput naming its line.

    ``checks`` defaults to every available check (built-ins and installed entry points).
    """
    known = available_checks() if checks is None else checks
    try:
        loader = yaml.SafeLoader(text)
    except ReaderError as error:  # a character YAML does not allow; it has no line mark
        line = text[: error.position].count("\n") + 1
        char = error.character
        code = char if isinstance(char, int) else ord(char)
        raise _error(source, line, f"not valid YAML: {error.reason} (U+{code:04X})") from error
    try:
        return _Parser(loader, text, source, known).parse()
    finally:
        loader.dispose()


class _Parser:
    def __init__(
        self, loader: yaml.SafeLoader, text: str, source: str, checks: Mapping[str, Check]
    ) -> None:
        self.loader = loader
        self.text = text
        self.source = source
        self.checks = checks

    def parse(self) -> Policy:
        root = self._compose()
        keys = self._mapping(root, "a policy is a mapping with name, description and checks")
        checks_node = keys.pop("checks", None)
        if checks_node is None:
            raise self._error(_line(root), "the policy has no 'checks' list")
        header_values = {key: self._value(node) for key, (_, node) in keys.items()}
        header = self._validate(_Header, header_values, keys, _line(root), _POLICY)
        return Policy(
            name=header.name,
            description=header.description,
            applies_to=header.applies_to,
            checks=self._checks(checks_node[1]),
            digest=policy_digest(self.text),
        )

    def _compose(self) -> yaml.Node:
        try:
            root = self.loader.get_single_node()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            reason = " ".join(part for part in (error.context, error.problem) if part)
            # an unclosed bracket is reported at the end of the stream, past the last line
            line = min(mark.line + 1 if mark else 1, max(1, len(self.text.splitlines())))
            raise self._error(line, f"not valid YAML: {reason}") from error
        if root is None:
            raise self._error(1, "the policy is empty")
        return root

    def _checks(self, node: yaml.Node) -> list[CheckSpec]:
        if not isinstance(node, yaml.SequenceNode):
            raise self._error(_line(node), "'checks' must be a list of checks")
        if not node.value:
            raise self._error(_line(node), "the policy has no checks; list at least one")
        return [self._check(item) for item in node.value]

    def _check(self, node: yaml.Node) -> CheckSpec:
        keys = self._mapping(node, "each check is a mapping with a 'check' key")
        name_entry = keys.pop("check", None)
        if name_entry is None:
            raise self._error(_line(node), "this entry has no 'check' key naming the check")
        name = self._value(name_entry[1])
        if not isinstance(name, str) or name not in self.checks:
            raise self._error(_line(name_entry[1]), self._unknown_check(name))
        check = self.checks[name]
        values = {key: self._value(value) for key, (_, value) in keys.items()}
        subject = _Subject(f"check '{name}'", "parameter", tuple(check.Params.model_fields))
        params = self._validate(check.Params, values, keys, _line(node), subject)
        return CheckSpec(check=name, params=params.model_dump(mode="json"), line=_line(node))

    def _mapping(self, node: yaml.Node, expected: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping node's entries by key text; duplicate or non-text keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            raise self._error(_line(node), expected)
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self._error(_line(key), "a key must be a plain name")
            if key.value in entries:
                raise self._error(_line(key), f"duplicate key '{key.value}'")
            entries[key.value] = (key, value)
        return entries

    def _value(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as error:  # e.g. an unknown !tag
            raise self._error(_line(node), error.problem or "cannot read this value") from error

    def _validate(
        self,
        model: type[BaseModel],
        values: dict[str, Any],
        keys: dict[str, tuple[yaml.Node, yaml.Node]],
        line: int,
        subject: _Subject,
    ) -> Any:
        try:
            return model.model_validate(values)
        except ValidationError as error:
            problems = [
                (_error_line(detail["loc"], keys, line), _reason(detail, subject))
                for detail in error.errors()
            ]
            first_line, reason = min(problems, key=lambda problem: problem[0])
            raise self._error(first_line, reason) from None

    def _unknown_check(self, name: Any) -> str:
        known = sorted(self.checks)
        hint = ""
        if isinstance(name, str):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown check {name!r}{hint}; known checks: {', '.join(known)}"

    def _error(self, line: int, reason: str) -> InvalidInput:
        return _error(self.source, line, reason)


def _error(source: str, line: int, reason: str) -> InvalidInput:
    return InvalidInput(
        f"{source} line {line}: {reason}", field="policy", details={"line": line, "reason": reason}
    )


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _error_line(
    loc: tuple[int | str, ...], keys: dict[str, tuple[yaml.Node, yaml.Node]], fallback: int
) -> int:
    """The line of the key an error is about; the entry's own line for a missing key."""
    if loc and isinstance(loc[0], str) and loc[0] in keys:
        key_node, value_node = keys[loc[0]]
        # an error inside a list (groups: [a, 1]) points at the value, else at the key
        return _line(value_node) if len(loc) > 1 else _line(key_node)
    return fallback


class _Subject(NamedTuple):
    """Whose keys are being validated, to word the error: "parameter 'min' of check 'x'"."""

    name: str
    noun: str
    keys: tuple[str, ...]


_POLICY = _Subject("the policy", "key", ("name", "description", "applies_to", "checks"))


def _reason(detail: ErrorDetails, subject: _Subject) -> str:
    loc = detail["loc"]
    key = str(loc[0]) if loc else None
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])
    if detail["type"] == "extra_forbidden":
        allowed = (
            f"its {subject.noun}s are: {', '.join(subject.keys)}"
            if subject.keys
            else f"it takes no {subject.noun}s"
        )
        return f"unknown {subject.noun} '{key}' for {subject.name}; {allowed}"
    if detail["type"] == "missing":
        return f"{subject.name} needs the {subject.noun} '{key}'"
    message = detail["msg"].removeprefix("Value error, ")
    where = f"{subject.noun} '{key}{path}' of {subject.name}" if key else subject.name
    return f"{where}: {message}; got {detail['input']!r}"
