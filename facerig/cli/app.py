"""The Typer application every command module attaches to, and the one error → one red line rule.

Exit codes: 0 success; 1 an expected failure (a :class:`~facerig.errors.FacerigError` or an OS error such as
a full disk: one red ``error: ...`` line naming the file and the problem); 2 a usage error (a missing or
unknown option or command, a value outside its choices: one red ``error: ...`` line and a ``try '... --help'``
hint, click's exit code for usage errors); 130 interrupted.
"""

from __future__ import annotations

import sys

import typer

from facerig.errors import FacerigError

# Help is laid out by click at a fixed width, so it reads the same in a terminal, a pipe or a CI log (rich's
# layout follows $COLUMNS and wraps to 20 characters in a narrow one).
HELP_WIDTH = 100
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": HELP_WIDTH, "terminal_width": HELP_WIDTH}

app = typer.Typer(
    name="facerig",
    help="Neutral head meshes in, FACS blendshape rigs out (USD, glTF, FBX).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings=CONTEXT_SETTINGS,
)


def error_line(message: str) -> None:
    """Print one red ``error: ...`` line on stderr."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


def fail(message: str) -> None:
    """Print one red line on stderr and exit with code 1."""
    error_line(message)
    raise typer.Exit(code=1)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (see the module docstring)."""
    try:
        # Outside standalone mode click returns a typer.Exit's code instead of raising it.
        code = app(args=argv, prog_name="facerig", standalone_mode=False)
    except FacerigError as exc:
        error_line(str(exc))
        return 1
    except OSError as exc:  # the environment, not a bug: a full disk, a read-only folder
        where = f"{exc.filename}: " if exc.filename else ""
        error_line(f"{where}{exc.strerror or exc}")
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.secho("aborted", fg=typer.colors.RED, err=True)
        return 130
    except typer.TyperException as exc:  # click's usage errors (and its other errors) from parsing the command line
        return _usage_error(exc)
    return code if isinstance(code, int) else 0


def _usage_error(exc: typer.TyperException) -> int:
    """One red line and a hint for a usage error; the help itself when a group was called without a command."""
    from typer._click.exceptions import NoArgsIsHelpError  # typer vendors click and exports no public name for it

    if isinstance(exc, NoArgsIsHelpError):
        exc.show()
        return 0
    error_line(exc.format_message())
    context = getattr(exc, "ctx", None)
    if context is not None:
        typer.echo(f"try '{context.command_path} --help'", err=True)
    return exc.exit_code


def main() -> None:
    sys.exit(run())
