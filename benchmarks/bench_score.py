"""`medground-eval score` on 1,000,000 realistic predictions against a minimal numpy scorer, in the same run.

Run: ``python benchmarks/bench_score.py [N]``. Writes N jsonl ground-truth lines and N predictions of the realistic
workload (:mod:`workload`: Qwen2.5-VL completions in its resized frame, 8% near-canonical or broken, 3% with two
boxes, chest X-ray sizes), then runs, each in its own subprocess (wall time and peak RSS from ``os.wait4``):

- the reference, ``benchmarks/reference_scorer.py``: join, first box of the answer, IoU, Acc@0.5 and mIoU, nothing
  validated, one dialect, no bootstrap;
- ``python -m medground_eval score --frame qwen2.5-vl`` with the default 1000 bootstrap resamples, and with
  ``--bootstrap 0``.

Targets (issue 16): the default ``score`` at least as fast as the reference (ratio >= 1.0) with a peak RSS at most
1.5x the reference's. Prints PASS/FAIL per target and exits non-zero on a failure. The machine is shared: run it
several times and read the medians.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import make_workload  # noqa: E402

TARGET_RATIO = 1.0
TARGET_RSS_RATIO = 1.5


def run(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and standard output of a subprocess (exits on a failure)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    out, err = process.communicate()
    wall = time.perf_counter() - start
    rss_mb = _rss()
    if process.returncode != 0:
        print(err)
        sys.exit(f"FAIL {' '.join(command[:4])} exited with {process.returncode}")
    return wall, rss_mb, out


def _rss() -> float:
    """The peak RSS (MB) of the largest child so far (``RUSAGE_CHILDREN`` is a running maximum)."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truth, preds = make_workload(n, "qwen2.5-vl").write_jsonl(folder)
        print(f"{n} predictions, {preds.stat().st_size / n:.0f} bytes per line on average")
        base = [sys.executable, "-m", "medground_eval", "score", str(preds), "--dataset", "jsonl", "--annotations",
                str(truth), "--frame", "qwen2.5-vl", "--output", str(folder / "metrics.json")]
        # RUSAGE_CHILDREN's peak is a running maximum over children: the smallest run goes first.
        ref_wall, ref_rss, ref_out = run([sys.executable, str(Path(__file__).parent / "reference_scorer.py"),
                                          str(truth), str(preds)])
        reference = json.loads(ref_out)
        print(f"reference (minimal numpy scorer): {ref_wall:.2f} s, peak RSS {ref_rss:.0f} MB, "
              f"acc@0.5 {reference['acc@0.5']:.3f}, mIoU {reference['miou']:.3f}")
        ok = True
        for label, extra in (("score --bootstrap 0", ["--bootstrap", "0"]), ("score (default bootstrap)", [])):
            wall, rss, _ = run(base + extra)
            metrics = json.loads((folder / "metrics.json").read_text())
            print(f"{label}: {wall:.2f} s, peak RSS {rss:.0f} MB (running max), acc@0.5 {metrics['acc']['0.5']:.3f}, "
                  f"mIoU {metrics['miou']:.3f}, parse failures {metrics['parse_failure_rate']:.3f}")
            if extra:
                continue
            ratio, rss_ratio = ref_wall / wall, rss / ref_rss
            for name, value, passed in (("speed vs reference", ratio, ratio >= TARGET_RATIO),
                                        ("peak RSS vs reference", rss_ratio, rss_ratio <= TARGET_RSS_RATIO)):
                ok &= passed
                target = f">= {TARGET_RATIO}" if name.startswith("speed") else f"<= {TARGET_RSS_RATIO}"
                print(f"{'PASS' if passed else 'FAIL'} {label} {name}: {value:.2f}x (target {target})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
