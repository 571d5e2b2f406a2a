"""Contracts that keep the project honest: cheap import, layering, documented settings/errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from steward.errors import ERROR_CLASSES
from steward.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    p.name
    for p in (ROOT / "src" / "steward").iterdir()
    if p.is_dir() and (p / "__init__.py").exists()
)


def _fresh(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout


def test_import_steward_stays_light() -> None:
    heavy = ["numpy", "pandas", "sklearn", "sqlalchemy", "fastapi", "pydantic", "httpx"]
    out = _fresh(
        f"import sys, json, steward; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    assert json.loads(out) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_imports_in_a_fresh_interpreter(package: str) -> None:
    assert _fresh(f"import steward.{package}; print('ok')").strip() == "ok"


def test_public_names_resolve() -> None:
    out = _fresh(
        "import steward; print(all(callable(getattr(steward, n)) for n in steward.__all__ "
        "if n != '__version__'))"
    )
    assert out.strip() == "True"


def _sections() -> dict[str, type[BaseSettings]]:
    """Settings fields that are sections (a BaseSettings of their own, with their own prefix)."""
    sections: dict[str, type[BaseSettings]] = {}
    for name, field in Settings.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseSettings):
            sections[name] = kind
    return sections


def _setting_env_names() -> list[str]:
    sections = _sections()
    names = [f"STEWARD_{n.upper()}" for n in Settings.model_fields if n not in sections]
    for group in sections.values():
        prefix = group.model_config["env_prefix"]
        names += [f"{prefix}{n.upper()}" for n in group.model_fields]
    return names


def test_settings_sections_are_found() -> None:
    assert {"database", "artifacts", "server", "prediction_log"} <= set(_sections())


@pytest.mark.parametrize("env_name", _setting_env_names())
def test_every_setting_is_documented(env_name: str) -> None:
    assert f"`{env_name}`" in (ROOT / "docs" / "settings.md").read_text()


@pytest.mark.parametrize("group", [Settings, *_sections().values()], ids=lambda g: g.__name__)
def test_every_setting_has_a_description(group: type[BaseSettings]) -> None:
    for name, field in group.model_fields.items():
        if group is Settings and name in _sections():
            continue
        assert field.description, f"{group.__name__}.{name} has no description"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_code_is_documented(cls: type) -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    assert f"`{cls.code}`" in text  # type: ignore[attr-defined]
    assert f"| {cls.http_status} | {cls.exit_code} |" in text  # type: ignore[attr-defined]


def test_import_layers_contract() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:]
