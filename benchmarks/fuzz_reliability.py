"""Timed fuzz run of the surfaces a hostile model answer or input file reaches (by hand; not part of the tests).

For ``--minutes`` (default 10, split evenly over the targets), random adversarial inputs go to:

- ``parser``: :func:`parse_completion` on completions mixing every dialect with absurd numbers (``1e300``, ``2e154``,
  ``inf``, ``nan``, 400-digit integers), unbalanced tags and brackets, deep nesting, long repetitive reasoning;
- ``rewards``: every reward, mode and frame (2D and 3D, as ``tests/test_reward_numbers.py``) on batches of such
  completions: every value must be finite and inside the reward's documented range;
- ``scorer``: :func:`score_predictions` on records with random completions or ``pred_boxes`` (garbage included)
  under ``on_error="skip"``: no exception but :class:`DataError`, every metric finite;
- ``server``: the server's request parsing and chunked scoring (:func:`parse_request`, :func:`_score_chunk`) on
  random bodies: only HTTP 4xx exceptions, per-item values finite or null with a reason;
- ``json``: :func:`medground_eval.datasets.textfile.loads` on random nesting: a value or a JSONDecodeError.

Prints, per target, the calls made, unexpected exceptions, and non-finite / out-of-range values (with the first
offending input of each kind); exits 1 when any is found. Run:
``python benchmarks/fuzz_reliability.py [--minutes 10] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable

import numpy as np

NUMBERS = ["1e300", "-1e300", "2e154", "1.7976931348623157e308", "1e309", "inf", "-inf", "nan", "Infinity", "NaN",
           "9" * 400, "1e-320", "-0", "0", "1000001", "1e6", "999999.999999", "5e-324", "1E+2", ".5", "3.", "-12",
           "007", "1_000", "0x1F", "1e", "--3", "+4"]
LABELS = ["left pleural effusion", "right apical pneumothorax", "cardiomegaly", "", "L", "bilateral", "\u00e9\u0000"]


def number(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(NUMBERS)
    if roll < 0.7:
        return repr(rng.uniform(-100, 1200))
    return str(rng.randint(-10**rng.randint(1, 30), 10**rng.randint(1, 30)))


def completion(rng: random.Random, dims: int = 2) -> str:
    nums = [number(rng) for _ in range(rng.choice([2 * dims, 2 * dims, 2 * dims - 1, 2 * dims + 1]))]
    label = rng.choice(LABELS)
    half = len(nums) // 2
    answers = [
        '[{"bbox_2d": [%s], "label": "%s"}]' % (", ".join(nums), label),
        "[%s]" % ", ".join(nums),
        "<|object_ref_start|>%s<|object_ref_end|><|box_start|>(%s),(%s)<|box_end|>"
        % (label, ",".join(nums[:half]), ",".join(nums[half:])),
        "<ref>%s</ref><box>[[%s]]</box>" % (label, ", ".join(nums)),
        "```json\n" + "[" * rng.randint(0, 300) + ", ".join(nums),
        "".join(f"<loc{rng.randint(0, 99999):04d}>" for _ in range(4)) + label,
    ]
    answer = rng.choice(answers)
    think = rng.choice(["", f"Look at [{', '.join(nums)}]. " * rng.randint(1, 50), "x. " * rng.randint(0, 2000)])
    shapes = [f"<think>{think}</think><answer>{answer}</answer>", f"<think>{think}<answer>{answer}",
              f"<answer>{answer}", f"<THINK>{think}</THINK><Answer>{answer}</Answer>{answer}", answer]
    return rng.choice(shapes)


def _float(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


class Tally:
    def __init__(self, name: str):
        self.name, self.calls, self.exceptions, self.bad_values = name, 0, 0, 0
        self.first: dict[str, str] = {}

    def fail(self, kind: str, detail: str) -> None:
        if kind == "exception":
            self.exceptions += 1
        else:
            self.bad_values += 1
        self.first.setdefault(kind, detail[:400])


def fuzz_parser(rng: random.Random, tally: Tally) -> None:
    from medground_eval.parsing import parse_completion, think_boxes
    from medground_eval.structures import MAX_COORDINATE

    text = completion(rng, rng.choice([2, 3]))
    parsed = parse_completion(text, dims=rng.choice([None, 2, 3]))
    for box in parsed.answer_boxes + think_boxes(parsed):
        if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in box.coords):
            tally.fail("box out of range", text)


def _rewards() -> tuple[list, list]:
    from medground_eval.rewards import AnatomyReward, FormatReward, SemanticReward, SpatialReward, SpatialSemanticReward

    spatial = [(m, u) for m in ("iou", "threshold", "giou") for u in ("union", "match") if not (m == "giou" and u == "match")]
    two, three = [], []
    for frame in ("pixel", "norm1000", "norm1", "qwen2.5-vl"):
        two += [(f"spatial {m}/{u} {frame}", SpatialReward(mode=m, multi=u, frame=frame), 1.0) for m, u in spatial]
        two += [(f"semantic {frame}", SemanticReward(encoder="lexical", frame=frame), 1.0),
                (f"anatomy {frame}", AnatomyReward(frame=frame), 1.0)]
        combined = SpatialSemanticReward(encoder="lexical", frame=frame, spatial_mode="giou")
        two.append((f"combined {frame}", combined, combined.max_total))
    two.append(("format", FormatReward(), 1.0))
    for frame in ("pixel", "norm1000", "m3d-npy"):
        three += [(f"spatial3d {m}/{u} {frame}", SpatialReward(mode=m, multi=u, frame=frame, dims=3), 1.0)
                  for m, u in spatial]
        combined = SpatialSemanticReward(encoder="lexical", frame=frame, dims=3)
        three.append((f"combined3d {frame}", combined, combined.max_total))
    return two, three


def fuzz_rewards(rng: random.Random, tally: Tally, rewards: tuple[list, list]) -> None:
    dims = rng.choice([2, 3])
    n = rng.randint(1, 8)
    batch = [completion(rng, dims) for _ in range(n)]
    if dims == 2:
        # sizes Qwen2.5-VL's resize accepts (aspect ratio <= 200): a refused size is a RewardInputError by design
        sizes = [[float(rng.randint(64, 5000)), float(rng.randint(64, 5000))] for _ in range(n)]
        columns = {"solution": [[[0.1 * w, 0.2 * h, 0.6 * w, 0.7 * h]] for w, h in sizes], "image_size": sizes,
                   "phrase": [rng.choice(LABELS[:4]) or "effusion" for _ in range(n)]}
    else:
        columns = {"solution": [[1, 2, 3, 100, 120, 30]] * n, "image_size": [[256, 256, 64]] * n,
                   "input_size": [[0, 0, 0, 256, 256, 64]] * n, "phrase": ["left lung lesion"] * n}
    for name, reward, high in rewards[0 if dims == 2 else 1]:
        values = np.asarray(reward(batch, **columns), dtype=np.float64)
        if not (np.isfinite(values).all() and (values >= 0).all() and (values <= high).all()):
            tally.fail(f"{name} value {values.tolist()}", json.dumps(batch))


def fuzz_scorer(rng: random.Random, tally: Tally) -> None:
    from medground_eval.datasets.base import LoadedDataset
    from medground_eval.evaluation.scorer import score_predictions
    from medground_eval.structures import Sample

    n = rng.randint(1, 6)
    sized = rng.random() < 0.5
    samples = [Sample(f"s{i}", "left effusion", [[1, 2, 30, 40]], (100, 80) if sized else None) for i in range(n)]
    records = []
    for i in range(n):
        if rng.random() < 0.3:
            records.append({"id": f"s{i}", "pred_boxes": [[_float(number(rng)) if rng.random() < 0.9 else "x"
                                                           for _ in range(4)]]})
        else:
            records.append({"id": f"s{i}", "completion": completion(rng)})
    frame = rng.choice(["pixel", "norm1000"] if sized else ["pixel"])
    result = score_predictions(records, LoadedDataset("fuzz", samples), frame=frame, on_error="skip", n_bootstrap=0)
    values = [v for v in (result.report.to_dict().get(k) for k in ("miou", "ciou")) if v is not None]
    if not all(math.isfinite(v) for v in values) or not np.isfinite(result.per_sample.iou).all():
        tally.fail("non-finite metric", json.dumps(records))


def fuzz_server(rng: random.Random, tally: Tally, reward) -> None:
    from fastapi import HTTPException

    from medground_eval.integrations.server import _score_chunk, parse_request

    n = rng.randint(1, 6)
    labels = [json.dumps({"solution": [[10, 10, 50, 50]], "phrase": rng.choice(LABELS[:4]), "image_size": [100, 100],
                          "frame": rng.choice(["pixel", "norm1000", "qwen2.5-vl"])}) for _ in range(n)]
    body = {"query": [completion(rng) for _ in range(n)], "labels": labels}
    roll = rng.random()
    raw = json.dumps(body).encode()
    if roll < 0.15:
        raw = raw[: rng.randint(0, len(raw))]
    elif roll < 0.25:
        raw = b"[" * rng.randint(1, 200_000)
    elif roll < 0.3:
        raw = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 64)))
    try:
        queries, prompts, labels = parse_request(raw)
    except HTTPException as error:
        if not 400 <= error.status_code < 500:
            tally.fail("status", f"{error.status_code} {raw[:200]!r}")
        return
    try:
        rewards, _, reasons = _score_chunk(reward, queries, prompts, labels)
    except Exception as error:  # noqa: BLE001 - label errors are the server's 422
        from medground_eval.integrations.labels import LabelError
        from medground_eval.rewards import RewardInputError

        if not isinstance(error, (LabelError, RewardInputError)):
            raise
        return
    for value, reason in zip(rewards, reasons):
        if value is None and reason is None or value is not None and not math.isfinite(value):
            tally.fail("server value", raw.decode(errors="replace"))


def fuzz_json(rng: random.Random, tally: Tally) -> None:
    from medground_eval.datasets.textfile import loads

    depth = rng.choice([1, 10, 99, 100, 101, 1000, 100_000])
    text = rng.choice(["[", "{\"a\":"]) * depth if rng.random() < 0.5 else "[" * depth + "]" * depth
    try:
        loads(text)
    except json.JSONDecodeError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    from medground_eval.rewards import SpatialSemanticReward

    rewards = _rewards()
    server_reward = SpatialSemanticReward(encoder="lexical")
    targets: list[tuple[Tally, Callable[[], None]]] = []
    for name, run in (("parser", lambda t: fuzz_parser(rng, t)), ("rewards", lambda t: fuzz_rewards(rng, t, rewards)),
                      ("scorer", lambda t: fuzz_scorer(rng, t)),
                      ("server", lambda t: fuzz_server(rng, t, server_reward)), ("json", lambda t: fuzz_json(rng, t))):
        tally = Tally(name)
        targets.append((tally, lambda run=run, tally=tally: run(tally)))
    share = args.minutes * 60 / len(targets)
    from medground_eval.datasets.base import DataError

    for tally, run in targets:
        end = time.monotonic() + share
        while time.monotonic() < end:
            tally.calls += 1
            try:
                run()
            except DataError:
                pass  # a bad scorer record under on_error="skip" is never raised; a bad *option* would be
            except Exception as error:  # noqa: BLE001 - the point of the exercise
                tally.fail("exception", f"{type(error).__name__}: {error}")
    failed = False
    for tally, _ in targets:
        print(f"{tally.name:8s} {tally.calls:8d} calls in {share:.0f} s, {tally.exceptions} exceptions, "
              f"{tally.bad_values} non-finite or out-of-range values")
        for kind, detail in tally.first.items():
            print(f"    first {kind}: {detail}")
        failed |= bool(tally.exceptions or tally.bad_values)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
