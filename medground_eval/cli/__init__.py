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


from medground_eval.cli import (  # noqa: E402  (the commands register themselves on app)
    compare,  # noqa: E402,F401  (registers `compare`)
    convert,  # noqa: E402,F401  (registers `convert`)
    demo,  # noqa: E402,F401  (registers `demo`)
    doctor,  # noqa: E402,F401  (registers `doctor`)
    ids,  # noqa: E402,F401  (registers `ids`)
    leaderboard,  # noqa: E402,F401  (registers `leaderboard`)
    predict,  # noqa: E402,F401  (registers `predict`)
    score,  # noqa: E402,F401  (registers `score`)
    serve,  # noqa: E402,F401  (registers `serve`)
    synth,  # noqa: E402,F401  (registers `synth` and `tiny-model`)
    train,  # noqa: E402,F401  (registers `train`)
)


def main() -> None:
    """The console script: a missing optional package ends in one line naming the extra to install."""
    import sys

    from medground_eval.extras import MissingExtraError

    try:
        app()
    except MissingExtraError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
