"""The report's pictures: Acc-vs-threshold curve, IoU histogram, per-category bars and box overlays (PNG).

matplotlib (Agg backend, no display needed) and Pillow are imported inside the functions that draw, so importing
this module needs neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medground_eval.evaluation.report.data import SampleView, accuracy_curve, headline_threshold
from medground_eval.extras import requires
from medground_eval.metrics import GroundingReport, SampleScores

FIGURE_SIZE = (6.4, 4.0)
"""Plot size in inches; at :data:`DPI` a plot PNG is 640 x 400 pixels (the category plot grows with categories)."""
DPI = 100
MAX_OVERLAY_SIDE = 768
"""Overlays are downscaled (never upscaled) so that their longer side is at most this many pixels."""
CURVE_POINTS = 101
"""IoU thresholds on the Acc-vs-threshold curve, evenly spaced from the report's first threshold to 1."""
HISTOGRAM_BINS = 20

TRUE_COLOR = (0, 200, 0)
PRED_COLOR = (230, 30, 30)
THINK_COLOR = (255, 160, 0)


def _figure(height: float = FIGURE_SIZE[1]):  # noqa: ANN202  (a matplotlib Figure; matplotlib is imported here)
    with requires("report", "the report's plots (score --report)"):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

    return Figure(figsize=(FIGURE_SIZE[0], height), dpi=DPI, layout="constrained")


def curve_points(report: GroundingReport, per_sample: SampleScores) -> tuple[np.ndarray, np.ndarray]:
    """The curve's thresholds (:data:`CURVE_POINTS` from the report's first threshold to 1: at t = 0 every sample,
    parse failures included, has IoU >= t, so a curve from 0 jumps to 1) and Acc at each."""
    grid = np.linspace(min(report.thresholds), 1.0, CURVE_POINTS)
    return grid, accuracy_curve(per_sample.iou, grid, report.inclusive)


def plot_accuracy_curve(report: GroundingReport, per_sample: SampleScores, path: Path) -> Path:
    """Acc as a function of the IoU threshold from the report's first threshold to 1 (at t = 0 every sample would
    count, parse failures included), the report's thresholds marked with their values and intervals."""
    grid, values = curve_points(report, per_sample)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(grid, values, color="tab:blue")
    for key, value in report.acc.items():
        if value is None:
            continue
        t = float(key)
        interval = report.ci.get(f"acc@{key}")
        if interval is not None:
            ax.errorbar(t, value, yerr=[[value - interval[0]], [interval[1] - value]], color="tab:red", capsize=3)
        ax.plot(t, value, "o", color="tab:red")
        ax.annotate(f"{value:.3f}", (t, value), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if report.miou is not None:
        ax.axvline(report.miou, color="grey", linestyle="--", linewidth=1, label=f"mIoU = {report.miou:.3f}")
        ax.legend(loc="upper right")
    rule = ">=" if report.inclusive else ">"
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="IoU threshold t", ylabel=f"Acc (fraction with IoU {rule} t)",
           title=f"Accuracy vs IoU threshold (n = {report.n})")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def plot_iou_histogram(per_sample: SampleScores, path: Path) -> Path:
    """Histogram of per-sample IoU over [0, 1], parse failures (IoU 0) stacked in their own colour."""
    fig = _figure()
    ax = fig.add_subplot()
    failed = per_sample.parse_failed
    ax.hist([per_sample.iou[~failed], per_sample.iou[failed]], bins=HISTOGRAM_BINS, range=(0, 1), stacked=True,
            color=["tab:blue", "tab:grey"], label=["answer parsed", "parse failure"])
    ax.set(xlim=(0, 1), xlabel="IoU", ylabel="samples", title=f"IoU distribution (n = {len(per_sample)})")
    ax.legend(loc="upper center")
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path)
    return path


def plot_categories(report: GroundingReport, path: Path) -> Path:
    """Horizontal bars of Acc@0.5 (see :func:`headline_threshold`) and mIoU per category, n in each label; the
    legend sits below the axes, outside the bars (:func:`category_figure`)."""
    category_figure(report).savefig(path)
    return path


def category_figure(report: GroundingReport):  # noqa: ANN201  (a matplotlib Figure)
    """The figure of :func:`plot_categories`: ``FIGURE_SIZE[0]`` wide and ``1.2 + 0.4 * categories`` inches high (at
    least ``FIGURE_SIZE[1]``)."""
    names = list(report.per_category)
    key = headline_threshold(report)
    fig = _figure(category_plot_height(len(names)))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    stats = [report.per_category[name] for name in names]
    ax.barh(y - 0.2, [s["acc"][key] for s in stats], height=0.4, color="tab:blue", label=f"Acc@{key}")
    ax.barh(y + 0.2, [s["miou"] for s in stats], height=0.4, color="tab:orange", label="mIoU")
    ax.set_yticks(y, [f"{name} (n={s['n']})" for name, s in zip(names, stats)])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="value", title="Per category")
    fig.legend(loc="outside lower center", ncols=2)  # below the axes: never over a bar
    ax.grid(alpha=0.3, axis="x")
    return fig


def category_plot_height(n_categories: int) -> float:
    """Height in inches of the category plot (see :func:`plot_categories`)."""
    return max(FIGURE_SIZE[1], 1.2 + 0.4 * n_categories)


def stored_scale(view: SampleView, stored_size: tuple[int, int]) -> tuple[float, float] | None:
    """``(sx, sy)`` from the annotated image size of ``view`` to a file stored at ``stored_size`` ``(w, h)`` (a 512-px
    copy of a 2048-px image: 0.25 each), or None when the sizes agree or the annotated size is unknown."""
    if view.image_size is None or tuple(view.image_size[:2]) == tuple(stored_size):
        return None
    return stored_size[0] / view.image_size[0], stored_size[1] / view.image_size[1]


def draw_overlay(image_path: Path, view: SampleView, path: Path, caption: str | None = None) -> Path:
    """The image with true (green), predicted (red) and reasoning (orange, numbered) boxes, saved as PNG.

    Boxes are in the annotated image's pixels; on a file stored at another size they are scaled to it per axis
    (:func:`stored_scale`). Outlines are drawn inside each box's edges; the true box's outline is twice as wide as
    the predicted one's. The image is converted to RGB (16-bit and float images are scaled min-max to 0-255) and
    downscaled so its longer side is at most :data:`MAX_OVERLAY_SIDE`; boxes are scaled with it. Raises
    ``ValueError`` for 3D boxes.

    With ``caption``, a white strip under the image carries it (the id, phrase and IoU, so a PNG shared on its own
    still says what it shows), wrapped to the image's width; the image itself keeps its pixels.
    """
    from PIL import Image, ImageDraw

    if view.true_boxes.shape[1] != 4:
        raise ValueError(f"sample {view.id!r}: overlays are 2D only, got boxes with {view.true_boxes.shape[1]} numbers")
    with Image.open(image_path) as opened:
        image = _to_rgb(opened)
    sx, sy = stored_scale(view, image.size) or (1.0, 1.0)
    shrink = min(1.0, MAX_OVERLAY_SIDE / max(image.size))
    if shrink < 1.0:
        image = image.resize((max(1, round(image.width * shrink)), max(1, round(image.height * shrink))))
    scale = np.array([sx, sy, sx, sy]) * shrink
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 256))
    for step, box in enumerate(view.think_boxes * scale, start=1):
        draw.rectangle(box.tolist(), outline=THINK_COLOR, width=max(1, width - 1))
        above = box[1] - 12 >= 0  # the step number sits above the box's corner, or inside when there is no room
        draw.text((box[0], box[1] - 12 if above else box[1] + width), str(step), fill=THINK_COLOR)
    for box in view.true_boxes * scale:  # twice as wide as the prediction: both stay visible when they coincide
        draw.rectangle(box.tolist(), outline=TRUE_COLOR, width=2 * width)
    for box in view.pred_boxes * scale:
        draw.rectangle(box.tolist(), outline=PRED_COLOR, width=width)
    if caption:
        image = _with_caption(image, caption)
    image.save(path, format="PNG")
    return path


CAPTION_LINE_HEIGHT = 14
"""Pixels per caption line (Pillow's default bitmap font is 11 pixels high)."""


def _with_caption(image, caption: str):  # noqa: ANN001, ANN202  (PIL images)
    """``image`` above a white strip holding ``caption`` in black, wrapped at about 6 pixels a character."""
    import textwrap

    from PIL import Image, ImageDraw

    lines = textwrap.wrap(caption, width=max(10, image.width // 6)) or [""]
    strip = CAPTION_LINE_HEIGHT * len(lines) + 6
    out = Image.new("RGB", (image.width, image.height + strip), (255, 255, 255))
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    for k, line in enumerate(lines):
        draw.text((4, image.height + 3 + k * CAPTION_LINE_HEIGHT), line, fill=(0, 0, 0))
    return out


def _to_rgb(image):  # noqa: ANN001, ANN202  (PIL images; PIL is imported by the caller)
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        lo, hi = float(pixels.min()), float(pixels.max())
        scaled = np.zeros_like(pixels) if hi == lo else (pixels - lo) / (hi - lo) * 255.0
        image = Image.fromarray(scaled.astype(np.uint8))
    return image.convert("RGB")
