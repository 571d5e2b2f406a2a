"""The fallback chain and the rule format."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from steward.errors import InvalidInput, Unavailable
from steward.serving.fallback import FallbackChain, RuleSet, answer, parse_rules

FAST = 0.02  # 20 ms timeouts keep the suite quick


async def ok() -> str:
    return "model"


async def boom() -> str:
    raise RuntimeError("kaput")


async def slow() -> str:
    await asyncio.sleep(5)
    return "too late"


async def previous_ok(inputs: Any) -> str:
    return f"previous({inputs})"


async def previous_boom(inputs: Any) -> str:
    raise ValueError("previous is gone")


async def previous_slow(inputs: Any) -> str:
    await asyncio.sleep(5)
    return "too late"


RULES = parse_rules(
    {
        "rules": [
            {"when": {"age": {"<": 18}}, "then": "minor"},
            {
                "when": {"country": {"in": ["FR", "DE"]}, "score": {">=": 0.5, "<": 0.9}},
                "then": "eu",
            },
        ],
        "default": "other",
    }
)


# -- the chain ------------------------------------------------------------------------------


def test_primary_answers() -> None:
    got = asyncio.run(answer(ok, FallbackChain.with_default(0), timeout_s=1))
    assert (got.value, got.source, got.reason, got.fell_back) == ("model", "primary", None, False)


def test_error_falls_back_to_previous() -> None:
    chain = FallbackChain(previous=previous_ok)
    got = asyncio.run(answer(boom, chain, timeout_s=1, inputs="x"))
    assert got.value == "previous(x)"
    assert got.source == "previous"
    assert got.reason == "error: RuntimeError: kaput"
    assert got.failures == (("primary", "error: RuntimeError: kaput"),)


def test_timeout_falls_back_quickly() -> None:
    chain = FallbackChain.with_default({"score": 0.5})
    start = time.perf_counter()
    got = asyncio.run(answer(slow, chain, timeout_s=FAST))
    assert time.perf_counter() - start < 1.0
    assert (got.value, got.source, got.reason) == ({"score": 0.5}, "default", "timeout")


def test_steps_are_tried_in_order_with_their_reasons() -> None:
    def model(inputs: Any) -> str:
        raise KeyError("no such feature")

    chain = FallbackChain.with_default(
        0, previous=previous_slow, rules=RULES, model=model, step_timeout_s=FAST
    )
    got = asyncio.run(answer(boom, chain, timeout_s=FAST, inputs=[1, 2]))  # not columns
    assert got.source == "default"
    assert got.value == 0
    assert [source for source, _ in got.failures] == ["primary", "previous", "rule", "model"]
    assert got.failures[1] == ("previous", "timeout")
    assert got.failures[2][1].startswith("error: InvalidInput")
    assert got.failures[3][1] == "error: KeyError: 'no such feature'"


def test_rule_step_answers_per_row() -> None:
    inputs = {"age": np.array([10, 30]), "country": np.array(["US", "FR"]), "score": [0.1, 0.6]}
    got = asyncio.run(answer(boom, FallbackChain(rules=RULES), timeout_s=1, inputs=inputs))
    assert got.source == "rule"
    assert got.value.tolist() == ["minor", "eu"]


def test_model_step_sync_and_async() -> None:
    def sync_model(inputs: Any) -> str:
        return f"sync({inputs})"

    async def async_model(inputs: Any) -> str:
        return f"async({inputs})"

    for model, expected in [(sync_model, "sync(7)"), (async_model, "async(7)")]:
        got = asyncio.run(answer(boom, FallbackChain(model=model), timeout_s=1, inputs=7))
        assert (got.value, got.source) == (expected, "model")


def test_null_default_is_an_answer() -> None:
    got = asyncio.run(answer(boom, FallbackChain.with_default(None), timeout_s=1))
    assert (got.value, got.source) == (None, "default")


def test_nothing_answers_raises_unavailable_with_reasons() -> None:
    chain = FallbackChain(previous=previous_boom, step_timeout_s=FAST)
    with pytest.raises(Unavailable) as caught:
        asyncio.run(answer(slow, chain, timeout_s=FAST, inputs=1))
    error = caught.value
    assert error.http_status == 503
    assert error.details["reasons"] == [
        {"source": "primary", "reason": "timeout"},
        {"source": "previous", "reason": "error: ValueError: previous is gone"},
    ]
    assert "timeout" in error.message
    assert "previous is gone" in error.message


def test_no_fallback_at_all() -> None:
    with pytest.raises(Unavailable, match="no fallback"):
        asyncio.run(answer(boom, timeout_s=1))


def test_invalid_input_is_not_a_model_failure() -> None:
    async def bad_request() -> str:
        raise InvalidInput("The column 'age' is missing.", field="age")

    with pytest.raises(InvalidInput, match="age"):
        asyncio.run(answer(bad_request, FallbackChain.with_default(0), timeout_s=1))


def test_cancellation_propagates() -> None:
    async def main() -> None:
        task = asyncio.create_task(answer(slow, FallbackChain.with_default(0), timeout_s=10))
        await asyncio.sleep(FAST)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_cancellation_inside_the_chain_propagates() -> None:
    async def main() -> None:
        chain = FallbackChain.with_default(0, previous=previous_slow)
        task = asyncio.create_task(answer(boom, chain, timeout_s=10))
        await asyncio.sleep(FAST)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_long_reasons_are_shortened() -> None:
    async def verbose() -> str:
        raise RuntimeError("x" * 10_000)

    got = asyncio.run(answer(verbose, FallbackChain.with_default(0), timeout_s=1))
    assert got.reason is not None
    assert len(got.reason) <= 300


# -- rules ----------------------------------------------------------------------------------


def test_rules_vectorised_over_a_batch() -> None:
    columns = {
        "age": np.array([10, 30, 40, 50, np.nan, 17]),
        "country": np.array(["US", "FR", "DE", "FR", "FR", "FR"]),
        "score": np.array([0.1, 0.6, 0.95, 0.5, 0.7, 0.7]),
    }
    got = RULES.evaluate(columns)
    # first match wins (row 5 is a minor before it is "eu"); NaN never matches "<"
    assert got.tolist() == ["minor", "eu", "other", "eu", "eu", "minor"]


def test_rules_on_one_row() -> None:
    assert RULES.evaluate_row({"age": 30, "country": "DE", "score": 0.6}) == "eu"
    assert RULES.evaluate_row({"age": 30, "country": "US", "score": 0.6}) == "other"


def test_rule_answers_keep_their_type() -> None:
    numbers = parse_rules([{"when": {"x": {">": 0}}, "then": 1.5}])
    rules = parse_rules({"rules": [{"when": {"x": {">": 0}}, "then": 1}], "default": 0})
    assert rules.evaluate({"x": np.array([-1, 1])}).tolist() == [0, 1]
    objects = parse_rules({"rules": [{"when": {"x": {"==": 1}}, "then": {"a": 1}}], "default": []})
    assert objects.evaluate({"x": [1, 2]}).tolist() == [{"a": 1}, []]
    assert numbers.evaluate({"x": [3]}).tolist() == [1.5]


def test_rules_operators() -> None:
    x = np.array([1, 2, 3])
    cases = {"<": [1, 0, 0], "<=": [1, 1, 0], ">": [0, 0, 1], ">=": [0, 1, 1], "==": [0, 1, 0]}
    cases["!="] = [1, 0, 1]
    for op, expected in cases.items():
        rules = parse_rules({"rules": [{"when": {"x": {op: 2}}, "then": 1}], "default": 0})
        assert rules.evaluate({"x": x}).tolist() == expected, op
    rules = parse_rules({"rules": [{"when": {"x": {"in": [1, 3]}}, "then": 1}], "default": 0})
    assert rules.evaluate({"x": x}).tolist() == [1, 0, 1]


def test_rules_without_default_must_match_every_row() -> None:
    rules = parse_rules([{"when": {"x": {"==": 1}}, "then": "one"}])
    assert rules.evaluate({"x": [1, 1]}).tolist() == ["one", "one"]
    with pytest.raises(InvalidInput, match="No rule matches row 1"):
        rules.evaluate({"x": [1, 2]})


def test_rules_name_missing_columns_and_type_mismatches() -> None:
    with pytest.raises(InvalidInput) as caught:
        RULES.evaluate({"age": [1]})
    assert caught.value.field == "country"
    assert caught.value.details["missing"] == ["country", "score"]
    with pytest.raises(InvalidInput, match="different numbers of rows"):
        RULES.evaluate({"age": [1, 2], "country": ["FR"], "score": [0.5]})
    with pytest.raises(InvalidInput) as caught:
        RULES.evaluate({"age": ["old"], "country": ["FR"], "score": [0.5]})
    assert caught.value.field == "age"


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ([{"when": {"x": {"~": 1}}, "then": 1}], "rules.0.when.x.~.[key]", "'<'"),
        ([{"when": {"x": {"in": 1}}, "then": 1}], "rules.0.when", "'in' needs a non-empty list"),
        ([{"when": {"x": {"in": []}}, "then": 1}], "rules.0.when", "non-empty"),
        ([{"when": {"x": {"<": [1]}}, "then": 1}], "rules.0.when", "use 'in'"),
        ([{"when": {"x": {"<": True}}, "then": 1}], "rules.0.when", "true/false"),
        ([{"when": {}, "then": 1}], "rules.0.when", "at least 1"),
        ([{"when": {"x": {}}, "then": 1}], "rules.0.when.x", "at least 1"),
        ([{"when": {"x": {"<": 1}}}], "rules.0.then", "required"),
        ([{"when": {"x": {"<": 1}}, "then": 1, "else": 2}], "rules.0.else", "not permitted"),
        ([], "rules", "at least 1"),
        ({"default": 1}, "rules", "required"),
        ("rules!", "rules", "a list of rules"),
    ],
)
def test_rule_errors_name_the_field(data: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_rules(data)
    assert caught.value.field == field
    assert words in caught.value.message


def test_rule_set_round_trips() -> None:
    dumped = RULES.model_dump(mode="json")
    assert RuleSet.model_validate(dumped) == RULES
    no_default = parse_rules([{"when": {"x": {"==": 1}}, "then": 1}])
    assert not RuleSet.model_validate(no_default.model_dump(mode="json")).has_default
    assert RULES.columns == ["age", "country", "score"]
