"""The ``medground-eval`` command line. Each command lives in its own module and is registered here."""

import typer

app = typer.Typer(
    name="medground-eval",
    help="Score and train vision-language models on medical image grounding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)



def _print_version(value: bool) -> None:
    if value:
        from medground_eval.provenance import package_version

        typer.echo(f"medground-eval {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the package version and exit."),
) -> None:
    """Score and train vision-language models on medical image grounding."""


from medground_eval.cli import convert  # noqa: E402,F401  (registers `convert`)
from medground_eval.cli import serve  # noqa: E402,F401  (registers `serve`)
from medground_eval.cli import train  # noqa: E402,F401  (registers `train`)
from medground_eval.cli import predict  # noqa: E402,F401  (registers `predict`)
from medground_eval.cli import score  # noqa: E402,F401  (registers `score`)
from medground_eval.cli import demo  # noqa: E402,F401  (registers `demo`)
from medground_eval.cli import compare  # noqa: E402,F401  (registers `compare`)
from medground_eval.cli import doctor  # noqa: E402,F401  (registers `doctor`)
from medground_eval.cli import ids  # noqa: E402,F401  (registers `ids`)
from medground_eval.cli import synth  # noqa: E402,F401  (registers `synth` and `tiny-model`)
from medground_eval.cli import leaderboard  # noqa: E402,F401  (registers `leaderboard`)


def main() -> None:
    """The console script: a missing optional package ends in one line naming the extra to install."""
    import sys

    from medground_eval.extras import MissingExtraError

    try:
        app()
    except MissingExtraError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
