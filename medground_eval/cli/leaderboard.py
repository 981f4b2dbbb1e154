"""`medground-eval leaderboard`: several runs scored on the same samples, one table, one row a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app
from medground_eval.cli.frame_options import (
    MaxPixelsOption,
    MinPixelsOption,
    ModelOption,
    ProcessorOption,
    cli_frame,
)
from medground_eval.cli.score import ALLOW_PARTIAL_HELP, ANSWER_TAG_HELP, _thresholds, score_with_progress

FORMATS = ("md", "csv", "json")


def _run_arg(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named by its file name without the suffix)."""
    name, sep, path = text.partition("=")
    if sep and name and not Path(text).exists():
        return name, Path(path)
    return Path(text).stem, Path(text)


@app.command("leaderboard")
def leaderboard_command(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(help="Predictions files, PATH or NAME=PATH (default name: the file "
                                                   "name without .jsonl).")],
    dataset: Annotated[str, typer.Option(help="Ground truth: jsonl, mscxr, chestxray8, m3d-refseg or hf.")],
    annotations: Annotated[Path | None, typer.Option(
        "--annotations", "--data-dir",
        help="The data set's file or folder (jsonl: omit to read the ground truth from each prediction file).")] = None,
    split: Annotated[str | None, typer.Option(help="Score this split only.")] = None,
    frame: Annotated[str, typer.Option(help="Frame of the runs' boxes; a line's 'frame' overrides it.")] = "pixel",
    view: Annotated[str, typer.Option(help="m3d-refseg target: volume, slice or projection.")] = "volume",
    compat: Annotated[str | None, typer.Option(help="Score every run as a published script does: vlm-r1.")] = None,
    answer_tag: Annotated[str, typer.Option(help=ANSWER_TAG_HELP)] = "required",
    on_error: Annotated[str, typer.Option(help="raise: stop at the first bad line; skip: leave it out and count it.")]
    = "raise",
    thresholds: Annotated[str, typer.Option(help="Comma-separated IoU thresholds for Acc@IoU.")]
    = "0.1,0.3,0.5,0.7,0.9",
    inclusive: Annotated[bool, typer.Option("--inclusive/--strict", help="Hit when IoU >= t (inclusive) or > t.")]
    = True,
    sort: Annotated[str | None, typer.Option(help="Rank by this metric: acc@<t>, miou, ciou, pointing or "
                                                  "parse_failure_rate (default acc@0.5).")] = None,
    baseline: Annotated[str | None, typer.Option(help="Name of the run the others are tested against (paired "
                                                      "bootstrap of the differences, McNemar at acc@0.5).")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstraps.")] = 0,
    format: Annotated[str, typer.Option("--format", help="md (Markdown table), csv or json.")] = "md",
    output: Annotated[Path, typer.Option(help="Write the table here (- : standard output).")] = Path("-"),
    model: ModelOption = None,
    processor: ProcessorOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
    allow_partial: Annotated[bool, typer.Option(help=ALLOW_PARTIAL_HELP)] = False,
) -> None:
    """Rank several runs on one data set: Acc@t, mIoU, cIoU, pointing, parse failures and per-category Acc, with
    intervals; paired tests against --baseline."""
    from medground_eval.evaluation.diagnosis import JoinError, check_join
    from medground_eval.evaluation.leaderboard import Run, build_leaderboard
    from medground_eval.evaluation.scorer import join_notes
    from medground_eval.outputs import atomic_write_text, is_stdout
    from medground_eval.provenance import provenance

    if format not in FORMATS:
        typer.echo(f"error: --format {format!r}: expected one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(1)
    named = [_run_arg(text) for text in runs]
    run_frame = cli_frame(frame, model, processor, min_pixels, max_pixels)
    options = dict(annotations=annotations, split=split, frame=run_frame, compat=compat, on_error=on_error,
                   thresholds=_thresholds(thresholds), inclusive=inclusive, n_bootstrap=bootstrap, seed=seed,
                   view=view, answer_tag=answer_tag)
    try:
        scored = [Run(name, str(path), score_with_progress(path, dataset, **options)) for name, path in named]
        for run in scored:  # a run whose ids do not match the ground truth would rank as a row of misses
            check_join(run.result, allow_partial)
        board = build_leaderboard(scored, sort=sort, baseline=baseline, n_bootstrap=bootstrap, seed=seed)
    except JoinError as error:
        typer.echo(f"error: {run.path}: {error}", err=True)
        raise typer.Exit(2) from None
    except (FileNotFoundError, ValueError) as error:  # DataError is a ValueError: file, line, field, value
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    for run in scored:
        for note in join_notes(run.result.config):
            typer.echo(f"{run.name}: {note}", err=True)
        for finding in run.result.config["diagnosis"]["findings"]:  # e.g. another frame fits this run better
            typer.echo(f"{run.name}: warning: {finding['title']}. {finding['advice']}", err=True)
    if format == "md":
        text = board.markdown()
    elif format == "csv":
        text = board.csv()
    else:
        inputs = {"annotations": annotations, **{f"run {name}": path for name, path in named}}
        record = provenance(inputs, frame=scored[0].result.config["frame"], ctx=ctx)
        text = json.dumps({**board.to_dict(), "provenance": record}, indent=2) + "\n"
    atomic_write_text(output, text)
    if not is_stdout(output):
        typer.echo(f"leaderboard of {len(scored)} runs: {output}", err=True)
