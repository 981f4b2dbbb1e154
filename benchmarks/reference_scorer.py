"""A minimal numpy scorer: the reference of bench_score.py (what a researcher writes in 60 lines).

Joins predictions with the jsonl ground truth by id, reads the first ``[x1, y1, x2, y2]`` of each completion's
``<answer>`` (the VLM-R1 / lmms-eval rule), scales it from Qwen2.5-VL's resized input back to the image
(``smart_resize`` of the ground truth's ``image_size``), and prints IoU-based Acc@0.5 and mIoU as JSON. No
validation, no other dialect, no bootstrap. Run: ``python benchmarks/reference_scorer.py truth.jsonl preds.jsonl``.
"""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np

ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
BOX = re.compile(r"\[\s*(\d+(?:\.\d+)?),\s*(\d+(?:\.\d+)?),\s*(\d+(?:\.\d+)?),\s*(\d+(?:\.\d+)?)\s*\]")


def smart_resize(height: float, width: float, factor: int = 28, min_pixels: int = 3136,
                 max_pixels: int = 12845056) -> tuple[int, int]:
    h, w = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h, w = math.floor(height / beta / factor) * factor, math.floor(width / beta / factor) * factor
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def main(truth_path: str, preds_path: str) -> None:
    truth: dict[str, tuple[list[float], list[int]]] = {}
    with open(truth_path) as handle:
        for line in handle:
            row = json.loads(line)
            truth[row["id"]] = (row["boxes"][0], row["image_size"])
    ids = list(truth)
    pred = np.zeros((len(ids), 4))
    row_of = {sample_id: i for i, sample_id in enumerate(ids)}
    with open(preds_path) as handle:
        for line in handle:
            row = json.loads(line)
            i = row_of.get(row["id"])
            answer = ANSWER.search(row["completion"]) if i is not None else None
            box = BOX.search(answer.group(1)) if answer else None
            if box:
                width, height = truth[row["id"]][1]
                resized_h, resized_w = smart_resize(height, width)
                sx, sy = width / resized_w, height / resized_h
                x1, y1, x2, y2 = (float(v) for v in box.groups())
                pred[i] = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
    gt = np.array([truth[sample_id][0] for sample_id in ids], dtype=np.float64)
    lo, hi = np.maximum(pred[:, :2], gt[:, :2]), np.minimum(pred[:, 2:], gt[:, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=1)
    union = (pred[:, 2:] - pred[:, :2]).prod(axis=1) + (gt[:, 2:] - gt[:, :2]).prod(axis=1) - inter
    iou = np.divide(inter, union, out=np.zeros(len(ids)), where=union > 0)
    print(json.dumps({"n": len(ids), "acc@0.5": float((iou >= 0.5).mean()), "miou": float(iou.mean())}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
