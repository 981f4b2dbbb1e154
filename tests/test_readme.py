"""Every shell example of the README runs as written, against synthetic files, so the README cannot go stale.

How it works: each ```bash block of README.md is split into commands (``\\`` continuations joined, ``#`` comments
dropped). For each command the test builds, in an empty folder, the files the command reads (named by their
place in the command: the value of ``--annotations`` / ``--data-dir`` is ground truth of the command's
``--dataset``, a positional ``*.jsonl`` of a scoring command is predictions for that ground truth, ``--image-root``
gets an image per sample, ``--model`` a tiny local checkpoint) and runs it:

- ``make TARGET``: the target must exist in the Makefile (running ``make test`` from the tests would recurse);
- ``medground-eval train ...``: with ``--dry-run`` added where the README has none (it needs a real model);
- ``medground-eval serve ...``: started, asked for ``/health``, stopped;
- any other ``medground-eval`` command: run in process; it must exit 0.

A command of another kind, a ``...`` placeholder, or a file the command reads that no rule below can build fails
the test loudly with the example's text: a new README example either runs or gets a fixture here. Absolute paths
(``/models/...``) are moved under the test's folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medground_eval.cli import app
from medground_eval.datasets import get_loader

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
OUTPUT_OPTIONS = {"--output", "--output-dir", "--per-sample", "--report", "--markdown"}
GROUND_TRUTH_OPTIONS = {"--annotations", "--data-dir"}
SCORING_COMMANDS = {"score", "compare", "leaderboard", "doctor", "ids"}
INPUT_SUFFIX = re.compile(r"\.(jsonl|csv|json|toml|yaml|yml|parquet)$")


def readme_commands(text: str) -> list[str]:
    """The commands of every ```bash / ```sh / ```shell block, continuation lines joined, comments kept."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return commands


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_starts_with_make_demo_and_make_test():
    assert [shlex.split(c, comments=True) for c in COMMANDS[:2]] == [["make", "demo"], ["make", "test"]]


def test_the_parser_finds_every_shell_example():
    sample = "```bash\nmedground-eval a \\\n    --b c   # note\nmake x\n```\n```python\nx = 1\n```\n```sh\nls\n```\n"
    assert readme_commands(sample) == ["medground-eval a --b c   # note", "make x", "ls"]


def readme_python_examples(text: str) -> list[str]:
    """The ```pycon blocks (doctest form: ``>>>`` lines and the output they print); a ```python block is refused, so
    every Python example of the README is one this test runs and checks."""
    assert "```python" not in text, "write README Python examples as ```pycon blocks, so test_readme runs them"
    return re.findall(r"```pycon\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_print_what_they_show(monkeypatch):
    import doctest

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    examples = readme_python_examples(README.read_text(encoding="utf-8"))
    assert examples, "the README shows the library use as a ```pycon block"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for k, block in enumerate(examples):
        test = doctest.DocTestParser().get_doctest(block, {}, f"README.md pycon block {k + 1}", str(README), 0)
        assert test.examples, f"README pycon block {k + 1} has no >>> example"
        runner.run(test)
    assert runner.failures == 0, "a README Python example printed something else than it shows (output above)"


def test_a_python_fence_in_the_readme_is_refused():
    with pytest.raises(AssertionError, match="pycon"):
        readme_python_examples("```python\nx = 1\n```\n")


# Ground-truth fixtures, by data set: each writes the file or folder at ``path``.

def _truth_jsonl(path: Path) -> None:
    rows = [{"id": f"s{i}", "phrase": f"{side} opacity", "boxes": [[20 + 10 * i, 30, 90 + 10 * i, 120]],
             "image_size": [224, 224], "image": f"img/s{i}.png", "category": category, "split": split}
            for i, (side, category, split) in enumerate([("left", "opacity", "train"), ("right", "nodule", "train"),
                                                         ("left", "nodule", "test"), ("right", "opacity", "test")])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _mscxr(path: Path) -> None:
    from test_datasets import write_mscxr

    write_mscxr(path)


def _chestxray8(path: Path) -> None:
    from test_datasets import CXR8_ROWS

    path.write_text("\n".join(["Image Index,Finding Label,Bbox [x,y,w,h]", *CXR8_ROWS]) + "\n")


def _m3d(path: Path) -> None:
    from test_m3d_refseg import TEST_ROWS, TRAIN_ROWS, write_case, write_listing

    path.mkdir(parents=True, exist_ok=True)
    write_case(path, "s0000", {1: [np.s_[2:5, 3:9, 4:7]], 2: [np.s_[10:12, 1:3, 0:2]]},
               {"1": "A hypodense lesion in the right liver lobe.", "2": "Stones in both kidneys."})
    write_case(path, "s0001", {1: [np.s_[0:20, 0:1, 15:16]]}, {"1": "A nodule."})
    write_listing(path, "test", TEST_ROWS[:3])
    write_listing(path, "train", TRAIN_ROWS)


def _hf(path: Path) -> None:
    """A datasets folder with the columns `convert --format trl` writes."""
    import datasets

    _truth_jsonl(path.with_suffix(".jsonl"))
    rows = [json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()]
    columns = [{"id": r["id"], "phrase": r["phrase"], "solution": r["boxes"], "image_size": r["image_size"],
                "image": r["image"], "frame": "pixel"} for r in rows]
    datasets.Dataset.from_list(columns).save_to_disk(str(path))


GROUND_TRUTH: dict[str, Callable[[Path], None]] = {
    "jsonl": _truth_jsonl, "mscxr": _mscxr, "chestxray8": _chestxray8, "m3d-refseg": _m3d, "hf": _hf,
}


def _option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words and words.index(name) + 1 < len(words) else None


def _local(word: str, folder: Path) -> str:
    """An absolute path of the README moved under the test folder (``/models/x`` -> ``<folder>/models/x``)."""
    return str(folder / word.lstrip("/")) if word.startswith("/") else word


def _truth_path(words: list[str]) -> str | None:
    return next((_option(words, name) for name in GROUND_TRUTH_OPTIONS if name in words), None)


def _write_predictions(path: Path, samples: list, frame: str, completions_only: bool) -> None:
    """Perfect answers for ``samples`` in ``frame``: every other one in Chain-of-Box text, the rest as pred_boxes
    (all as text with ``completions_only``: a compat preset parses the model's text itself)."""
    from medground_eval.frames import get_frame

    lines = []
    for k, sample in enumerate(samples):
        if get_frame(frame).kind == "pixel" or sample.image_size is None:
            boxes = sample.boxes
        else:
            boxes = get_frame(frame).from_pixels(sample.boxes, sample.image_size)
        boxes = np.round(boxes).astype(int).tolist()
        if k % 2 and not completions_only:
            lines.append({"id": sample.id, "pred_boxes": boxes})
        else:
            lines.append({"id": sample.id, "completion": f"<think>the region</think><answer>{json.dumps(boxes)}"
                                                         "</answer>"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _images(root: Path, samples: list) -> None:
    from PIL import Image

    for sample in samples:
        if sample.image and sample.image_size and len(sample.image_size) == 2:
            target = root / sample.image
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", tuple(int(v) for v in sample.image_size), 40).save(target)


_TINY: dict[str, Path] = {}


def _model(path: Path, cache: Path) -> None:
    from tiny_qwen import build_tiny_qwen

    if "model" not in _TINY:
        _TINY["model"] = build_tiny_qwen(cache / "tiny-qwen")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.symlink_to(_TINY["model"], target_is_directory=True)


def prepare(command: str, folder: Path, cache: Path) -> list[str]:
    """Build the files ``command`` reads inside ``folder``; return its arguments (after ``medground-eval``) with
    absolute paths moved under ``folder``. Fails naming the example when a file has no fixture rule."""
    words = [_local(w, folder) for w in shlex.split(command, comments=True)]
    assert "..." not in words, f"README example has a placeholder '...', so it cannot run as written: {command}"
    args = words[1:]
    subcommand = args[0] if args else ""
    dataset = _option(args, "--dataset")
    truth = _truth_path(args)
    samples: list = []
    if truth is not None:
        assert dataset in GROUND_TRUTH, f"README example reads --dataset {dataset!r}: add a fixture: {command}"
        target = folder / truth
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            GROUND_TRUTH[dataset](target)
        samples = get_loader(dataset)(target).samples
    elif dataset == "jsonl" and subcommand in SCORING_COMMANDS:
        _truth_jsonl(folder / "_carried.jsonl")
        samples = get_loader("jsonl")(folder / "_carried.jsonl").samples
    frame = _option(args, "--frame") or "pixel"
    if subcommand in SCORING_COMMANDS:
        view = _option(args, "--view") or "volume"
        if view != "volume":
            from medground_eval.datasets.m3d_refseg import view_sample

            samples = [view_sample(s, view) for s in samples]
        outputs = {args[i + 1] for i, w in enumerate(args[:-1]) if w in OUTPUT_OPTIONS}
        for word in args[1:]:
            if word.endswith(".jsonl") and word not in outputs and word != truth and not (folder / word).exists():
                assert samples, f"README example scores {word} without ground truth the test can build: {command}"
                carried = truth is None
                _write_predictions(folder / word, samples, frame, completions_only="--compat" in args)
                if carried:  # jsonl without --annotations: each line carries its ground truth
                    truth_rows = {json.loads(t)["id"]: json.loads(t) for t in
                                  (folder / "_carried.jsonl").read_text().splitlines()}
                    lines = [truth_rows[json.loads(t)["id"]] | json.loads(t)
                             for t in (folder / word).read_text().splitlines()]
                    (folder / word).write_text("".join(json.dumps(line) + "\n" for line in lines))
    image_root = _option(args, "--image-root")
    if image_root is not None:
        _images(folder / image_root, samples)
    model = _option(args, "--model")
    if model is not None:
        _model(folder / model, cache)
    for i, word in enumerate(args[1:], start=1):
        if word.startswith("-") or args[i - 1] in OUTPUT_OPTIONS:
            continue
        if "/" in word or INPUT_SUFFIX.search(word):
            assert (folder / word).exists(), (f"README example reads {word!r}, which no fixture rule of "
                                              f"tests/test_readme.py builds; add one: {command}")
    return args


def _serve(args: list[str], folder: Path) -> None:
    """Start ``serve`` as written, wait for /health, stop it."""
    import httpx

    port = int(_option(args, "--port") or 5000)
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip(f"port {port} of the README's serve example is in use on this machine")
    process = subprocess.Popen([sys.executable, "-m", "medground_eval", *args], cwd=folder,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200:
                    return
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "README serve example did not start within 90 s"
                time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[f"{i}:{c[:50]}" for i, c in enumerate(COMMANDS)])
def test_readme_example_runs_as_written(command, tmp_path, tmp_path_factory, monkeypatch):
    words = shlex.split(command, comments=True)
    if words[0] == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in words[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"no make target {target!r}"
        return
    assert words[0] == "medground-eval", (f"README example {command!r} is neither make nor medground-eval: teach "
                                          "tests/test_readme.py to run it")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = prepare(command, tmp_path, tmp_path_factory.getbasetemp())
    if args[0] == "serve":
        _serve(args, tmp_path)
        return
    if args[0] == "train" and "--dry-run" not in args:
        args.append("--dry-run")  # a real model is needed to train; the dry run checks everything up to it
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{command}\n{result.output}\n{result.exception!r}"
