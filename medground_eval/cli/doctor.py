"""`medground-eval doctor`: the frame fit, the join, parse failures, degenerate answers and GRPO groups of a
predictions file or a rollout log, as tables (or ``--json``)."""

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
from medground_eval.cli.score import ANSWER_TAG_HELP, CONVENTION_HELP


def print_doctor(report: object) -> None:
    """The doctor's tables and findings on the console."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"{report.kind} {report.source}: {report.samples} samples", markup=False)
    fit = report.frame_fit
    if fit is not None:
        table = Table(title=f"Frame fit on {fit.used.n} samples with an answer box and an image size")
        for name in ("frame", "Acc@0.5", "mIoU", "sign test p", "select with"):
            table.add_column(name, justify="left" if name in ("frame", "select with") else "right")
        table.add_row(f"{fit.used.frame} (used)", f"{fit.used.acc50:.3f}", f"{fit.used.miou:.3f}", "", "")
        for row in sorted(fit.candidates, key=lambda c: (-c.acc50, -c.miou)):
            option = row.to_dict()["option"] or ""
            table.add_row(row.frame, f"{row.acc50:.3f}", f"{row.miou:.3f}", f"{row.p_value:.2g}", option)
        console.print(table)
    join = report.join
    console.print(f"join: {join['matched']} of {join['predictions']} predictions matched, {join['missing']} of "
                  f"{join['ground_truth']} samples without a prediction; expected ids such as "
                  f"{', '.join(map(repr, join['expected_examples']))}", markup=False)
    for pair in join.get("closest", []):
        console.print(f"  given {pair['given']!r}, closest expected {pair['closest_expected']!r}", markup=False)
    if report.parse_failures:
        table = Table(title="Parse problems")
        for name in ("reason", "count", "example id", "example"):
            table.add_column(name, justify="right" if name == "count" else "left")
        for row in report.parse_failures:
            table.add_row(row["reason"], str(row["count"]), str(row["example_id"]), row["example"])
        console.print(table)
    d = report.degenerate
    console.print(f"answers {d['answers']}: whole-image boxes {d['whole_image']}, zero-area boxes {d['zero_area']}, "
                  f"most repeated box {d['most_common_box']} x{d['most_common_count']}; out of frame "
                  f"{report.out_of_frame['out_of_frame']}", markup=False)
    if report.groups is not None:
        g = report.groups
        console.print(f"rollout groups: {g['groups']} of 2+ completions, {g['zero_variance']} with zero reward "
                      f"variance ({g['share']:.1%}; {g['all_zero']} all zero; reward {g['reward']})", markup=False)
    if not report.findings:
        console.print("no findings", style="green")
    for finding in report.findings:
        style = "bold yellow" if finding.severity == "warning" else "cyan"
        console.print(f"{finding.severity}: {finding.title}. {finding.advice}", style=style, markup=False)


@app.command("doctor")
def doctor_command(
    predictions: Annotated[Path, typer.Argument(help="A predictions file (with --dataset), or a GRPO rollout log: "
                                                     "JSON lines of completions with their ground truth.")],
    dataset: Annotated[str | None, typer.Option(help="Ground truth of a predictions file: jsonl, mscxr, chestxray8, "
                                                     "m3d-refseg (omit for a rollout log).")] = None,
    annotations: Annotated[Path | None, typer.Option("--annotations", "--data-dir",
                                                     help="The data set's file or folder.")] = None,
    split: Annotated[str | None, typer.Option(help="Examine this split only.")] = None,
    frame: Annotated[str, typer.Option(help="Frame the boxes are written in; a line's 'frame' overrides it.")]
    = "pixel",
    answer_tag: Annotated[str, typer.Option(help=ANSWER_TAG_HELP)] = "required",
    convention: Annotated[str, typer.Option(help=CONVENTION_HELP)] = "radiological",
    model: ModelOption = None,
    processor: ProcessorOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
) -> None:
    """Find what can make a grounding number wrong: frame fit, id join, parse failures, degenerate answers,
    out-of-frame answers and, for rollouts, groups with zero reward variance. Exit 0 with findings printed."""
    from medground_eval.evaluation.doctor import doctor_predictions, doctor_rollouts, is_rollout_log

    run_frame = cli_frame(frame, model, processor, min_pixels, max_pixels)
    try:
        if not predictions.is_file():
            raise FileNotFoundError(f"{predictions}: no such file")
        if dataset is None:
            if not is_rollout_log(predictions):
                raise ValueError(f"{predictions}: give --dataset (and --annotations) for a predictions file; a rollout "
                                 "log's lines carry 'completion' and 'solution' (or 'label')")
            report = doctor_rollouts(predictions, frame=run_frame, answer_tag=answer_tag, convention=convention)
        else:
            report = doctor_predictions(predictions, dataset=dataset, annotations=annotations, split=split,
                                        frame=run_frame, answer_tag=answer_tag, convention=convention)
    except (FileNotFoundError, ValueError) as error:  # DataError is a ValueError: file, line, field, value
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_doctor(report)
