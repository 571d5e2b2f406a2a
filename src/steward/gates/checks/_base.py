"""The interface every check satisfies, built-in or installed through an entry point.

A check is an object with a ``name``, a pydantic ``Params`` model (the keys a policy may give
it, ``extra="forbid"`` so a typo is rejected on upload), ``title(params)`` (what is required,
in words) and ``run(params, ctx)`` (what was found, as a :class:`CheckResult`).

:class:`BaseCheck` is the convenient way to write one: implement ``evaluate`` and return a
:class:`Finding`, or raise :class:`Unmet` from anywhere below it when evidence is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from steward.domain.gates import CheckResult, GateContext, Outcome


class CheckParams(BaseModel):
    """Base of a check's parameters: immutable, and an unknown key is an error."""

    # a YAML `.nan` threshold would make every comparison False: reject it with its line
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class NoParams(CheckParams):
    """For checks that take no parameters."""


class Check(Protocol):
    """What the gate runner and the policy parser need from a check.

    Members are read-only properties so that a class attribute ``Params = MyParams`` (a
    subclass of ``BaseModel``) satisfies the protocol.
    """

    @property
    def name(self) -> str: ...

    @property
    def Params(self) -> type[BaseModel]: ...

    def title(self, params: Any) -> str: ...

    def run(self, params: Any, ctx: GateContext) -> CheckResult: ...


@dataclass(frozen=True)
class Finding:
    """What a check found: the outcome, in words, and the numbers behind the words."""

    outcome: Outcome
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Unmet(Exception):
    """Ends a check early with a finding, FAILED unless told otherwise.

    Lets helpers such as "the evaluation must have this metric" stop the check from deep
    inside without every caller testing a return value.
    """

    def __init__(
        self,
        detail: str,
        *,
        outcome: Outcome = Outcome.FAILED,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.finding = Finding(outcome, detail, dict(evidence or {}))


P = TypeVar("P", bound=BaseModel)


class BaseCheck(Generic[P]):
    """A check written as ``evaluate(params, ctx) -> Finding``; ``run`` builds the result."""

    name: str
    Params: type[P]

    def title(self, params: P) -> str:
        raise NotImplementedError

    def evaluate(self, params: P, ctx: GateContext) -> Finding:
        raise NotImplementedError

    def run(self, params: P, ctx: GateContext) -> CheckResult:
        try:
            finding = self.evaluate(params, ctx)
        except Unmet as stop:
            finding = stop.finding
        return CheckResult(
            check=self.name,
            title=self.title(params),
            outcome=finding.outcome,
            detail=finding.detail,
            evidence=finding.evidence,
            params=params.model_dump(mode="json"),
        )


def passed_if(ok: bool, detail: str, evidence: dict[str, Any]) -> Finding:
    return Finding(Outcome.PASSED if ok else Outcome.FAILED, detail, evidence)


def num(value: float) -> str:
    """A number as a report shows it: four significant digits, never NaN or ``1e-05`` noise."""
    if math.isnan(value):
        return "undefined"
    return f"{value:.4g}"
