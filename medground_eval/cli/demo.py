"""`medground-eval demo`: score simulated models on a synthetic grounding set, to see what the tool does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medground_eval.cli import app

EXPLANATION = (
    "medground-eval demo: {n} synthetic chest X-ray phrases with true boxes (images up to 4280 x 3520) and the "
    "simulated answers of three models. A model writes boxes in its own coordinate frame: Qwen2.5-VL in pixels of "
    "its resized input image, Qwen2-VL on a 0-1000 grid. The scorer parses each completion (<think> / <answer>, "
    "JSON, lists, <ref><box>), converts the boxes to original pixels in the frame you name, and reports Acc@0.5 "
    "(IoU >= 0.5), mean IoU, parse failures and out-of-frame answers.\n\n"
    "Frames matter: the row qwen2-vl@pixel scores the same Qwen2-VL answers as if they were pixels. The "
    "paper column applies the MedGround-R1 evaluation script (--compat medground-r1: one integer box inside "
    "{{...}} in a closed <answer>, raw coordinates with no frame conversion, hit when IoU > 0.5): it fails the sloppy model's "
    "unclosed, float and bare-list answers, and every model that does not answer in original pixels.\n"
)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@app.command("demo")
def demo_command(
    output_dir: Annotated[Path | None, typer.Option(help="Also write the ground truth and predictions as JSONL here.")]
    = None,
    n: Annotated[int, typer.Option(help="Number of synthetic samples.", min=1)] = 120,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
) -> None:
    """Score simulated models on synthetic data: no download, a few seconds."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from medground_eval.demo import run_demo, write_demo_files

    dataset, rows = run_demo(n, seed)
    console = Console()
    console.print(EXPLANATION.format(n=n), markup=False)
    table = Table(title="Simulated models", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("model", "frame", "Acc\n@0.5", "mIoU", "parse\nfailures", "out of\nframe", "paper\nAcc@0.5"):
        table.add_column(name, justify="left" if name in ("model", "frame") else "right", no_wrap=True)
    for row in rows:
        report = row.result.report
        table.add_row(row.run.name, row.run.frame, _percent(report.acc["0.5"]), f"{report.miou:.3f}",
                      _percent(report.parse_failure_rate), _percent(report.out_of_frame_rate),
                      _percent(row.compat.report.acc["0.5"]))
    console.print(table)
    console.print("Descriptions: " + "; ".join(f"{row.run.name}: {row.run.description}" for row in rows), style="dim")
    if output_dir is not None:
        commands = write_demo_files(output_dir, dataset, rows)
        console.print(f"\nWrote the data to {output_dir}. Score a run yourself:")
        for command in commands:
            console.print(f"  {command}", soft_wrap=True)
