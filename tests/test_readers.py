"""Readers under bad bytes, gzip, deep nesting, duplicates and empty files (issue 13, cases 5, 6, 8 and 11)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medground_eval.datasets.base import DataError
from medground_eval.datasets.chestxray8 import load_chestxray8
from medground_eval.datasets.jsonl import load_jsonl
from medground_eval.datasets.mscxr import load_mscxr
from medground_eval.datasets.textfile import MAX_JSON_DEPTH, loads
from medground_eval.evaluation.scorer import score_files
from medground_eval.rewards import SpatialReward

ROOT = Path(__file__).resolve().parents[1]
HEADER = "Image Index,Finding Label,Bbox [x,y,w,h]\n"
ROWS = ["a.png,Mass,10,20,30,40\n", "b.png,Nodule,5,5,10,10\n"]
TRUTH = [{"id": "a", "phrase": "mass", "boxes": [[0, 0, 10, 10]], "image_size": [100, 100]},
         {"id": "b", "phrase": "nodule", "boxes": [[5, 5, 20, 20]], "image_size": [100, 100]}]
PREDS = [{"id": "a", "completion": "<answer>[0, 0, 10, 10]</answer>"},
         {"id": "b", "completion": "<answer>[5, 5, 20, 20]</answer>"}]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def score(tmp_path: Path, preds: bytes, name: str = "preds.jsonl", **options):
    path = tmp_path / name
    path.write_bytes(gzip.compress(preds) if name.endswith(".gz") else preds)
    truth = tmp_path / "truth.jsonl"
    truth.write_bytes(jsonl(TRUTH))
    return score_files(path, dataset="jsonl", annotations=truth, n_bootstrap=0, **options)


# ------------------------------------------------------------------ case 5: undecodable bytes, gzip

def test_a_bad_byte_in_a_prediction_line_names_file_and_line_and_is_skipped_under_skip(tmp_path):
    body = jsonl(PREDS[:1]) + b'{"id": "b", "completion": "\xff"}\n'
    with pytest.raises(DataError, match=r"preds.jsonl:2: row = .*expected UTF-8 text"):
        score(tmp_path, body)
    result = score(tmp_path, body, on_error="skip")
    assert result.config["skipped_lines"] == 1 and result.report.n == 2


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_predictions_file_is_a_data_error(tmp_path, encoding):
    body = jsonl(PREDS).decode().encode(encoding)
    if not body.startswith((b"\xff\xfe", b"\xfe\xff")):
        body = b"\xfe\xff" + body
    with pytest.raises(DataError, match="UTF-16 byte order mark"):
        score(tmp_path, body, on_error="skip")


def test_gzip_predictions_are_read_and_a_truncated_archive_is_a_data_error(tmp_path):
    result = score(tmp_path, jsonl(PREDS), name="preds.jsonl.gz")
    assert result.report.n == 2 and result.report.to_dict()["miou"] == pytest.approx(1.0)
    broken = tmp_path / "cut.jsonl.gz"
    broken.write_bytes(gzip.compress(jsonl(PREDS) * 100)[:-30])
    with pytest.raises(DataError, match="cut.jsonl.gz: .*a complete gzip file"):
        score_files(broken, dataset="jsonl", annotations=tmp_path / "truth.jsonl", n_bootstrap=0)


@pytest.mark.parametrize("loader, header", [(load_chestxray8, HEADER), (load_mscxr, None)])
def test_a_latin1_csv_line_names_file_and_line(tmp_path, loader, header):
    if loader is load_chestxray8:
        text = (header + ROWS[0]).encode() + "c\xe9.png,Mass,1,2,3,4\n".encode("latin-1") + ROWS[1].encode()
        path = tmp_path / "BBox_List_2017.csv"
    else:
        head = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height\n"
        text = (head + "d1,Pneumonia,opacity,f/d1.jpg,1,2,3,4,100,100\n").encode() \
            + "d2,Edema,\xe9d\xe8me,f/d2.jpg,1,2,3,4,100,100\n".encode("latin-1")
        path = tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv"
    path.write_bytes(text)
    with pytest.raises(DataError, match=rf"{path.name}:3: row = .*expected UTF-8 text"):
        loader(path)
    loaded = loader(path, on_error="skip")
    assert len(loaded.samples) == (2 if loader is load_chestxray8 else 1)
    assert [row.line for row in loaded.skipped] == [3]


def test_gzip_csv_and_jsonl_ground_truth_are_read(tmp_path):
    csv_gz = tmp_path / "BBox_List_2017.csv.gz"
    csv_gz.write_bytes(gzip.compress((HEADER + "".join(ROWS)).encode()))
    assert [s.id for s in load_chestxray8(csv_gz).samples] == ["a.png:Mass", "b.png:Nodule"]
    truth_gz = tmp_path / "truth.jsonl.gz"
    truth_gz.write_bytes(gzip.compress(jsonl(TRUTH)))
    assert [s.id for s in load_jsonl(truth_gz).samples] == ["a", "b"]


def test_a_utf16_csv_is_a_data_error_even_under_skip(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes((HEADER + "".join(ROWS)).encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16 byte order mark"):
        load_chestxray8(path, on_error="skip")


# ------------------------------------------------------------------ case 6: nesting depth

def test_deep_nesting_is_a_json_error_never_a_recursion_error():
    with pytest.raises(json.JSONDecodeError, match="nested 100000 levels deep"):
        loads("[" * 100_000)
    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    assert loads(json.dumps({"completion": "[" * 5000})) == {"completion": "[" * 5000}  # brackets inside a string


def test_score_cli_on_100000_nested_brackets_is_an_error_message_not_a_traceback(tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_bytes(jsonl(PREDS[:1]) + b"[" * 100_000 + b"\n")
    truth = tmp_path / "truth.jsonl"
    truth.write_bytes(jsonl(TRUTH))
    command = [sys.executable, "-m", "medground_eval", "score", str(preds), "--dataset", "jsonl", "--annotations",
               str(truth), "--bootstrap", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "preds.jsonl:2" in result.stderr and "nested 100000 levels deep" in result.stderr
    skipped = subprocess.run(command + ["--on-error", "skip"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert skipped.returncode == 0 and "1 lines skipped" in skipped.stdout


def test_a_deeply_nested_label_is_a_reward_input_error():
    from medground_eval.integrations.labels import LabelError, read_label

    with pytest.raises(LabelError, match="not JSON"):
        read_label("[" * 100_000)


# ------------------------------------------------------------------ case 8: duplicate rows

def test_exact_duplicate_csv_rows_are_dropped_once_and_counted(tmp_path):
    path = tmp_path / "BBox_List_2017.csv"
    path.write_text(HEADER + ROWS[0] + ROWS[0] + ROWS[1] + "a.png,Mass,50,50,10,10\n")
    loaded = load_chestxray8(path)
    np.testing.assert_array_equal(loaded.samples[0].boxes, [[10, 20, 40, 60], [50, 50, 60, 60]])
    assert [d.line for d in loaded.duplicates] == [3] and "exact duplicate of line 2" in loaded.duplicates[0].reason
    preds = tmp_path / "p.jsonl"
    preds.write_bytes(jsonl([{"id": "a.png:Mass", "completion": "<answer>[10, 20, 40, 60] [50, 50, 60, 60]</answer>"},
                             {"id": "b.png:Nodule", "completion": "<answer>[5, 5, 15, 15]</answer>"}]))
    result = score_files(preds, dataset="chestxray8", annotations=path, n_bootstrap=0)
    assert result.config["duplicate_rows"] == 1
    from medground_eval.evaluation.scorer import join_notes

    assert "1 exact duplicate ground-truth rows dropped (each box counted once)" in join_notes(result.config)
    # Under one-to-one matching the perfect answer scored 0.5 with the duplicate kept.
    sample = loaded.samples[0]
    reward = SpatialReward(multi="match")(["<answer>[10, 20, 40, 60] [50, 50, 60, 60]</answer>"],
                                          solution=[sample.boxes.tolist()])
    assert reward == [pytest.approx(1.0)]


def test_exact_duplicate_mscxr_rows_are_dropped(tmp_path):
    head = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height\n"
    row = "d1,Pneumonia,opacity,f/d1.jpg,1,2,3,4,100,100\n"
    path = tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv"
    path.write_text(head + row + row)
    loaded = load_mscxr(path)
    assert loaded.samples[0].boxes.shape == (1, 4) and len(loaded.duplicates) == 1


# ------------------------------------------------------------------ case 11: empty inputs

def test_empty_predictions_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="preds.jsonl: .*at least one prediction line"):
        score(tmp_path, b"")
    with pytest.raises(DataError, match="at least one prediction line"):
        score(tmp_path, b"\n  \n")


@pytest.mark.parametrize("text", ["", HEADER, "Image Index,Finding Label,Bbox [x,y,w,h],,,\n\n"])
def test_empty_or_header_only_chestxray8_csv_is_an_error(tmp_path, text):
    path = tmp_path / "BBox_List_2017.csv"
    path.write_text(text)
    with pytest.raises(DataError, match="at least one box row .*empty or holds only a header"):
        load_chestxray8(path)
