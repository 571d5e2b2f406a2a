"""The way out when the model fails: a fallback chain tried in order on error or timeout.

`answer(primary, chain, ...)` runs the primary (the routed version's model call) under a
timeout. When it raises or times out, the chain's steps are tried in a fixed order, each under
its own timeout, and the first that answers wins:

1. ``previous``: the previous production version (a callable the gateway provides);
2. ``rule``: a `RuleSet`, a small declarative rule format evaluated over the request's columns;
3. ``model``: a python-flavor model (a callable, sync or async);
4. ``default``: a safe default answer (any JSON value), returned as is.

The `Answered` result says which source answered and why the primary did not. When nothing
answers, `steward.errors.Unavailable` (503) carries every reason. A client error
(`InvalidInput`) is not a model failure and is raised as is; cancellation always propagates.

Rule format (a list of rules, or ``{"rules": [...], "default": ...}``)::

    [{"when": {"age": {"<": 18}, "country": {"in": ["FR", "DE"]}}, "then": 0},
     {"when": {"score": {">=": 0.5, "<": 0.9}}, "then": 1}]

Rules are tried in order and the first that matches a row gives its answer; the conditions of
a rule, and the operators under one column, must all hold. Operators: ``<``, ``<=``, ``>``,
``>=``, ``==``, ``!=``, ``in``. A row no rule matches gets the ``default``; without a default,
the rule set does not answer that request and the chain moves on.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from steward.errors import InvalidInput, Unavailable
from steward.serving.routing import invalid_input

Source = Literal["primary", "previous", "rule", "model", "default"]
Operator = Literal["<", "<=", ">", ">=", "==", "!=", "in"]
Scalar: TypeAlias = bool | int | float | str
Columns: TypeAlias = Mapping[str, Any]  # column name -> 1-d array (or sequence) of values
# The reason a source did not answer is at most this long (exception messages can be huge).
_MAX_REASON = 300

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


class Rule(BaseModel):
    """``when`` every condition holds, answer ``then``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    when: dict[
        Annotated[str, Field(min_length=1)],
        Annotated[dict[Operator, Scalar | list[Scalar]], Field(min_length=1)],
    ] = Field(min_length=1)
    then: JsonValue

    @field_validator("when")
    @classmethod
    def _operands(
        cls, when: dict[str, dict[str, Scalar | list[Scalar]]]
    ) -> dict[str, dict[str, Scalar | list[Scalar]]]:
        for column, tests in when.items():
            for op, operand in tests.items():
                where = f"column '{column}', operator '{op}'"
                if op == "in":
                    if not isinstance(operand, list) or not operand:
                        raise ValueError(f"{where}: 'in' needs a non-empty list of values")
                elif isinstance(operand, list):
                    raise ValueError(f"{where}: needs a single value, not a list (use 'in')")
                elif isinstance(operand, float) and math.isnan(operand):
                    raise ValueError(f"{where}: NaN never compares; test for a value instead")
                elif op not in ("==", "!=") and isinstance(operand, bool):
                    raise ValueError(f"{where}: orders numbers or text, not true/false")
        return when


class RuleSet(BaseModel):
    """Ordered rules and an optional default; `parse_rules` reads one from JSON/YAML data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[Rule] = Field(min_length=1, max_length=1000)
    default: JsonValue = None
    # Whether the data named a default (which may be null); filled in from the data's keys.
    has_default: bool = False

    @model_validator(mode="before")
    @classmethod
    def _note_default(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "has_default" not in data:
            return {**data, "has_default": "default" in data}
        return data

    @property
    def columns(self) -> list[str]:
        """The columns the rules read, in order of first use."""
        return list(dict.fromkeys(c for rule in self.rules for c in rule.when))

    def evaluate(self, columns: Columns) -> NDArray[Any]:
        """One answer per row, vectorised over the columns (each a 1-d array of n rows).

        The answers form a numpy array of the answers' common dtype (``object`` when they
        mix kinds or are lists/objects). Raises InvalidInput when a column is missing, when
        columns differ in length, or when a row matches no rule and there is no default.
        """
        arrays = _columns(columns, self.columns)
        n = len(next(iter(arrays.values())))
        choice = np.full(n, len(self.rules), dtype=np.intp)  # len(rules) = the default
        open_rows = np.ones(n, dtype=bool)
        for index, rule in enumerate(self.rules):
            hit = open_rows.copy()
            for column, tests in rule.when.items():
                for op, operand in tests.items():
                    hit &= _test(arrays[column], op, operand, column)
            choice[hit] = index
            open_rows &= ~hit
        if not self.has_default and open_rows.any():
            row = int(np.flatnonzero(open_rows)[0])
            raise InvalidInput(
                f"No rule matches row {row} and the rule set has no default.",
                field="rules",
                details={"unmatched_rows": int(open_rows.sum())},
            )
        return _answers([*(rule.then for rule in self.rules), self.default])[choice]

    def evaluate_row(self, row: Mapping[str, Any]) -> Any:
        """The answer for a single row given as ``{column: value}``."""
        return self.evaluate({c: [row[c]] if c in row else None for c in self.columns})[0]


def parse_rules(data: Any) -> RuleSet:
    """Read a rule set: a list of rules, or ``{"rules": [...], "default": ...}``.

    Problems raise InvalidInput naming the field, e.g. ``rules.1.when.age.in``.
    """
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"A rule set is a list of rules or an object with 'rules' and 'default'. "
            f"Got {type(data).__name__}.",
            field="rules",
        )
    try:
        return RuleSet.model_validate(data)
    except ValidationError as error:
        raise invalid_input(error, "rule set") from None


@dataclass(frozen=True, slots=True)
class FallbackChain:
    """The steps tried, in this order, when the primary fails; each may be None (skipped).

    ``previous`` and ``model`` are called with the request's inputs (the ``inputs`` given to
    `answer`); ``model`` may be sync (run in a thread) or async. ``rules`` reads the inputs
    as columns. ``default`` is used only when ``has_default`` (a default may itself be null).
    ``step_timeout_s`` bounds each of ``previous`` and ``model`` (None: the primary's timeout).
    """

    previous: Callable[[Any], Awaitable[Any]] | None = None
    rules: RuleSet | None = None
    model: Callable[[Any], Any] | None = None
    default: JsonValue = None
    has_default: bool = False
    step_timeout_s: float | None = None

    @classmethod
    def with_default(cls, value: JsonValue, **steps: Any) -> FallbackChain:
        """A chain ending in the safe answer ``value``."""
        return cls(default=value, has_default=True, **steps)

    @property
    def empty(self) -> bool:
        return (
            self.previous is None
            and self.rules is None
            and self.model is None
            and not (self.has_default)
        )


NO_FALLBACK = FallbackChain()


@dataclass(frozen=True, slots=True)
class Answered:
    """An answer, who gave it and, when not the primary, why the primary did not.

    ``reason`` is ``"timeout"`` or ``"error: <Type>: <message>"``; ``failures`` lists every
    source that was tried and failed, in order, as ``(source, reason)``.
    """

    value: Any
    source: Source
    reason: str | None = None
    failures: tuple[tuple[Source, str], ...] = ()

    @property
    def fell_back(self) -> bool:
        return self.source != "primary"


async def answer(
    primary: Callable[[], Awaitable[Any]],
    chain: FallbackChain = NO_FALLBACK,
    *,
    timeout_s: float,
    inputs: Any = None,
    now: Callable[[], Any] | None = None,
) -> Answered:
    """Run ``primary`` within ``timeout_s``; on error or timeout, the chain's first answer.

    ``now``, when given, replaces ``primary``: a synchronous call that enforces the deadline
    itself (raising TimeoutError), as an inline model call does; it saves the timeout scope.
    Raises Unavailable (503) with every source's reason when nothing answers. InvalidInput
    from the primary is the caller's mistake, not the model's: it propagates, untouched, and
    so does cancellation of the caller.
    """
    try:
        if now is not None:
            return Answered(now(), "primary")
        async with asyncio.timeout(timeout_s):
            return Answered(await primary(), "primary")
    except TimeoutError:
        reason = "timeout"
    except InvalidInput:
        raise
    except Exception as error:
        reason = describe(error)
    failures: list[tuple[Source, str]] = [("primary", reason)]
    step_timeout = chain.step_timeout_s if chain.step_timeout_s is not None else timeout_s
    for source, step in _steps(chain, inputs):
        try:
            async with asyncio.timeout(step_timeout):
                value = await step()
        except TimeoutError:
            failures.append((source, "timeout"))
        except Exception as error:
            failures.append((source, describe(error)))
        else:
            return Answered(value, source, reason, tuple(failures))
    raise _nothing_answered(failures, chain)


def describe(error: BaseException) -> str:
    """``error: <Type>: <message>``, shortened: the reason a source did not answer."""
    text = f"error: {type(error).__name__}: {error}"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _steps(chain: FallbackChain, inputs: Any) -> list[tuple[Source, Callable[[], Awaitable[Any]]]]:
    steps: list[tuple[Source, Callable[[], Awaitable[Any]]]] = []
    previous, rules, model = chain.previous, chain.rules, chain.model
    if previous is not None:
        steps.append(("previous", lambda: previous(inputs)))
    if rules is not None:
        steps.append(("rule", lambda: _evaluate(rules, inputs)))
    if model is not None:
        steps.append(("model", lambda: _call(model, inputs)))
    if chain.has_default:
        steps.append(("default", lambda: _value(chain.default)))
    return steps


async def _evaluate(rules: RuleSet, inputs: Any) -> NDArray[Any]:
    if not isinstance(inputs, Mapping):
        raise InvalidInput(
            f"A rule set reads the request as columns ({{name: values}}), got "
            f"{type(inputs).__name__}.",
            field="inputs",
        )
    return rules.evaluate(inputs)


async def _call(model: Callable[[Any], Any], inputs: Any) -> Any:
    if _is_async(model):
        return await model(inputs)
    # A sync model runs in a thread so the loop keeps serving; on timeout the thread finishes
    # its call in the background (Python cannot stop it), but the request moves on.
    return await asyncio.to_thread(model, inputs)


async def _value(value: Any) -> Any:
    return value


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _nothing_answered(failures: list[tuple[Source, str]], chain: FallbackChain) -> Unavailable:
    primary_reason = failures[0][1]
    if chain.empty:
        message = f"The model did not answer ({primary_reason}) and there is no fallback."
    else:
        tried = "; ".join(f"{source}: {reason}" for source, reason in failures[1:])
        message = f"The model did not answer ({primary_reason}) and no fallback did: {tried}."
    reasons = [{"source": source, "reason": reason} for source, reason in failures]
    return Unavailable(message, details={"reasons": reasons})


def _columns(columns: Columns, needed: Sequence[str]) -> dict[str, NDArray[Any]]:
    missing = [c for c in needed if columns.get(c) is None]
    if missing:
        raise InvalidInput(
            f"The rules read column(s) {', '.join(map(repr, missing))}, which the request "
            f"does not have.",
            field=missing[0],
            details={"missing": missing},
        )
    arrays = {c: np.asarray(columns[c]) for c in needed}
    lengths = {c: a.shape[0] if a.ndim else 1 for c, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInput(
            f"The columns have different numbers of rows: {lengths}.",
            field="inputs",
            details={"rows": lengths},
        )
    return {c: a.reshape(-1) if a.ndim == 0 else a for c, a in arrays.items()}


def _test(values: NDArray[Any], op: str, operand: Any, column: str) -> NDArray[np.bool_]:
    """The rows of ``values`` where ``value <op> operand`` holds; NaN and None never match
    (except under ``!=``)."""
    try:
        if op == "in":
            return np.isin(values, _operand_array(operand))
        with np.errstate(invalid="ignore"):
            result = _COMPARE[op](values, operand)
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"Column '{column}' ({values.dtype}) cannot be compared with {operand!r} by "
            f"'{op}': {error}",
            field=column,
        ) from None
    if not isinstance(result, np.ndarray) or result.dtype != np.bool_:
        raise InvalidInput(
            f"Column '{column}' ({values.dtype}) cannot be compared with {operand!r} by '{op}'.",
            field=column,
        )
    return result


def _operand_array(values: list[Any]) -> NDArray[Any]:
    """An ``in`` list as an array; mixed kinds stay objects (numpy would make them text)."""
    if all(isinstance(v, str) for v in values) or all(not isinstance(v, str) for v in values):
        return np.asarray(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _answers(values: list[Any]) -> NDArray[Any]:
    """The rules' answers as an array to index with each row's choice."""
    if (
        all(isinstance(v, bool) for v in values)
        or all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or all(isinstance(v, str) for v in values)
    ):
        return np.asarray(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
