"""Click group classes: the root that turns errors into exit codes, and a group with a default.

Typer 0.29 vendors Click privately, so the context parameters below are typed ``Any``.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from steward.cli._output import error_line
from steward.errors import StewardError

_HELP = ("--help", "-h")
DEBUG_KEY = "steward.debug"


class RootGroup(TyperGroup):
    """``steward``: every StewardError becomes ``error: <message>`` and its exit code (§4).

    Done here rather than only in ``main()`` so that Typer's CliRunner sees the same exit codes
    and output as a user does. ``--debug`` re-raises instead, for a full traceback.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # Typer's own: usage errors exit 2, --help and Exit(code) exit as asked
        except Exception as exc:
            if _debug(ctx):
                raise
            raise typer.Exit(report(exc)) from None


def report(exc: BaseException) -> int:
    """Print the one error line for ``exc`` and return the exit code."""
    if isinstance(exc, StewardError):
        error_line(exc.message)
        return exc.exit_code
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):  # settings from the environment or steward.toml
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        error_line(
            f"invalid setting {where!r} of {exc.title}: {first['msg']} "
            "(check the STEWARD_* variables and steward.toml)"
        )
        return 2
    error_line(
        f"unexpected {type(exc).__name__}: {exc} (run with `steward --debug ...` for the "
        "traceback, and report it if it persists)"
    )
    return 1


def _debug(ctx: Any) -> bool:
    return bool(ctx.meta.get(DEBUG_KEY, False))


class DefaultGroup(TyperGroup):
    """A group that runs ``default_command`` when the first word is not one of its commands:
    ``steward runs --project p`` is ``steward runs list --project p`` and
    ``steward card models:/m/1`` is ``steward card show models:/m/1``."""

    default_command = "list"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in _HELP):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


class ListGroup(DefaultGroup):
    default_command = "list"


class ShowGroup(DefaultGroup):
    default_command = "show"
