"""The Typer application every command module attaches to, and the one error → one red line rule."""

from __future__ import annotations

import sys

import typer

from facerig.errors import FacerigError

app = typer.Typer(
    name="facerig",
    help="Neutral head meshes in, FACS blendshape rigs out (USD, glTF, FBX).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: str) -> None:
    """Print one red line on stderr and exit with code 1."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures (FacerigError) become one red line and exit code 1."""
    try:
        # Outside standalone mode click returns a typer.Exit's code instead of raising it.
        code = app(args=argv, prog_name="facerig", standalone_mode=False)
    except FacerigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.secho("aborted", fg=typer.colors.RED, err=True)
        return 130
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return code if isinstance(code, int) else 0


def main() -> None:
    sys.exit(run())
