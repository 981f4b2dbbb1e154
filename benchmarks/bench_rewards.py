"""Format + spatial reward throughput on the realistic workload (:mod:`workload`) against the peers' rewards.

Ours: ``format_reward`` and ``SpatialReward(frame="qwen2.5-vl")`` called as two TRL reward functions (each parses
the batch: nothing is cached between calls), with ``image_size``, as plain strings and as chat messages. References,
measured in the same run (median of 3): the VLM-R1 regex format check + first-box IoU, with and without its
per-completion image open, and lmms-eval's refcoco parse + IoU (see the comments below for the files and commits).
Targets: >= 3x the VLM-R1 reference without image open, >= 10x with it; chat messages within 10% of strings.
Run: ``python benchmarks/bench_rewards.py [n]``. ``realistic_completions`` (the former all-canonical workload) is
kept for bench_combined's cold case.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_scorer import smart_resize  # noqa: E402  (the peers' resize rule, written once for both references)
from workload import make_workload, write_images  # noqa: E402

from medground_eval.rewards import SpatialReward, SpatialSemanticReward, format_reward  # noqa: E402

PEER_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?\{.*\[\d+,\s*\d+,\s*\d+,\s*\d+\].*\}.*?</answer>", re.DOTALL)
PEER_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
PEER_BOX = re.compile(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]")

FINDINGS = ["left apical pneumothorax", "right lower lobe consolidation", "cardiomegaly", "left pleural effusion",
            "right upper lobe nodule", "bibasilar atelectasis"]
REASONING = (
    "The image is a frontal chest radiograph. I first look at the {side} hemithorax {cand}, where the {finding} "
    "would be expected; the lung markings there appear {quality}. Comparing with the contralateral side {other}, "
    "the density differs and the costophrenic angle is {angle}. The mediastinal contours are unremarkable and "
    "there is no evidence of a displaced fracture. The described region therefore corresponds to the {side} area."
)


def realistic_completions(
    n: int, seed: int = 0, labels: list[str] | None = None
) -> tuple[list[str], list[list[float]]]:
    """``n`` Qwen2.5-VL style completions (reasoning with two boxes, a fenced JSON answer) and the true boxes;
    completion i names the finding ``labels[i % len(labels)]`` (default FINDINGS)."""
    labels = labels or FINDINGS
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 700, size=(n, 2))
    wh = rng.uniform(30, 300, size=(n, 2))
    truth = np.hstack([xy, xy + wh]).round()
    noise = rng.normal(0, 25, size=(n, 4))
    pred = np.clip(truth + noise, 0, 1023).round().astype(int)
    pred = np.sort(pred.reshape(n, 2, 2), axis=1).reshape(n, 4)
    completions = []
    for i in range(n):
        x1, y1, x2, y2 = pred[i]
        cand = f"[{x1}, {y1}, {x2}, {y2}]"
        other = f"[{max(0, 1023 - x2)}, {y1}, {max(0, 1023 - x1)}, {y2}]"
        finding = labels[i % len(labels)]
        think = REASONING.format(side=("left", "right")[i % 2], cand=cand, finding=finding,
                                 quality=("coarse", "absent", "dense")[i % 3], other=other,
                                 angle=("blunted", "sharp")[i % 2])
        answer = f'```json\n[\n\t{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "label": "{finding}"}}\n]\n```'
        completions.append(f"<think>{think}</think>\n<answer>{answer}</answer>")
    return completions, truth.tolist()


def peer_iou(a: list[int], b: list[float]) -> float:
    ix1, iy1, ix2, iy2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, ix2 - ix1) * max(0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --- Peer references, written from the peers' documented algorithms (their code is not copied) -------------------
# VLM-R1: om-ai-lab/VLM-R1 src/open-r1-multimodal/src/open_r1/vlm_modules/qwen_module.py (read in the fork
# oguz-kolukisa/VLM-R1 at 00b0f33e): format_reward_rec = re.search of PEER_FORMAT (re.DOTALL) on completion[0]
# ["content"]; iou_reward = first <answer>(.*?)</answer>, first [\d+, \d+, \d+, \d+] in it, their -1/+1 pixel IoU.
# The "image open" variant is what its forks training Qwen2.5-VL on original-pixel solutions do per completion:
# PIL.Image.open(path).size, smart_resize (factor 28, min_pixels 3136, max_pixels 12845056 as grpo_jsonl.py's
# defaults at e0e622f0), and the box scaled back to the original image.
# lmms-eval: EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/refcoco/utils_rec.py at 60e0ba9f: parse_float_sequence_within
# (first [float, float, float, float], [0, 0, 0, 0] when none) and compute_iou (continuous, no zero-union guard).
LMMS_BOX = re.compile(r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]")


def vlm_r1_iou(a: list[int], b: list[float]) -> float:
    ix1, iy1, ix2, iy2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2] - 1, b[2] - 1), min(a[3] - 1, b[3] - 1)
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def vlm_r1_rewards(completions: list, solution: list, images: list[Path] | None = None) -> list[float]:
    """format + first-box IoU per completion, VLM-R1 style; with ``images``, each completion's image is opened to
    scale its box from the resized input back to original pixels."""
    from PIL import Image

    contents = [c if type(c) is str else c[0]["content"] for c in completions]
    out = []
    for i, (content, sol) in enumerate(zip(contents, solution)):
        reward = 1.0 if PEER_FORMAT.search(content) else 0.0
        answer = PEER_ANSWER.search(content)
        box = PEER_BOX.search(answer.group(1).strip()) if answer else None
        if box:
            pred = [int(g) for g in box.groups()]
            if images is not None:
                with Image.open(images[i % len(images)]) as image:
                    width, height = image.size
                resized_h, resized_w = smart_resize(height, width)
                sx, sy = width / resized_w, height / resized_h
                pred = [pred[0] * sx, pred[1] * sy, pred[2] * sx, pred[3] * sy]
            reward += vlm_r1_iou(pred, sol[0])
        out.append(reward)
    return out


def lmms_eval_ious(completions: list, solution: list) -> list[float]:
    """lmms-eval refcoco: the first [f, f, f, f] of the text ([0, 0, 0, 0] when none) and compute_iou."""
    out = []
    for content, sol in zip(completions, solution):
        match = LMMS_BOX.search(content if type(content) is str else content[0]["content"])
        pred = [float(match.group(i)) for i in range(1, 5)] if match else [0, 0, 0, 0]
        out.append(peer_iou(pred, sol[0]))
    return out


def median_time(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    work = make_workload(n, "qwen2.5-vl")
    columns = work.columns
    spatial = SpatialReward(frame=work.frame)
    both = SpatialSemanticReward(weights=(1.0, 1.0, 0.0), anatomy_weight=0.0, frame=work.frame, encoder="lexical")
    with tempfile.TemporaryDirectory() as tmp:
        images = write_images(Path(tmp), work.image_size)
        timings = {
            "ours: format_reward + spatial_reward (two TRL reward functions)":
                lambda: (format_reward(work.completions), spatial(work.completions, **columns)),
            "ours, chat messages": lambda: (format_reward(work.chats), spatial(work.chats, **columns)),
            "ours: one call, SpatialSemanticReward(weights=(1, 1, 0), anatomy_weight=0) (one parse)":
                lambda: both(work.completions, **columns),
            "VLM-R1 regex format + first-box IoU": lambda: vlm_r1_rewards(work.completions, work.solution),
            "VLM-R1, with its per-completion image open":
                lambda: vlm_r1_rewards(work.completions, work.solution, images),
            "lmms-eval refcoco parse + IoU": lambda: lmms_eval_ious(work.completions, work.solution),
        }
        seconds = {name: median_time(fn) for name, fn in timings.items()}
    mean_len = sum(map(len, work.completions)) / n
    print(f"{n} qwen2.5-vl completions (realistic workload), mean {mean_len:.0f} characters, frame {work.frame}, "
          "median of 3")
    ours = seconds["ours: format_reward + spatial_reward (two TRL reward functions)"]
    for name, value in seconds.items():
        print(f"  {name}: {value:.3f} s ({n / value:,.0f}/s), ours is {value / ours:.2f}x faster")
    checks = [
        ("format+spatial >= 3x VLM-R1 without image open", seconds["VLM-R1 regex format + first-box IoU"] / ours, 3.0),
        ("format+spatial >= 10x VLM-R1 with image open",
         seconds["VLM-R1, with its per-completion image open"] / ours, 10.0),
        ("chat messages within 10% of strings", ours / seconds["ours, chat messages"], 1 / 1.1),
    ]
    ok = True
    for label, ratio, target in checks:
        passed = ratio >= target
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'} {label}: ratio {ratio:.2f} (target >= {target:.2f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
