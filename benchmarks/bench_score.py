"""`medground-eval score` on 1,000,000 predictions: wall time < 20 s and peak RSS < 2 GB.

Run: ``python benchmarks/bench_score.py [N]``. Writes N synthetic jsonl ground-truth lines and N predictions
(Chain-of-Box completions of 300-600 characters in the Qwen2.5-VL JSON dialect, in the model's resized frame;
5% in other dialects or broken, so the parser's slow path is exercised), then runs
``python -m medground_eval score`` in a subprocess and measures its wall time and peak RSS
(``resource.getrusage(RUSAGE_CHILDREN)``), once with ``--bootstrap 0`` and once with the default 1000 bootstrap
resamples (whose cost grows with N and is metrics.py's). As a reference measured in the same run it times the floor
of any scorer, ``json.loads`` of every line of both files in one process, and prints the ratio. Prints PASS/FAIL per
target and exits non-zero on a failure (the time target is scaled by N / 1,000,000).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from medground_eval.frames import get_frame
from medground_eval.parsing import format_box

TARGET_S = 20.0
TARGET_RSS_GB = 2.0
SIZES = np.array([[1024, 1024], [2544, 3056], [3056, 2544], [2048, 2500], [512, 512]])
PHRASES = ["left lower lobe opacity", "right pleural effusion", "cardiomegaly", "left apical pneumothorax",
           "right upper lobe nodule"]
REASONING = [
    "The {p} is the finding to locate. I scan the lung fields and compare both sides; the density near {b} "
    "looks abnormal, so I start there.",
    " Its upper edge is sharp while the lower margin fades into the diaphragm, so I extend the region downward "
    "and widen it to include the whole opacity.",
    " The heart border and the costophrenic angle are checked to be sure the box does not include normal "
    "structures; the final region follows the visible margin.",
]


def write_files(folder: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    sizes = SIZES[rng.integers(0, len(SIZES), n)]
    corner = rng.uniform(0, 0.6, (n, 2)) * sizes
    extent = rng.uniform(0.05, 0.35, (n, 2)) * sizes
    truth = np.round(np.concatenate([corner, corner + extent], axis=1)).astype(int)
    jitter = rng.normal(0, 0.04, (n, 4)) * np.concatenate([extent, extent], axis=1)
    resized = get_frame("qwen2.5-vl").from_pixels(truth + jitter, sizes)
    pred = np.round(np.clip(resized, 0, None)).astype(int)
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2])
    kind = rng.random(n)
    n_sentences = rng.integers(1, 4, n)
    gt_path, pred_path = folder / "truth.jsonl", folder / "preds.jsonl"
    with gt_path.open("w") as gt, pred_path.open("w") as out:
        for i in range(n):
            phrase = PHRASES[i % len(PHRASES)]
            box = pred[i].tolist()
            gt.write(json.dumps({"id": f"s{i}", "phrase": phrase, "boxes": [truth[i].tolist()],
                                 "image_size": sizes[i].tolist(), "category": phrase.split()[-1]}) + "\n")
            think = "".join(REASONING[:n_sentences[i]]).format(p=phrase, b=[box[0], box[1], box[0] + 40, box[1] + 30])
            if kind[i] < 0.95:
                answer = f"```json\n[\n\t{format_box(box, phrase)}\n]\n```"
            elif kind[i] < 0.98:
                answer = format_box(box, phrase, "ref-box")
            else:
                answer = "I cannot find it"
            out.write(json.dumps({"id": f"s{i}", "completion": f"<think>{think}</think>\n<answer>{answer}</answer>"})
                      + "\n")
    return gt_path, pred_path


def reference_seconds(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        with path.open() as handle:
            for text in handle:
                json.loads(text)
    return time.perf_counter() - start


def run_score(command: list[str]) -> tuple[float, float, dict | None, str]:
    """Wall seconds, peak RSS (GB) of the child, the metrics JSON (None on failure) and its stderr."""
    output = Path(command[command.index("--output") + 1])
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rss_gb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024 / 1e9
    metrics = json.loads(output.read_text()) if run.returncode == 0 else None
    return wall, rss_gb, metrics, run.stderr


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    scale = n / 1_000_000
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gt_path, pred_path = write_files(folder, n)
        print(f"{n} predictions, {pred_path.stat().st_size / n:.0f} bytes per line on average")
        reference = reference_seconds([gt_path, pred_path])
        print(f"reference (json.loads of both files, one process): {reference:.2f} s")
        base = [sys.executable, "-m", "medground_eval", "score", str(pred_path), "--dataset", "jsonl",
                "--annotations", str(gt_path), "--frame", "qwen2.5-vl", "--output", str(folder / "metrics.json")]
        # The peak RSS of children is a running maximum: the smaller run goes first.
        for label, extra in (("score --bootstrap 0", ["--bootstrap", "0"]), ("score (default: --bootstrap 1000)", [])):
            wall, rss_gb, metrics, stderr = run_score(base + extra)
            if metrics is None:
                print(stderr)
                print(f"FAIL {label} exited with an error")
                return 1
            print(f"{label}: {wall:.2f} s ({wall / reference:.1f}x the reference), peak RSS {rss_gb:.2f} GB, "
                  f"acc@0.5 {metrics['acc']['0.5']:.3f}, parse failures {metrics['parse_failure_rate']:.3f}")
            for name, value, target, unit in (("wall time", wall, TARGET_S * scale, "s"),
                                              ("peak RSS", rss_gb, TARGET_RSS_GB, "GB")):
                passed = value < target
                ok &= passed
                print(f"{'PASS' if passed else 'FAIL'} {label} {name} {value:.2f} {unit} < {target:.2f} {unit}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
