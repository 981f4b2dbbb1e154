"""No network at run time (issue 13, case 9): a model id that is not a local folder is a one-line error in every
command that loads a model, and nothing looks a host up, even with HF_HUB_OFFLINE unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medground_eval.inference import local_model_dir

ROOT = Path(__file__).resolve().parents[1]
NO_DNS = """
import socket

def _refuse(*args, **kwargs):
    raise RuntimeError(f"network access attempted: getaddrinfo{args[:2]}")

socket.getaddrinfo = _refuse
socket.create_connection = _refuse
"""


@pytest.fixture
def offline_env(tmp_path) -> dict[str, str]:
    """The environment of a subprocess whose every DNS look-up raises, with the hub's offline switches unset."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_DNS)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env["HF_HOME"] = str(tmp_path / "hf-home")  # an empty cache: nothing to find locally either
    return env


def _data(tmp_path: Path) -> Path:
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.new("L", (64, 64)).save(tmp_path / "img" / "a.png")
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"id": "a", "phrase": "x", "boxes": [[1, 1, 9, 9]], "image_size": [64, 64],
                                "image": "img/a.png", "split": "train"}) + "\n")
    return path


def test_the_sitecustomize_really_blocks_dns(offline_env):
    code = "import socket; socket.getaddrinfo('huggingface.co', 443)"
    result = subprocess.run([sys.executable, "-c", code], env=offline_env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "network access attempted" in result.stderr


@pytest.mark.parametrize("command", [
    ["train", "--dry-run", "--model", "Qwen/Qwen2.5-VL-3B-Instruct", "--dataset", "jsonl", "--split", "train"],
    ["predict", "--model", "Qwen/Qwen2.5-VL-3B-Instruct", "--dataset", "jsonl", "--split", "train"],
])
def test_a_hub_id_is_a_one_line_error_without_any_network_access(tmp_path, offline_env, command):
    data = _data(tmp_path)
    args = [sys.executable, "-m", "medground_eval", *command, "--data-dir", str(data), "--image-root", str(tmp_path),
            "--output-dir" if command[0] == "train" else "--output",
            str(tmp_path / ("out" if command[0] == "train" else "preds.jsonl"))]
    result = subprocess.run(args, env=offline_env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "network access attempted" not in result.stderr and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'Qwen/Qwen2.5-VL-3B-Instruct': not a local folder" in lines[0], lines
    assert "never downloaded" in lines[0]


def test_local_model_dir_checks_folder_and_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local folder"):
        local_model_dir("org/model")
    with pytest.raises(FileNotFoundError, match="--model is required"):
        local_model_dir("")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        local_model_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert local_model_dir(tmp_path) == tmp_path
