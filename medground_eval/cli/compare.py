"""`medground-eval compare`: two prediction files scored on the same samples, side by side."""

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
from medground_eval.cli.progress import progress
from medground_eval.cli.score import ALLOW_PARTIAL_HELP, ANSWER_TAG_HELP, _thresholds, score_with_progress
from medground_eval.outputs import atomic_write_text


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    predictions_a: Annotated[Path, typer.Argument(help="Run A: predictions JSON lines (id and completion or pred_boxes).")],
    predictions_b: Annotated[Path, typer.Argument(help="Run B: predictions JSON lines, same samples.")],
    dataset: Annotated[str, typer.Option(help="Ground truth: jsonl, mscxr, chestxray8, m3d-refseg or hf (a datasets folder).")],
    annotations: Annotated[Path | None, typer.Option(
        "--annotations", "--data-dir",
        help="The data set's file or folder (jsonl: omit to read the ground truth from each prediction file).")] = None,
    split: Annotated[str | None, typer.Option(help="Compare on this split only.")] = None,
    frame: Annotated[str, typer.Option(help="Frame of both runs' boxes; a line's 'frame' overrides it.")] = "pixel",
    compat: Annotated[str | None, typer.Option(help="Score both as a published script does: vlm-r1.")] = None,
    answer_tag: Annotated[str, typer.Option(help=ANSWER_TAG_HELP)] = "required",
    on_error: Annotated[str, typer.Option(help="raise: stop at the first bad line; skip: leave it out and count it.")]
    = "raise",
    thresholds: Annotated[str, typer.Option(help="Comma-separated IoU thresholds for Acc@IoU.")] = "0.1,0.3,0.5,0.7,0.9",
    inclusive: Annotated[bool, typer.Option("--inclusive/--strict", help="Hit when IoU >= t (inclusive) or > t.")]
    = True,
    mcnemar_threshold: Annotated[float, typer.Option(help="IoU threshold of the McNemar test.")] = 0.5,
    top: Annotated[int, typer.Option(help="How many most-disagreeing samples to list.")] = 20,
    bootstrap: Annotated[int, typer.Option(help="Paired bootstrap resamples for the intervals (at least 1).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstraps.")] = 0,
    output: Annotated[Path | None, typer.Option(help="Write the comparison JSON here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the comparison as Markdown tables here.")] = None,
    model: ModelOption = None,
    processor: ProcessorOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
    allow_partial: Annotated[bool, typer.Option(help=ALLOW_PARTIAL_HELP)] = False,
) -> None:
    """Compare run B with run A: B - A with paired bootstrap intervals, McNemar on Acc@0.5, largest IoU gaps.

    Each run gets the frame diagnosis of `score` (a warning when another frame fits it clearly better)."""
    from rich.console import Console
    from rich.table import Table

    from medground_eval.evaluation.compare import compare_runs, comparison_markdown
    from medground_eval.evaluation.diagnosis import JoinError, check_join
    from medground_eval.evaluation.report import read_samples
    from medground_eval.evaluation.scorer import join_notes

    run_frame = cli_frame(frame, model, processor, min_pixels, max_pixels)
    options = dict(annotations=annotations, split=split, frame=run_frame, compat=compat,
                   on_error=on_error, thresholds=_thresholds(thresholds), inclusive=inclusive,
                   n_bootstrap=bootstrap, seed=seed, answer_tag=answer_tag)
    try:
        result_a = score_with_progress(predictions_a, dataset, **options)
        result_b = score_with_progress(predictions_b, dataset, **options)
        for path, result in ((predictions_a, result_a), (predictions_b, result_b)):
            try:
                check_join(result, allow_partial)
            except JoinError as error:
                typer.echo(f"error: {path}: {error}", err=True)
                raise typer.Exit(2) from None
        with progress("compare: paired bootstrap and largest gaps"):
            comparison = compare_runs(result_a.per_sample, result_b.per_sample,
                                      thresholds=result_a.report.thresholds, inclusive=result_a.report.inclusive,
                                      mcnemar_threshold=mcnemar_threshold, top=top, n_bootstrap=bootstrap, seed=seed)
            samples = read_samples(predictions_a, [d.id for d in comparison.disagreements], dataset=dataset,
                                   annotations=annotations, split=split)
    except (FileNotFoundError, ValueError) as error:  # DataError is a ValueError: file, line, field, value
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    comparison = comparison.with_phrases({i: s.phrase for i, s in samples.items()})

    runs = (("A", predictions_a, result_a), ("B", predictions_b, result_b))
    notes = [f"{label} ({path.name}): {note}" for label, path, result in runs for note in join_notes(result.config)]
    notes += [f"{label} ({path.name}): warning: {f['title']}. {f['advice']}"
              for label, path, result in runs for f in result.config["diagnosis"]["findings"]]
    console = Console()
    level = f"{comparison.confidence:.0%}"
    table = Table(title=f"B - A on {comparison.n} samples (A = {predictions_a.name}, B = {predictions_b.name})")
    for name in ("metric", "A", "B", "B - A", f"{level} interval"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for d in comparison.differences:
        table.add_row(d.metric, f"{d.a:.4f}", f"{d.b:.4f}", f"{d.diff:+.4f}", f"[{d.lo:+.4f}, {d.hi:+.4f}]")
    console.print(table)
    m = comparison.mcnemar
    console.print(f"McNemar at IoU {m.threshold:g}: A alone hits {m.a_only}, B alone hits {m.b_only} "
                  f"(both {m.both}, neither {m.neither}); statistic {m.statistic:.4g}, p = {m.p_value:.4g}")
    if comparison.disagreements:
        gaps = Table(title="Largest |IoU A - IoU B|")
        for name in ("id", "phrase", "IoU A", "IoU B"):
            gaps.add_column(name, justify="right" if name.startswith("IoU") else "left")
        for d in comparison.disagreements:
            gaps.add_row(d.id, d.phrase or "", f"{d.iou_a:.4f}", f"{d.iou_b:.4f}")
        console.print(gaps)
    for note in notes:
        console.print(note, style="yellow", markup=False)
    if output is not None:
        from medground_eval.provenance import provenance

        record = provenance({"a": predictions_a, "b": predictions_b, "annotations": annotations},
                            frame=result_a.config["frame"], ctx=ctx)
        document = {"a": str(predictions_a), "b": str(predictions_b), **comparison.to_dict(),
                    "metrics_a": result_a.to_dict(), "metrics_b": result_b.to_dict(), "provenance": record}
        atomic_write_text(output, json.dumps(document, indent=2) + "\n")
    if markdown is not None:
        text = comparison_markdown(comparison, name_a=predictions_a.name, name_b=predictions_b.name)
        atomic_write_text(markdown, text + "".join(f"\n{note}\n" for note in notes))
