"""What a failed command tells its user: one line on stderr, exit code 1, never a trace."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from millrace_common.errors import MillraceError
from typer.core import TyperGroup

from millrace_cli.render import print_error


class CliError(Exception):
    """A one-line cause for the user; the command exits non-zero."""


def fail(message: str) -> NoReturn:
    print_error(message)
    raise typer.Exit(1)


class ErrorBoundary(TyperGroup):
    """The ``millrace`` group: a ``CliError`` or a platform error raised by any command
    below it ends the command with its one line and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            fail(str(exc))
        except MillraceError as exc:
            fail(exc.message)
