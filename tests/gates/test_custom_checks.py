"""Custom checks installed through the ``steward.checks`` entry point group.

Each test installs a real (tiny) distribution: a module and a ``.dist-info`` folder with its
``entry_points.txt``, on a ``sys.path`` entry of its own, so discovery runs through
importlib.metadata exactly as it does for a pip-installed package.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from steward.domain.gates import Outcome
from steward.errors import InvalidInput, StewardError
from steward.gates.checks import available_checks, builtin_checks
from steward.gates.policy import parse_policy
from steward.gates.report import run_policy

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policies.md"

Install = Callable[[str, str, dict[str, str]], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(module, source, {entry point name: value})``: a distribution on sys.path."""
    modules: list[str] = []

    def _install(module: str, source: str, entry_points: dict[str, str]) -> None:
        site = tmp_path / f"site-{module}"
        info = site / f"{module}-1.0.dist-info"
        info.mkdir(parents=True)
        (site / f"{module}.py").write_text(source)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[steward.checks]\n{lines}")
        monkeypatch.syspath_prepend(str(site))
        modules.append(module)

    yield _install
    for module in modules:
        sys.modules.pop(module, None)


def _docs_example() -> tuple[str, dict[str, str]]:
    """The custom check module and its entry points, as docs/policies.md shows them."""
    text = DOCS.read_text()
    after_marker = text.split("<!-- custom-check-example", 1)[1]
    source = re.search(r"```python\n(.*?)```", after_marker, re.S)
    toml = re.search(r"```toml\n(.*?)```", text, re.S)
    assert source
    assert toml
    entry_points = tomllib.loads(toml.group(1))["project"]["entry-points"]["steward.checks"]
    return source.group(1), entry_points


def test_the_documented_example_installs_parses_and_runs(install: Install, make) -> None:
    source, entry_points = _docs_example()
    install("acme_checks", source, entry_points)

    checks = available_checks()
    assert set(checks) == set(builtin_checks()) | {"change_ticket"}
    text = "name: x\nchecks:\n  - check: change_ticket\n  - check: change_ticket\n    tag: cab\n"
    policy = parse_policy(text, checks=checks)
    ticketed = make.ctx(version=make.version(tags={"change_ticket": "CHG-1234"}))
    first, second = run_policy(policy, ticketed, checks)
    assert first.outcome == Outcome.PASSED
    assert first.detail == "change ticket CHG-1234"
    assert second.outcome == Outcome.FAILED
    assert "no 'cab' tag" in second.detail

    # its parameters are validated on upload like a built-in's, with the line
    with pytest.raises(InvalidInput) as caught:
        parse_policy("name: x\nchecks:\n  - check: change_ticket\n    tags: x\n")
    assert caught.value.details["line"] == 4
    assert "unknown parameter 'tags' for check 'change_ticket'" in caught.value.message


GOOD = """
from steward.gates.checks import BaseCheck, Finding, NoParams
from steward.domain.gates import Outcome


class Always(BaseCheck[NoParams]):
    name = "{name}"
    Params = NoParams

    def title(self, params):
        return "always"

    def evaluate(self, params, ctx):
        return Finding(Outcome.PASSED, "fine")


INSTANCE = Always()
"""


def test_an_entry_point_may_name_an_instance(install: Install) -> None:
    install("inst_checks", GOOD.format(name="always"), {"always": "inst_checks:INSTANCE"})
    assert available_checks()["always"].title(None) == "always"


NO_EXTRA_FORBID = """
from pydantic import BaseModel


class P(BaseModel):
    pass


class C:
    name = "c"
    Params = P

    def title(self, params):
        return ""

    def run(self, params, ctx):
        return None
"""

BROKEN = [
    ("raise RuntimeError('no licence')\n", "x", "broken_a:X", "failed to load: RuntimeError"),
    ("X = 1\n", "x", "broken_b:Missing", "failed to load: AttributeError"),
    (GOOD.format(name="always"), "approvals", "broken_c:Always", "its name is 'always'"),
    (GOOD.format(name="approvals"), "approvals", "broken_d:Always", "the name of a built-in"),
    (NO_EXTRA_FORBID, "c", "broken_e:C", "Params must forbid unknown keys"),
    (
        "from steward.gates.checks import NoParams\nclass C:\n    name = 'c'\n"
        "    Params = NoParams\n",
        "c",
        "broken_f:C",
        "it has no title() method",
    ),
    ("class C:\n    name = 'c'\n    Params = dict\n", "c", "broken_g:C", "a pydantic model"),
]


@pytest.mark.parametrize(("source", "name", "value", "problem"), BROKEN)
def test_a_broken_entry_point_is_an_error_naming_it(
    install: Install, source: str, name: str, value: str, problem: str
) -> None:
    install(value.split(":")[0], source, {name: value})
    with pytest.raises(StewardError) as caught:
        available_checks()
    assert caught.value.message.startswith(f"check entry point {name!r} ({value}, group")
    assert problem in caught.value.message
    assert caught.value.details["entry_point"] == name


def test_two_packages_installing_the_same_name_is_an_error(install: Install) -> None:
    install("twin_a", GOOD.format(name="twin"), {"twin": "twin_a:Always"})
    install("twin_b", GOOD.format(name="twin"), {"twin": "twin_b:Always"})
    with pytest.raises(StewardError, match="is installed twice"):
        available_checks()
