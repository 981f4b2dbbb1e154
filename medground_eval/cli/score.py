"""`medground-eval score`: grounding metrics of a predictions file against a data set's ground truth."""

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
from medground_eval.evaluation.compat import RENAMED_NOTICE

ALLOW_PARTIAL_HELP = ("Score even when fewer than half of the predictions (or of the ground-truth samples) match an "
                      "id; unmatched samples count as misses. Without it such a run stops with exit 2.")
ANSWER_TAG_HELP = ("required: a completion without <answer> is a parse failure; optional: read its boxes from the "
                   "text after </think> (or the whole text), for zero-shot baselines. Not with --compat.")

CONVENTION_HELP = ("Side convention of the anatomy metrics: radiological (the patient's left on the image's right, PA "
                   "and AP radiographs) or neurological; a sample's laterality_convention, axcodes or view wins.")


def _thresholds(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected comma-separated IoU thresholds, e.g. 0.3,0.5,0.7") from None


def print_report(result: object, title: str) -> None:
    """A rich table of a :class:`~medground_eval.evaluation.scorer.ScoreResult`'s metrics, then the run's configuration."""
    from rich.console import Console
    from rich.table import Table

    from medground_eval.evaluation.scorer import join_notes

    report, config = result.report, result.config
    table = Table(title=title)
    for name in ("metric", "value", "95% CI"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for name, value, interval in report.rows():
        shown = "-" if value is None else (str(value) if isinstance(value, int) else f"{value:.4f}")
        table.add_row(name, shown, "" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]")
    console = Console()
    console.print(table)
    if report.per_category:
        console.print(category_table(report))
    rule = "IoU >= t" if config["inclusive"] else "IoU > t (strict)"
    view = "" if config["view"] in (None, "volume") else f", view {config['view']}"
    tag = "" if config["answer_tag"] in (None, "required") else f", answer tag {config['answer_tag']}"
    console.print(f"dataset {config['dataset']}{view}, {frame_text(config)}, hit rule {rule}, "
                  f"compat {config['compat'] or 'none'}{tag}", markup=False)
    console.print(f"parse rules: {config['parse_rules']}", style="dim", markup=False)
    for note in join_notes(config):
        console.print(note, style="yellow", markup=False)
    for finding in config.get("diagnosis", {}).get("findings", []):
        console.print(f"warning: {finding['title']}. {finding['advice']}", style="bold yellow", markup=False)
    for line in anatomy_lines(getattr(result, "anatomy", None)):
        console.print(line, markup=False)


def frame_text(config: dict) -> str:
    """The frames really applied: ``frame X`` when every matched line used the run's frame, else each frame with
    its line count and where it came from (a line's own ``frame`` field or the run's)."""
    from medground_eval.frames import get_frame

    used = config.get("frames_used") or {}
    if config["compat"] is not None:
        return f"frame {config['frame']}"
    run = get_frame(config["frame"]).spec
    if not used or list(used) == [run]:
        return f"frame {config['frame']}"
    parts = [f"{spec} on {count} lines ({'the run frame' if spec == run else 'the lines own frame field'})"
             for spec, count in used.items()]
    return "frames " + ", ".join(parts) + ("" if run in used else f" (run frame {config['frame']} applied to none)")


def anatomy_lines(anatomy: object) -> list[str]:
    """The laterality and zone metrics as console lines (none when no phrase names a side or zone)."""
    if anatomy is None or not (anatomy.n_sided or anatomy.n_zoned or anatomy.n_no_size):
        return []

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [f"anatomy: laterality accuracy {shown(anatomy.laterality_accuracy)} (n {anatomy.n_sided}), wrong-side "
             f"rate {shown(anatomy.wrong_side_rate)} (n {anatomy.n_one_sided}, {anatomy.mirrored} mirroring the "
             f"truth), zone agreement {shown(anatomy.zone_agreement)} (n {anatomy.n_zoned}); true regions on the "
             f"named side {shown(anatomy.truth_laterality_accuracy)}"]
    if anatomy.n_no_size:
        lines.append(f"anatomy: {anatomy.n_no_size} samples name a side or zone but have no image size (left out)")
    return lines


def category_table(report: object) -> object:
    """A rich table of the per-category metrics: n, Acc at the headline threshold (0.5), mIoU, cIoU, pointing."""
    from rich.table import Table

    from medground_eval.evaluation.report.data import headline_threshold

    key = headline_threshold(report)
    table = Table(title="Per category")
    for name in ("category", "n", f"acc@{key}", "miou", "ciou", "pointing"):
        table.add_column(name, justify="left" if name == "category" else "right")
    for name, stats in report.per_category.items():
        cells = [stats["acc"][key], stats["miou"], stats["ciou"], stats["pointing"]]
        table.add_row(name, str(stats["n"]), *("-" if v is None else f"{v:.4f}" for v in cells))
    return table


def score_with_progress(predictions: Path, dataset: str, **options: object) -> object:
    """:func:`~medground_eval.evaluation.scorer.score_files` under a progress line shown from the start: "loading
    ground truth" (a bar of a jsonl annotations file's bytes, a spinner for a loader), then "scoring" with a bar of
    the predictions file's bytes (:func:`~medground_eval.evaluation.scorer.progress_total` is the whole)."""
    from medground_eval.cli.progress import progress
    from medground_eval.evaluation.scorer import progress_total, score_files

    annotations = options.get("annotations")
    total = progress_total(predictions, dataset=dataset, annotations=annotations) if predictions.is_file() else None
    with progress(f"{predictions.name}: loading ground truth ({dataset})", total=total) as stage:

        def advance(n: int) -> None:
            if n == 0:  # the scorer's mark: the ground truth is loaded, the predictions are read next
                stage.describe(f"{predictions.name}: scoring")
            stage.advance(n)

        return score_files(predictions, dataset=dataset, progress=advance, **options)


def write_json(path: Path, document: dict) -> None:
    """Write a JSON document atomically (``-``: standard output)."""
    from medground_eval.outputs import atomic_write_text

    atomic_write_text(path, json.dumps(document, indent=2) + "\n")


@app.command("score")
def score_command(
    ctx: typer.Context,
    predictions: Annotated[Path, typer.Argument(help="JSON lines with id and completion (or pred_boxes).")],
    dataset: Annotated[str, typer.Option(help="Ground truth: jsonl, mscxr, chestxray8, m3d-refseg or hf (a datasets folder).")],
    annotations: Annotated[Path | None, typer.Option(
        "--annotations", "--data-dir",
        help="The data set's file or folder (jsonl: omit to read the ground truth from the prediction lines).")] = None,
    split: Annotated[str | None, typer.Option(help="Score this split only.")] = None,
    frame: Annotated[str, typer.Option(help="Frame the boxes are written in (pixel, norm1000, qwen2.5-vl, ...); "
                                            "a line's 'frame' overrides it.")] = "pixel",
    view: Annotated[str, typer.Option(help="m3d-refseg target: volume (3D boxes), slice (the 2D box on the slice "
                                           "with the most region voxels) or projection (the box projected along "
                                           "z).")] = "volume",
    compat: Annotated[str | None, typer.Option(help="Score as a published script does: vlm-r1 (today's VLM-R1), "
                                                    "medground-r1, lmms-eval (docs/metrics.md).")] = None,
    answer_tag: Annotated[str, typer.Option(help=ANSWER_TAG_HELP)] = "required",
    convention: Annotated[str, typer.Option(help=CONVENTION_HELP)] = "radiological",
    output: Annotated[Path | None, typer.Option(help="Write the metrics JSON (with provenance) here; - for standard "
                                                     "output.")] = None,
    per_sample: Annotated[Path | None, typer.Option(
        help="Write one row per sample here: phrase, category, image, IoU, hits, predicted and true boxes in "
             "original pixels, labels, problems, completion (.jsonl: full completion; .csv: truncated).")] = None,
    on_error: Annotated[str, typer.Option(help="raise: stop at the first bad line; skip: leave it out and count it.")]
    = "raise",
    thresholds: Annotated[str, typer.Option(help="Comma-separated IoU thresholds for Acc@IoU.")]
    = "0.1,0.3,0.5,0.7,0.9",
    inclusive: Annotated[bool, typer.Option("--inclusive/--strict", help="Hit when IoU >= t (inclusive) or > t.")]
    = True,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    report: Annotated[Path | None, typer.Option(help="Write a Markdown + HTML report with plots into this folder.")]
    = None,
    image_root: Annotated[Path | None, typer.Option(
        help="Folder the data set's image paths are relative to: adds box overlays to --report.")] = None,
    model: ModelOption = None,
    processor: ProcessorOption = None,
    min_pixels: MinPixelsOption = None,
    max_pixels: MaxPixelsOption = None,
    allow_partial: Annotated[bool, typer.Option(help=ALLOW_PARTIAL_HELP)] = False,
) -> None:
    """Score predictions: Acc@IoU, mIoU, cIoU, pointing, parse failures, with bootstrap intervals.

    After scoring, the frame diagnosis re-scores the same boxes under the other plausible frames and warns when one
    fits clearly better (docs/frames.md); it never changes the score.
    """
    from medground_eval.evaluation.diagnosis import JoinError, check_join
    from medground_eval.provenance import provenance

    if image_root is not None and report is None:
        typer.echo("error: --image-root is used by --report (it adds box overlays to the report); give --report DIR "
                   "or drop --image-root", err=True)
        raise typer.Exit(1)
    if image_root is not None and dataset == "m3d-refseg":
        typer.echo("error: --image-root draws 2D overlays; m3d-refseg images are CT volumes, so drop --image-root "
                   "(the report's plots and tables work without it)", err=True)
        raise typer.Exit(1)
    run_frame = cli_frame(frame, model, processor, min_pixels, max_pixels)
    if compat in RENAMED_NOTICE:
        typer.echo(RENAMED_NOTICE[compat], err=True)
    options = dict(annotations=annotations, split=split, frame=run_frame, compat=compat,
                   on_error=on_error, thresholds=_thresholds(thresholds), inclusive=inclusive,
                   n_bootstrap=bootstrap, seed=seed, view=view, answer_tag=answer_tag, convention=convention)
    try:
        result = score_with_progress(predictions, dataset, **options)
        check_join(result, allow_partial)
    except JoinError as error:
        typer.echo(f"error: {predictions}: {error}", err=True)
        raise typer.Exit(2) from None
    except (FileNotFoundError, ValueError) as error:  # DataError is a ValueError: file, line, field, value
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    record = provenance({"predictions": predictions, "annotations": annotations}, frame=result.config["frame"],
                        ctx=ctx)
    if str(output) != "-":
        print_report(result, f"{predictions.name} vs {dataset}")
    if output is not None:
        write_json(output, {**result.to_dict(), "provenance": record})
    if per_sample is not None or report is not None:
        from medground_eval.cli.progress import progress

        with progress("writing per-sample export and report"):
            if per_sample is not None:
                from medground_eval.evaluation.export import write_per_sample

                write_per_sample(result, per_sample, predictions, dataset=dataset, annotations=annotations,
                                 split=split)
            if report is not None:
                from medground_eval.evaluation.report import score_report

                files = score_report(result, report, predictions, dataset=dataset, annotations=annotations,
                                     split=split, frame=run_frame, image_root=image_root,
                                     title=f"{predictions.name} vs {dataset}", provenance=record)
        if report is not None:
            typer.echo(f"report: {files.markdown} and {files.html}", err=str(output) == "-")
