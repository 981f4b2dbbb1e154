"""Worst-case inputs for the Chain-of-Box parser: each 1 MB completion must parse in under 50 ms.

Run: ``python benchmarks/bench_parser.py``. Prints the time of each case, then, as a reference measured in the same
run, the time the widely used peer format regex takes on small repetitive inputs, extrapolated to 1 MB from the
growth exponent measured between two sizes. Prints a PASS/FAIL line per target and exits non-zero on a failure.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable

from medground_eval.parsing import format_box, parse_completion, think_boxes

SIZE = 1_000_000
TARGET_S = 0.050
PEER_FORMAT = re.compile(
    r"<think>.*?</think>\s*<answer>.*?\{.*\[\d+,\s*\d+,\s*\d+,\s*\d+\].*\}.*?</answer>", re.DOTALL
)


def _repeat(unit: str, size: int = SIZE) -> str:
    return unit * (size // len(unit))


def _answer(body: str) -> str:
    return f"<think>look</think><answer>{body}</answer>"


CASES: dict[str, str] = {
    "<think> spam": _repeat("<think>"),
    "<think><answer> spam": _repeat("<think><answer>"),
    "'[1,2,3,' repeated": _answer(_repeat("[1,2,3,")),
    "'{\"bbox_2d\": ' repeated": _answer(_repeat('{"bbox_2d": ')),
    "unclosed ```json fences": _answer(_repeat("```json\n")),
    "deep brackets": _answer("[" * (SIZE // 2) + "1,2,3,4" + "]" * (SIZE // 2)),
    "deep parentheses": _answer("(" * (SIZE // 2) + "1,2" + ")" * (SIZE // 2)),
    "unclosed quotes after commas": _answer(_repeat(',"\\",\'x')),
    "'(1,2),(' repeated": _answer(_repeat("(1,2),(")),
    "digits without end": _answer("[" + "1" * SIZE),
    "ref tags without end": _answer(_repeat("<|object_ref_start|><ref>")),
    "'(1)' repeated": _answer(_repeat("(1)")),
    "'[1e]' repeated": _answer(_repeat("[1e]")),
    "valid boxes repeated": _answer(_repeat(format_box([1, 2, 3, 4], "a") + ", ")),
    "prose think, 1 box": "<think>" + _repeat("the lesion's edge (see 2, 3) is dense. ") + "</think><answer>"
    + format_box([1, 2, 3, 4], "x") + "</answer>",
    "1000 boxes + label spam": _answer(", ".join([format_box([1, 2, 3, 4], "a")] * 1000) + _repeat('"label": "')),
    "box-shaped groups under a key": _answer(_repeat('"crop": [1, 2, 3, 4], ')),
    "<ref> + one group of boxes": _answer("<ref>a</ref><box>[" + _repeat("[1, 2, 3, 4], ") + "]</box>"),
    "'[1;2_' repeated (CogVLM / VideoLLaMA3)": _answer(_repeat("[1;2_")),
    "one [[..;..;..]] group": _answer("[[" + _repeat("1,2,3,4;") + "]]"),
    "'<box>1 2 ' unclosed": _answer(_repeat("<box>1 2 ")),
    "'<loc_1>' run": _answer(_repeat("<loc_1>")),
    "'<loc0001' unclosed": _answer(_repeat("<loc0001")),
    "Florence-2 phrases repeated": _answer(_repeat("car<loc_1><loc_2><loc_3><loc_4>")),
    "PaliGemma detections repeated": _answer(_repeat("<loc0001><loc0002><loc0003><loc0004> car ; ")),
    "'[[1,2],[' repeated": _answer(_repeat("[[1,2],[")),
    "'\"bounding_box_2d\": [' repeated": _answer(_repeat('"bounding_box_2d": [1, ')),
    "think: '[1,2,3,' repeated": f"<think>{_repeat('[1,2,3,')}</think><answer>[1, 2, 3, 4]</answer>",
    "think: valid boxes repeated": "<think>" + _repeat(format_box([1, 2, 3, 4], "a") + ", ")
    + "</think><answer>[1, 2, 3, 4]</answer>",
}
"""Each case is timed with its think boxes read (``parsing.think_boxes``, read on request)."""


def _best_time(func: Callable[[], object], repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _peer_input(size: int) -> str:
    return "<think>a</think><answer>" + _repeat("{[1,2,3,", size)


def main() -> int:
    failed = 0
    print(f"parse_completion on {SIZE / 1e6:.0f} MB worst cases (target < {TARGET_S * 1e3:.0f} ms each)")
    for name, text in CASES.items():
        seconds = _best_time(lambda text=text: think_boxes(parse_completion(text)))
        ok = seconds < TARGET_S
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name:32s} {len(text) / 1e6:5.2f} MB  {seconds * 1e3:8.2f} ms")

    small, large = 10_000, 20_000
    t_small = _best_time(lambda: PEER_FORMAT.fullmatch(_peer_input(small)), repeat=1)
    t_large = _best_time(lambda: PEER_FORMAT.fullmatch(_peer_input(large)), repeat=1)
    exponent = math.log(t_large / t_small) / math.log(large / small)
    t_1mb = t_large * (SIZE / large) ** exponent
    ours = _best_time(lambda: parse_completion(_peer_input(SIZE)))
    print(
        f"reference: peer format regex on '{{[1,2,3,' repeated: {small // 1000} kB {t_small * 1e3:.1f} ms, "
        f"{large // 1000} kB {t_large * 1e3:.1f} ms (growth ~ n^{exponent:.1f}), "
        f"extrapolated to 1 MB: {t_1mb:.3g} s; parse_completion on 1 MB: {ours * 1e3:.2f} ms "
        f"(ratio {t_1mb / ours:.3g}x)"
    )
    ok = ours < TARGET_S
    failed += not ok
    print(f"{'PASS' if ok else 'FAIL'}  parse_completion on the peer regex's worst case under {TARGET_S * 1e3:.0f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
