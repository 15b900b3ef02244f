"""The CLI's one error boundary: every failure of a command becomes one line and an exit code.

Domain errors (a broken market file, a bad option, a ledger refusal) and unreadable or unwritable
paths become ``error: ...`` on stderr and exit code 1. Anything else is a bug; it too ends as one
line and exit code 1 (``error: internal error: ...``), with the traceback only when the environment
sets ``EVTRADE_DEBUG=1``: a user who fed a hostile file never sees a traceback. Typer's own exits
and usage errors pass through unchanged (usage errors exit with code 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from evtrade.errors import EvtradeError

#: A message longer than this is cut: one line on a terminal, whatever a hostile file says.
MESSAGE_LIMIT = 500


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit] + "..."


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 1."""
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code=1)


@contextmanager
def error_boundary() -> Iterator[None]:
    """Turn every failure inside a command into one line on stderr and an exit code."""
    try:
        yield
    except (typer.Exit, typer.Abort, TyperException, SystemExit):
        raise
    except EvtradeError as exc:
        fail(str(exc))
    except OSError as exc:  # a path the user gave: missing, a directory, no permission, disk full
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        fail(f"{where}{exc.strerror or exc}")
    except MemoryError:
        fail("out of memory (see the limits in docs/json-format.md#limits)")
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None
    # The one catch-all of the CLI, on purpose: whatever else escapes a command is a bug, and a
    # bug must still end as one line (no traceback for a user who fed a hostile file).
    except Exception as exc:
        if os.environ.get("EVTRADE_DEBUG") == "1":
            raise
        fail(
            f"internal error: {type(exc).__name__}: {exc} (a bug; EVTRADE_DEBUG=1 shows the "
            "traceback)"
        )


class BoundedGroup(TyperGroup):
    """The ``evtrade`` command group: every command (and sub-group) runs inside the boundary."""

    def invoke(self, ctx: Any) -> Any:
        with error_boundary():
            return super().invoke(ctx)
