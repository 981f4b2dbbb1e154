"""The 2D loaders: jsonl, mscxr (synthetic release files only), chestxray8 (synthetic + the public box list)."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground_eval.datasets import DataError, dataset_names, get_loader
from medground_eval.datasets import mscxr as mscxr_module
from medground_eval.datasets.chestxray8 import chestxray8_phrase, load_chestxray8
from medground_eval.datasets.jsonl import load_jsonl, sample_from_record
from medground_eval.datasets.mscxr import load_mscxr, mscxr_sample_id

REAL_BBOX_LIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "chestxray8" / "BBox_List_2017.csv"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_loaders_are_registered():
    assert {"jsonl", "mscxr", "chestxray8"} <= set(dataset_names())
    assert get_loader("jsonl") is load_jsonl
    assert get_loader("mscxr") is load_mscxr
    assert get_loader("chestxray8") is load_chestxray8


# ---------------------------------------------------------------- jsonl


def test_jsonl_reads_all_fields_and_single_box_form(tmp_path):
    records = [
        {"id": "a", "phrase": "left effusion", "boxes": [[1, 2, 30, 40], [50, 60, 70, 80]], "image_size": [100, 90],
         "category": "Effusion", "image": "img/a.png", "split": "test", "modality": "cxr"},
        {"id": 7, "phrase": "nodule", "boxes": [5, 5, 6.5, 9]},
    ]
    path = write_lines(tmp_path / "gt.jsonl", [json.dumps(records[0]), "", "  ", json.dumps(records[1])])
    loaded = load_jsonl(path)
    assert loaded.name == "jsonl" and loaded.skipped == []
    first, second = loaded.samples
    assert first.id == "a" and first.image_size == (100, 90) and first.category == "Effusion"
    assert first.image == "img/a.png" and first.split == "test" and dict(first.extra) == {"modality": "cxr"}
    np.testing.assert_array_equal(first.boxes, [[1, 2, 30, 40], [50, 60, 70, 80]])
    assert second.id == "7" and second.image_size is None and second.category is None and second.split is None
    np.testing.assert_array_equal(second.boxes, [[5, 5, 6.5, 9]])


@pytest.mark.parametrize(
    ("line", "field", "value", "expected"),
    [
        ('{"id": "a", "phrase": "p", "boxes": [0, 0, 1, 1]', None, None, "a JSON object"),
        ('[1, 2]', None, [1, 2], "a JSON object"),
        ('{"phrase": "p", "boxes": [0, 0, 1, 1]}', "id", None, "non-empty string or an integer"),
        ('{"id": true, "phrase": "p", "boxes": [0, 0, 1, 1]}', "id", True, "non-empty string or an integer"),
        ('{"id": "a", "phrase": " ", "boxes": [0, 0, 1, 1]}', "phrase", " ", "non-empty string"),
        ('{"id": "a", "phrase": "p"}', "boxes", None, "field missing"),
        ('{"id": "a", "phrase": "p", "boxes": []}', "boxes", [], "non-empty list"),
        ('{"id": "a", "phrase": "p", "boxes": [[0, 0, 1]]}', "boxes[0]", [0, 0, 1], "4 numbers"),
        ('{"id": "a", "phrase": "p", "boxes": [[0, 0, 1, "2"]]}', "boxes[0]", [0, 0, 1, "2"], "4 numbers"),
        ('{"id": "a", "phrase": "p", "boxes": [[0, 0, 1, NaN]]}', "boxes[0]", None, "finite numbers"),
        ('{"id": "a", "phrase": "p", "boxes": [[0, 0, 1, 1], [5, 0, 4, 1]]}', "boxes[1]", [5, 0, 4, 1], "x2 >= x1"),
        ('{"id": "a", "phrase": "p", "boxes": [[-1, 0, 4, 1]]}', "boxes[0]", [-1, 0, 4, 1], ">= 0"),
        ('{"id": "a", "phrase": "p", "boxes": [[0, 0, 11, 5]], "image_size": [10, 10]}', "boxes[0]", [0, 0, 11, 5],
         "inside the 10x10 image"),
        ('{"id": "a", "phrase": "p", "boxes": [[0, 0, 1, 1]], "image_size": [10]}', "image_size", [10], "[W, H]"),
        ('{"id": "a", "phrase": "p", "boxes": [[0, 0, 1, 1]], "image_size": [10, 0]}', "image_size[1]", 0,
         "positive integer"),
        ('{"id": "a", "phrase": "p", "boxes": [[0, 0, 1, 1]], "category": 3}', "category", 3, "a string or null"),
    ],
)
def test_jsonl_errors_name_file_line_field_value(tmp_path, line, field, value, expected):
    path = write_lines(tmp_path / "gt.jsonl", ['{"id": "ok", "phrase": "p", "boxes": [0, 0, 1, 1]}', line])
    with pytest.raises(DataError) as info:
        load_jsonl(path)
    error = info.value
    assert (error.path, error.line, error.field) == (str(path), 2, field)
    if value is not None:
        assert error.value == value
    assert expected in error.expected
    assert f"{path}:2" in str(error)


def test_jsonl_duplicate_id_is_an_error_naming_both_lines(tmp_path):
    row = '{"id": "a", "phrase": "p", "boxes": [0, 0, 1, 1]}'
    path = write_lines(tmp_path / "gt.jsonl", [row, '{"id": "b", "phrase": "p", "boxes": [0, 0, 1, 1]}', row])
    with pytest.raises(DataError, match=r"gt.jsonl:3: field 'id' = 'a': expected a unique id \(already used on line 1"):
        load_jsonl(path)
    loaded = load_jsonl(path, on_error="skip")
    assert [s.id for s in loaded.samples] == ["a", "b"]
    assert [(r.line, "unique id" in r.reason) for r in loaded.skipped] == [(3, True)]


def test_jsonl_skip_records_every_bad_line(tmp_path):
    lines = [
        '{"id": "a", "phrase": "p", "boxes": [0, 0, 1, 1]}',
        "not json",
        '{"id": "b", "phrase": "p", "boxes": [3, 0, 1, 1]}',
        '{"id": "c", "phrase": "p", "boxes": [0, 0, 1, 1]}',
    ]
    loaded = load_jsonl(write_lines(tmp_path / "gt.jsonl", lines), on_error="skip")
    assert [s.id for s in loaded.samples] == ["a", "c"]
    assert [r.line for r in loaded.skipped] == [2, 3]
    with pytest.raises(ValueError, match="on_error"):
        load_jsonl(tmp_path / "gt.jsonl", on_error="ignore")


def test_jsonl_split_filter(tmp_path):
    lines = [json.dumps({"id": str(i), "phrase": "p", "boxes": [0, 0, 1, 1], "split": s})
             for i, s in enumerate(["train", "test", "test", None])]
    path = write_lines(tmp_path / "gt.jsonl", lines)
    assert [s.id for s in load_jsonl(path, split="test").samples] == ["1", "2"]
    assert len(load_jsonl(path)) == 4
    with pytest.raises(DataError, match=r"'split' = 'val': expected one of the splits in the file: \['test', 'train"):
        load_jsonl(path, split="val")


def test_sample_from_record_locates_errors_it_is_given():
    record = {"id": 3, "phrase": "p", "boxes": [[0, 0, 2, 2]], "completion": "x"}
    sample = sample_from_record(record, path="preds.jsonl", line=9)
    assert sample.id == "3" and dict(sample.extra) == {"completion": "x"}
    with pytest.raises(DataError, match=r"^preds.jsonl:9: field 'boxes\[0\]'"):
        sample_from_record({"id": 3, "phrase": "p", "boxes": [[2, 0, 0, 2]]}, path="preds.jsonl", line=9)
    with pytest.raises(DataError, match=r"^<input>: row = 'x': expected a JSON object"):
        sample_from_record("x", path=None, line=None)


corner_boxes = st.lists(
    st.tuples(*[st.floats(0, 500, allow_nan=False)] * 4).map(
        lambda v: [min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3])]
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(boxes=corner_boxes, size=st.tuples(st.integers(1, 600), st.integers(1, 600)))
def test_jsonl_boxes_load_exactly_when_inside_the_image(tmp_path_factory, boxes, size):
    path = tmp_path_factory.mktemp("j") / "gt.jsonl"
    write_lines(path, [json.dumps({"id": "a", "phrase": "p", "boxes": boxes, "image_size": list(size)})])
    inside = all(b[2] <= size[0] and b[3] <= size[1] for b in boxes)
    if inside:
        np.testing.assert_array_equal(load_jsonl(path).samples[0].boxes, np.array(boxes))
    else:
        with pytest.raises(DataError, match="inside the"):
            load_jsonl(path)


# ---------------------------------------------------------------- mscxr (synthetic rows with the release schema)

MSCXR_HEADER = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height"]
# (dicom_id, category, label_text, x, y, w, h, split); image 2000x2500 unless the test changes it
MSCXR_BOXES = [
    ("d1", "Pneumonia", "patchy opacity, right base", 100, 200, 300, 400, "train"),
    ("d1", "Pneumonia", "patchy opacity, right base", 900, 210, 200, 300, "train"),
    ("d1", "Pneumothorax", "small left apical pneumothorax", 1500, 50, 300, 250, "train"),
    ("d2", "Cardiomegaly", "enlarged heart", 600, 900, 800, 700, "test"),
    ("d3", "Edema", "mild edema", 10, 20, 1990, 2480, "val"),
]


def mscxr_rows(boxes=MSCXR_BOXES, with_split=True, size=(2000, 2500)) -> list[list[object]]:
    rows = []
    for dicom, category, text, x, y, w, h, split in boxes:
        row = [dicom, category, text, f"files/p10/{dicom}.jpg", x, y, w, h, *size]
        rows.append(row + [split] if with_split else row)
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_mscxr(path: Path, rows=None, with_split=True) -> Path:
    header = MSCXR_HEADER + ["split"] if with_split else MSCXR_HEADER
    return write_csv(path, header, mscxr_rows(with_split=with_split) if rows is None else rows)


def test_mscxr_groups_boxes_of_one_phrase_and_image(tmp_path):
    loaded = load_mscxr(write_mscxr(tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv"))
    assert loaded.name == "mscxr" and len(loaded) == 4 and loaded.skipped == []
    first = loaded.samples[0]
    assert first.id == mscxr_sample_id("d1", "patchy opacity, right base")
    assert first.phrase == "patchy opacity, right base" and first.category == "Pneumonia"
    assert first.image == "files/p10/d1.jpg" and first.image_size == (2000, 2500) and first.split == "train"
    assert dict(first.extra) == {"dicom_id": "d1"}
    np.testing.assert_array_equal(first.boxes, [[100, 200, 400, 600], [900, 210, 1100, 510]])
    np.testing.assert_array_equal(loaded.samples[3].boxes, [[10, 20, 2000, 2500]])


def test_mscxr_id_rule_is_documented_value():
    assert mscxr_sample_id("d1", " enlarged heart ") == mscxr_sample_id("d1", "enlarged heart")
    assert mscxr_sample_id("d1", "enlarged heart").startswith("d1:") and len(mscxr_sample_id("d1", "x")) == 3 + 12


@pytest.mark.parametrize("seed", range(5))
def test_mscxr_ids_are_stable_under_shuffled_rows_and_unique(tmp_path, seed):
    many = [("d9", "Opacity", f"opacity number {i}", i, i, 5, 5, "test") for i in range(40)] + list(MSCXR_BOXES)
    reference = load_mscxr(write_mscxr(tmp_path / "a.csv", mscxr_rows(many)))
    shuffled = mscxr_rows(many)
    random.Random(seed).shuffle(shuffled)
    again = load_mscxr(write_mscxr(tmp_path / "b.csv", shuffled))
    ids = [s.id for s in reference.samples]
    assert len(set(ids)) == len(ids) == 44
    by_id = {s.id: s for s in again.samples}
    assert set(by_id) == set(ids)
    for sample in reference.samples:
        other = by_id[sample.id]
        assert other.phrase == sample.phrase
        assert sorted(map(tuple, other.boxes)) == sorted(map(tuple, sample.boxes))


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [(8, 1999, "image_width,image_height"), (3, "files/other.jpg", "path"), (1, "Consolidation", "category_name"),
     (10, "test", "split")],
)
def test_mscxr_boxes_of_one_sample_must_agree(tmp_path, column, value, field):
    rows = mscxr_rows()
    rows[1][column] = value
    path = write_mscxr(tmp_path / "m.csv", rows)
    with pytest.raises(DataError) as info:
        load_mscxr(path)
    assert (info.value.line, info.value.field) == (3, field)
    assert "as on line 2" in info.value.expected


@pytest.mark.parametrize(
    ("column", "value", "field", "expected"),
    [(4, "abc", "x", "a number"), (7, "inf", "h", "finite"), (8, "0", "image_width", "positive integer"),
     (9, "12.5", "image_height", "positive integer"), (6, "-3", "x,y,w,h", "w >= 0"),
     (6, "1950", "x,y,w,h", "inside the 2000x2500 image"), (0, "", "dicom_id", "non-empty"),
     (2, " ", "label_text", "non-empty"), (10, "", "split", "split name")],
)
def test_mscxr_row_errors_name_line_field_value(tmp_path, column, value, field, expected):
    rows = mscxr_rows()
    rows[3][column] = value
    with pytest.raises(DataError) as info:
        load_mscxr(write_mscxr(tmp_path / "m.csv", rows))
    assert (info.value.line, info.value.field) == (5, field)
    assert expected in info.value.expected


def test_mscxr_header_and_field_count_errors(tmp_path):
    path = write_csv(tmp_path / "m.csv", MSCXR_HEADER[:-1], [])
    with pytest.raises(DataError, match=r"m.csv:1: field 'header'.*missing \['image_height'\]"):
        load_mscxr(path)
    rows = mscxr_rows()
    rows[2] = rows[2][:5]
    with pytest.raises(DataError, match=r"m.csv:4: row = .*expected 11 fields"):
        load_mscxr(write_mscxr(tmp_path / "m.csv", rows))


def test_mscxr_skip_drops_the_whole_sample_of_a_bad_row(tmp_path):
    rows = mscxr_rows()
    rows[1][4] = "oops"  # second box of the d1 pneumonia sample
    loaded = load_mscxr(write_mscxr(tmp_path / "m.csv", rows), on_error="skip")
    assert [s.phrase for s in loaded.samples] == ["small left apical pneumothorax", "enlarged heart", "mild edema"]
    assert sorted(r.line for r in loaded.skipped) == [2, 3]
    dropped = [r.reason for r in loaded.skipped if r.line == 2]
    assert dropped[0].startswith("line 2: sample ('d1',") and dropped[0].endswith("line 3 is bad")


def test_mscxr_splits(tmp_path):
    path = write_mscxr(tmp_path / "m.csv")
    assert [s.phrase for s in load_mscxr(path, split="test").samples] == ["enlarged heart"]
    assert len(load_mscxr(path, split="train")) == 2
    with pytest.raises(DataError, match="one of the splits in the file"):
        load_mscxr(path, split="validation")
    v100 = write_mscxr(tmp_path / "v100.csv", with_split=False)
    assert all(s.split is None for s in load_mscxr(v100).samples)
    with pytest.raises(DataError, match="split column"):
        load_mscxr(v100, split="test")


def test_mscxr_id_collision_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(mscxr_module, "mscxr_sample_id", lambda dicom_id, text: dicom_id)
    with pytest.raises(DataError, match="whose id differs"):
        load_mscxr(write_mscxr(tmp_path / "m.csv"))


def mscxr_coco(phrase_key="label_text") -> dict:
    images, annotations, categories = [], [], {}
    for dicom, category, text, x, y, w, h, split in MSCXR_BOXES:
        if not any(image["dicom_id"] == dicom for image in images):
            images.append({"id": len(images) + 1, "file_name": f"files/p10/{dicom}.jpg", "width": 2000,
                           "height": 2500, "dicom_id": dicom, "split": split})
        image_id = next(image["id"] for image in images if image["dicom_id"] == dicom)
        category_id = categories.setdefault(category, len(categories) + 1)
        annotations.append({"id": len(annotations), "image_id": image_id, "category_id": category_id,
                            "bbox": [x, y, w, h], phrase_key: text})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": name} for name, i in categories.items()]}


@pytest.mark.parametrize("phrase_key", ["label_text", "phrase", "caption"])
def test_mscxr_coco_json_matches_the_csv(tmp_path, phrase_key):
    from_csv = load_mscxr(write_mscxr(tmp_path / "m.csv")).samples
    json_path = tmp_path / "m.json"
    json_path.write_text(json.dumps(mscxr_coco(phrase_key)))
    from_json = load_mscxr(json_path).samples
    assert [(s.id, s.phrase, s.category, s.image, s.image_size, s.split) for s in from_json] == [
        (s.id, s.phrase, s.category, s.image, s.image_size, s.split) for s in from_csv
    ]
    for a, b in zip(from_json, from_csv):
        np.testing.assert_array_equal(a.boxes, b.boxes)


def test_mscxr_coco_json_errors(tmp_path):
    document = mscxr_coco()
    document["annotations"][3]["bbox"] = [1, 2, 3]
    document["annotations"][4]["image_id"] = 99
    document["annotations"][0]["split"] = 5
    path = tmp_path / "m.json"
    path.write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"m.json: field 'annotations\[0\].split' = 5: expected a split name"):
        load_mscxr(path)
    loaded = load_mscxr(path, on_error="skip")
    assert [s.phrase for s in loaded.samples] == ["small left apical pneumothorax"]
    reasons = [r.reason.removeprefix(f"{path}: ") for r in loaded.skipped]
    assert [reason[:30] for reason in reasons] == [
        "field 'annotations[0].split' =", "field 'annotations[3].bbox' = ", "field 'annotations[4].image_id",
        "annotations[1]: sample ('d1', ",
    ]
    assert reasons[-1].endswith("dropped, annotations[0] is bad")
    path.write_text(json.dumps({"images": [], "categories": [], "annotations": {}}))
    with pytest.raises(DataError, match="field 'annotations' = {}: expected a list"):
        load_mscxr(path)


def test_mscxr_json_image_comes_from_path_not_file_name(tmp_path):
    # Issue 14: the COCO JSON's images carry the release's `path` (the CSV's `path` column, the MIMIC-CXR image);
    # `file_name` is only a fallback. Synthetic rows only (MS-CXR is credentialed data).
    document = mscxr_coco()
    for image in document["images"]:
        image["path"] = image["file_name"]
        image["file_name"] = f"{image['dicom_id']}.png"  # a name that is not where the image lies
        del image["dicom_id"]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(document))
    from_csv = load_mscxr(write_mscxr(tmp_path / "m.csv")).samples
    from_json = load_mscxr(path).samples
    assert [(s.id, s.image) for s in from_json] == [(s.id, s.image) for s in from_csv]
    assert from_json[0].image == "files/p10/d1.jpg" and from_json[0].extra["dicom_id"] == "d1"
    document["images"][0]["path"] = ""
    path.write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"images\[0\].path"):
        load_mscxr(path)


def test_mscxr_json_float_boxes_are_kept(tmp_path):
    # The JSON keeps the annotators' float boxes; the CSV rounds them to integers (up to ~1.7 px apart).
    document = mscxr_coco()
    document["annotations"][3]["bbox"] = [600.4, 899.6, 800.7, 700.2]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(document))
    sample = next(s for s in load_mscxr(path).samples if s.phrase == "enlarged heart")
    np.testing.assert_allclose(sample.boxes, [[600.4, 899.6, 1401.1, 1599.8]])


CASE_VARIANTS = MSCXR_BOXES + [
    ("d1", "Pneumonia", "Patchy opacity, right base", 120, 220, 280, 380, "train"),  # case differs only
    ("d1", "Pneumonia", "patchy  opacity, right base ", 130, 230, 270, 370, "train"),  # spaces differ
    ("d2", "Cardiomegaly", "Enlarged heart", 610, 910, 790, 690, "test"),
    ("d3", "Edema", "Mild Edema", 10, 20, 1990, 2480, "val"),
    ("d2", "Pneumonia", "mild edema", 0, 0, 10, 10, "test"),  # same text on another image: never merged
]


def test_mscxr_phrase_grouping_across_letter_case(tmp_path):
    path = write_mscxr(tmp_path / "m.csv", rows=mscxr_rows(CASE_VARIANTS))
    exact = load_mscxr(path)
    folded = load_mscxr(path, phrase_case="fold")
    # the synthetic file has 10 rows: 9 samples grouped exactly, 5 with case and spaces folded (docs/datasets.md)
    assert (len(exact), len(folded)) == (9, 5)
    patchy = folded.samples[0]
    assert patchy.phrase == "patchy opacity, right base" and len(patchy.boxes) == 4  # the first row's text
    assert patchy.id == mscxr_sample_id("d1", "patchy opacity, right base")
    assert [s.id for s in exact.samples[:1]] == [patchy.id]  # exact ids are unchanged
    with pytest.raises(ValueError, match="phrase_case"):
        load_mscxr(path, phrase_case="lower")


def test_mscxr_release_folder_picks_newest_csv_then_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="MS_CXR_Local_Alignment_v1.1.0.csv"):
        load_mscxr(tmp_path)
    (tmp_path / "MS_CXR_Local_Alignment_v1.0.0.json").write_text(json.dumps(mscxr_coco()))
    assert load_mscxr(tmp_path).samples[0].split == "train"  # the JSON carries image splits
    write_mscxr(tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv", with_split=False)
    assert load_mscxr(tmp_path).samples[0].split is None
    write_mscxr(tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv")
    assert load_mscxr(tmp_path).samples[0].split == "train"
    with pytest.raises(FileNotFoundError, match="no such"):
        load_mscxr(tmp_path / "missing.csv")


# ---------------------------------------------------------------- chestxray8

CXR8_ROWS = [
    "00000001_000.png,Atelectasis,225.084745762712,547.019216763771,86.7796610169491,79.1864406779661",
    "00000001_000.png,Infiltrate,10,20,30,40",
    "00000002_000.png,Effusion,686.101694915254,131.543498411017,185.491525423729,313.491525423729",
    "00000001_000.png,Atelectasis,500,500,100,100",
]


def test_chestxray8_synthetic_file_groups_same_image_and_label(tmp_path):
    path = write_lines(tmp_path / "b.csv", ["Image Index,Finding Label,Bbox [x,y,w,h]", *CXR8_ROWS])
    loaded = load_chestxray8(path)
    assert [s.id for s in loaded.samples] == ["00000001_000.png:Atelectasis", "00000001_000.png:Infiltrate",
                                              "00000002_000.png:Effusion"]
    first = loaded.samples[0]
    assert first.image == "00000001_000.png" and first.image_size == (1024, 1024) and first.split == "test"
    np.testing.assert_allclose(first.boxes, [[225.084745762712, 547.019216763771, 311.864406779661, 626.205657339737],
                                             [500, 500, 600, 600]])
    assert loaded.samples[1].category == "Infiltrate" and loaded.samples[1].phrase == "Infiltrate"


def test_chestxray8_header_variants_and_truncated_floats_give_the_same_samples(tmp_path):
    plain = load_chestxray8(write_lines(tmp_path / "a.csv", ["Image Index,Finding Label,Bbox [x,y,w,h]", *CXR8_ROWS]))
    nih = load_chestxray8(write_lines(tmp_path / "b.csv", ["Image Index,Finding Label,Bbox [x,y,w,h],,,", *CXR8_ROWS]))
    renamed = load_chestxray8(write_lines(tmp_path / "c.csv", ["image,label,x,y,w,h", *CXR8_ROWS]))
    headerless = load_chestxray8(write_lines(tmp_path / "d.csv", CXR8_ROWS))
    for other in (nih, renamed, headerless):
        assert [s.id for s in other.samples] == [s.id for s in plain.samples]
        for a, b in zip(other.samples, plain.samples):
            np.testing.assert_array_equal(a.boxes, b.boxes)
    truncated = [",".join(cells[:2] + [f"{float(v):.2f}"[:-1] for v in cells[2:]])
                 for cells in (row.split(",") for row in CXR8_ROWS)]
    assert truncated[0] == "00000001_000.png,Atelectasis,225.0,547.0,86.7,79.1"
    cut = load_chestxray8(write_lines(tmp_path / "e.csv", ["Image Index,Finding Label,Bbox [x,y,w,h]", *truncated]))
    np.testing.assert_allclose(cut.samples[0].boxes[0], [225.0, 547.0, 311.7, 626.1])


def test_chestxray8_spurious_row_is_an_error_with_its_line_or_skipped(tmp_path):
    lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,", CXR8_ROWS[0], "", ",,,,,",
             "Image Index,Finding Label,Bbox [x,y,w,h],,,", *CXR8_ROWS[1:]]
    path = write_lines(tmp_path / "b.csv", lines)
    with pytest.raises(DataError) as info:
        load_chestxray8(path)
    assert (info.value.line, info.value.field, info.value.value) == (5, "x (field 2)", "Bbox [x")
    loaded = load_chestxray8(path, on_error="skip")
    assert len(loaded) == 3 and [r.line for r in loaded.skipped] == [5]


@pytest.mark.parametrize(
    ("row", "field", "expected"),
    [("a.png,Mass,1,2,3", None, "6 fields"), ("a.png,Mass,1,2,3,4,extra", None, "after the sixth empty"),
     (",Mass,1,2,3,4", "Image Index (field 0)", "non-empty"), ("a.png,Mass,1,2,nan,4", "w (field 4)", "finite"),
     ("a.png,Mass,1,2,-3,4", "w, h", "w >= 0"), ("a.png,Mass,1000,2,30,4", "x, y, w, h", "inside the 1024x1024 image")],
)
def test_chestxray8_row_errors(tmp_path, row, field, expected):
    path = write_lines(tmp_path / "b.csv", ["Image Index,Finding Label,Bbox [x,y,w,h]", CXR8_ROWS[0], row])
    with pytest.raises(DataError) as info:
        load_chestxray8(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 3, field)
    assert expected in info.value.expected


def test_chestxray8_bad_box_drops_its_whole_sample_under_skip(tmp_path):
    rows = [*CXR8_ROWS, "00000001_000.png,Atelectasis,1,2,3,x"]
    loaded = load_chestxray8(write_lines(tmp_path / "b.csv", ["h,h,h", *rows]), on_error="skip")
    assert [s.id for s in loaded.samples] == ["00000001_000.png:Infiltrate", "00000002_000.png:Effusion"]
    assert sorted(r.line for r in loaded.skipped) == [2, 5, 6]


def test_chestxray8_phrase_template_and_split(tmp_path):
    assert chestxray8_phrase("Infiltrate") == "Infiltrate"
    natural = chestxray8_phrase("Infiltrate", "Findings suggesting {finding}.")
    assert natural == "Findings suggesting pulmonary infiltrate."
    assert chestxray8_phrase("Effusion", "{label_lower} ({label})") == "effusion (Effusion)"
    assert chestxray8_phrase("Hernia", "{finding}") == "hernia"
    path = write_lines(tmp_path / "b.csv", CXR8_ROWS)
    loaded = load_chestxray8(path, phrase_template="Findings suggesting {finding}.", split="test")
    assert loaded.samples[1].phrase == "Findings suggesting pulmonary infiltrate."
    assert loaded.samples[1].category == "Infiltrate"
    with pytest.raises(ValueError, match=r"phrase_template = '\{disease\}'"):
        load_chestxray8(path, phrase_template="{disease}")
    with pytest.raises(ValueError, match="expected None or 'test'"):
        load_chestxray8(path, split="train")


@pytest.mark.skipif(not REAL_BBOX_LIST.is_file(), reason=f"public ChestX-ray8 box list not found at {REAL_BBOX_LIST}")
def test_chestxray8_public_box_list():
    loaded = load_chestxray8(REAL_BBOX_LIST)
    assert loaded.skipped == []
    assert len(loaded) == 984 and sum(len(s.boxes) for s in loaded.samples) == 984
    assert len({s.image for s in loaded.samples}) == 880
    assert len({s.id for s in loaded.samples}) == 984
    assert Counter(s.category for s in loaded.samples) == {
        "Atelectasis": 180, "Cardiomegaly": 146, "Effusion": 153, "Infiltrate": 123,
        "Mass": 85, "Nodule": 79, "Pneumonia": 120, "Pneumothorax": 98,
    }
    boxes = np.concatenate([s.boxes for s in loaded.samples])
    assert (boxes >= 0).all() and (boxes <= 1024).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
