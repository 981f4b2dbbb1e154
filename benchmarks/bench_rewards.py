"""Format + spatial reward throughput against a reference written the way peers do it.

The reference (VLM-R1 / MedGround-R1 style): a format regex per completion, then one regex search for the first
``[int, int, int, int]`` inside ``<answer>`` and a per-pair Python IoU, reopening nothing. Ours parses every dialect,
converts frames and computes union-region IoU. Target: at least 3x the reference throughput on 100k realistic
~600-character completions. Run: ``python benchmarks/bench_rewards.py [n]``.
"""

from __future__ import annotations

import re
import sys
import time

import numpy as np

from medground_eval.rewards import format_reward, spatial_reward

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


def peer_rewards(completions: list[str], solution: list[list[float]]) -> tuple[list[float], list[float]]:
    fmt = [1.0 if PEER_FORMAT.fullmatch(c) else 0.0 for c in completions]
    spatial = []
    for c, sol in zip(completions, solution):
        reward = 0.0
        answer = PEER_ANSWER.search(c)
        if answer:
            box = PEER_BOX.search(answer.group(1))
            if box:
                reward = peer_iou([int(g) for g in box.groups()], sol)
        spatial.append(reward)
    return fmt, spatial


def ours(completions: list[str], solution: list[list[float]]) -> tuple[list[float], list[float]]:
    return format_reward(completions), spatial_reward(completions, solution=solution)


def best_of(fn, repeat: int, *args) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    completions, solution = realistic_completions(n)
    mean_len = sum(map(len, completions)) / n
    t_peer, (peer_fmt, peer_sp) = best_of(peer_rewards, 2, completions, solution)
    # Fresh texts for every timed run, so the parse cache cannot serve one run from another.
    t_ours = float("inf")
    for seed in (1, 2):
        fresh, fresh_solution = realistic_completions(n, seed)
        start = time.perf_counter()
        ours(fresh, fresh_solution)
        t_ours = min(t_ours, time.perf_counter() - start)
    our_fmt, our_sp = ours(completions, solution)
    agree = np.allclose(our_sp, peer_sp, atol=1e-9) and our_fmt == peer_fmt
    ratio = t_peer / t_ours
    print(f"{n} completions, mean {mean_len:.0f} characters")
    print(f"reference (peer regex + Python IoU): {t_peer:.3f} s  ({n / t_peer:,.0f} completions/s)")
    print(f"medground-eval format + spatial:     {t_ours:.3f} s  ({n / t_ours:,.0f} completions/s)")
    print(f"throughput ratio ours / reference: {ratio:.2f}x (target >= 3x)")
    print(f"{'PASS' if ratio >= 3 else 'FAIL'}: throughput >= 3x reference")
    print(f"{'PASS' if agree else 'FAIL'}: same rewards as the reference on inputs both read")
    return 0 if ratio >= 3 and agree else 1


if __name__ == "__main__":
    sys.exit(main())
