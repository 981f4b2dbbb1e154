"""M3D-RefSeg loader on small synthetic NIfTI cases written to tmp_path."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

nib = pytest.importorskip("nibabel")

from medground_eval.datasets import DataError, get_loader  # noqa: E402
from medground_eval.datasets.m3d_refseg import (  # noqa: E402
    COLUMNS,
    largest_slice_box,
    load_m3d_refseg,
    mask_box,
    voxel_box_to_mm,
)

SHAPE = (20, 24, 16)
# Flipped x, anisotropic spacing, translated: a non-identity affine (axis codes L, A, S).
AFFINE_0 = np.array([[-0.8, 0, 0, 100.0], [0, 0.9, 0, -50.0], [0, 0, 2.5, 10.0], [0, 0, 0, 1]])
AFFINE_1 = np.array([[0.7, 0, 0, 0.0], [0, 0.7, 0, 0.0], [0, 0, 3.0, -20.0], [0, 0, 0, 1]])


def write_case(root: Path, case: str, regions: dict[int, list[tuple[slice, slice, slice]]],
               texts: dict[str, str], affine: np.ndarray = AFFINE_0) -> None:
    """One case folder: a CT, a label mask (each id painted on its blocks) and text.json."""
    folder = root / case
    folder.mkdir(parents=True)
    ct = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    nib.save(nib.Nifti1Image(ct, affine), folder / "ct.nii.gz")
    mask = np.zeros(SHAPE, dtype=np.uint8)
    for label, blocks in regions.items():
        for block in blocks:
            mask[block] = label
    nib.save(nib.Nifti1Image(mask, affine), folder / "mask.nii.gz")
    (folder / "text.json").write_text(json.dumps(texts), encoding="utf-8")


def write_listing(root: Path, split: str, rows: list[tuple[str, object, str, str]]) -> None:
    """``rows``: (case, Mask_ID, Question_Type, Question); Answer is derived."""
    with (root / f"M3D_RefSeg_{split}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for case, mask_id, qtype, question in rows:
            writer.writerow([f"{case}/ct.nii.gz", f"{case}/mask.nii.gz", mask_id, qtype, question, "It is [SEG]."])


TEST_ROWS = [
    ("s0000", 1, "0", "Please segment where the liver lesion is in this image."),
    ("s0000", 1, "1", "Where is the hypodense lesion, with a comma?"),
    ("s0000", 2, "0", "Please segment the kidney stones."),
]
TRAIN_ROWS = [("s0001", 1, "0", "Please segment the nodule.")]


@pytest.fixture
def release(tmp_path: Path) -> Path:
    write_case(
        tmp_path, "s0000",
        {
            1: [np.s_[2:5, 3:9, 4:7]],
            # two components: 2x2 voxels on z 0..1, 3x4 voxels on z 10..15
            2: [np.s_[10:12, 1:3, 0:2], np.s_[15:18, 20:24, 10:16]],
        },
        {"1": "  A hypodense lesion in the right liver lobe. ", "2": "Stones in both kidneys.", "3": "Absent region."},
    )
    write_case(tmp_path, "s0001", {1: [np.s_[0:20, 0:1, 15:16]]}, {"1": "A nodule."}, AFFINE_1)
    write_listing(tmp_path, "test", TEST_ROWS)
    write_listing(tmp_path, "train", TRAIN_ROWS)
    write_listing(tmp_path, "all", TRAIN_ROWS + TEST_ROWS)
    return tmp_path


def test_samples_boxes_and_fields(release: Path) -> None:
    data = load_m3d_refseg(release)
    assert [s.category for s in data.samples] == ["0", "1", "0"]
    first, second, stones = data.samples
    np.testing.assert_array_equal(first.boxes, [[2, 3, 4, 5, 9, 7]])
    np.testing.assert_array_equal(second.boxes, first.boxes)
    # one box for the union of both components
    np.testing.assert_array_equal(stones.boxes, [[10, 1, 0, 18, 24, 16]])
    assert first.dims == 3
    assert first.phrase == "A hypodense lesion in the right liver lobe."
    assert first.image == "s0000/ct.nii.gz" and first.image_size == SHAPE and first.split == "test"
    assert first.extra["question"] == TEST_ROWS[0][3] and first.extra["answer"] == "It is [SEG]."
    assert first.extra["mask_id"] == 1 and first.extra["case"] == "s0000"
    assert first.extra["mask"] == "s0000/mask.nii.gz" and first.extra["question_type"] == "0"
    np.testing.assert_allclose(first.extra["affine"], AFFINE_0, rtol=1e-6)  # NIfTI stores float32
    assert first.extra["axcodes"] == ("L", "A", "S")
    assert data.skipped == []


def test_full_box_volume_is_voxel_count(release: Path) -> None:
    box = load_m3d_refseg(release).samples[0].boxes[0]
    assert np.prod(box[3:] - box[:3]) == 3 * 6 * 3


def test_views(release: Path) -> None:
    first, _, stones = load_m3d_refseg(release).samples
    assert first.extra["largest_slice"] == (4, [2, 3, 5, 9])  # all slices tie: lowest k
    assert first.extra["axial_projection_box"] == [2, 3, 5, 9]
    assert stones.extra["largest_slice"] == (10, [15, 20, 18, 24])  # 12 voxels per slice beats 4
    assert stones.extra["axial_projection_box"] == [10, 1, 18, 24]
    plain = load_m3d_refseg(release, with_views=False).samples[0]
    assert "largest_slice" not in plain.extra and "axial_projection_box" not in plain.extra


def test_ids_unique_stable_across_listings(release: Path) -> None:
    test = load_m3d_refseg(release, "test")
    everything = load_m3d_refseg(release, "all")
    ids = [s.id for s in test.samples]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(("s0000/1/", "s0000/2/")) for i in ids)
    assert {s.id: s.phrase for s in test.samples}.items() <= {s.id: s.phrase for s in everything.samples}.items()


def test_repeated_question_gets_suffix(release: Path) -> None:
    write_listing(release, "test", [TEST_ROWS[0], TEST_ROWS[0], TEST_ROWS[0]])
    ids = [s.id for s in load_m3d_refseg(release).samples]
    assert ids[1] == ids[0] + "~2" and ids[2] == ids[0] + "~3"


def test_split_selection(release: Path) -> None:
    assert [s.extra["case"] for s in load_m3d_refseg(release, "train").samples] == ["s0001"]
    assert len(load_m3d_refseg(release, "test")) == 3
    assert [s.split for s in load_m3d_refseg(release, split=None).samples] == ["test"] * 3
    everything = load_m3d_refseg(release, "all")
    assert len(everything) == 4 and {s.split for s in everything.samples} == {"all"}
    with pytest.raises(ValueError, match="'val'"):
        load_m3d_refseg(release, "val")  # type: ignore[arg-type]


def test_registered() -> None:
    assert get_loader("m3d-refseg") is load_m3d_refseg


def test_each_mask_file_read_once(release: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = nib.load

    def counting_load(path, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(Path(path).name)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(nib, "load", counting_load)
    load_m3d_refseg(release, "all")
    assert calls.count("mask.nii.gz") == 2 and calls.count("ct.nii.gz") == 2


def test_empty_region_names_row_field_value(release: Path) -> None:
    write_listing(release, "test", [*TEST_ROWS, ("s0000", 3, "0", "Segment the absent region.")])
    with pytest.raises(DataError) as caught:
        load_m3d_refseg(release)
    error = caught.value
    assert (error.path, error.line, error.field, error.value) == (str(release / "M3D_RefSeg_test.csv"), 5, "Mask_ID", 3)
    assert "mask.nii.gz" in str(error)


def test_skip_counts_bad_rows(release: Path) -> None:
    rows = [*TEST_ROWS, ("s0000", 3, "0", "absent"), ("s0000", 4, "0", "no text"), ("s0000", "x", "0", "bad id"),
            ("s0000", 0, "0", "background")]
    write_listing(release, "test", rows)
    data = load_m3d_refseg(release, on_error="skip")
    assert len(data) == 3
    assert [s.line for s in data.skipped] == [5, 6, 7, 8]
    assert "no voxel" in data.skipped[0].reason and "text.json" in data.skipped[1].reason
    assert "'x'" in data.skipped[2].reason and "'0'" in data.skipped[3].reason


def test_rows_with_too_few_or_too_many_cells_name_their_line(release: Path) -> None:
    listing = release / "M3D_RefSeg_test.csv"
    good = "s0000/ct.nii.gz,s0000/mask.nii.gz,1,0,Where is the lesion?,It is [SEG].\n"
    listing.write_text(",".join(COLUMNS) + "\n" + good + "s0000/ct.nii.gz,s0000/mask.nii.gz\n"
                       + good.replace("Where is", "Where, unquoted, is"), encoding="utf-8")
    with pytest.raises(DataError, match="fewer cells than the header") as caught:
        load_m3d_refseg(release)
    assert (caught.value.path, caught.value.line) == (str(listing), 3)
    data = load_m3d_refseg(release, on_error="skip")
    assert len(data) == 1 and [s.line for s in data.skipped] == [3, 4]
    assert "more cells than the header" in data.skipped[1].reason


def test_listing_with_a_byte_order_mark_reads(release: Path) -> None:
    listing = release / "M3D_RefSeg_test.csv"
    listing.write_bytes(b"\xef\xbb\xbf" + listing.read_bytes())
    assert len(load_m3d_refseg(release)) == len(TEST_ROWS)


@pytest.mark.parametrize(("name", "field"), [("ct.nii.gz", "Image"), ("mask.nii.gz", "Mask"), ("text.json", "Mask")])
def test_missing_file_names_path(release: Path, name: str, field: str) -> None:
    (release / "s0000" / name).unlink()
    with pytest.raises(DataError, match=str(release / "s0000" / name)) as caught:
        load_m3d_refseg(release)
    assert (caught.value.line, caught.value.field) == (2, field)
    skipped = load_m3d_refseg(release, on_error="skip")
    assert len(skipped) == 0 and len(skipped.skipped) == 3


def test_unreadable_and_mismatched_volumes(release: Path) -> None:
    (release / "s0000" / "mask.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(DataError, match="readable NIfTI"):
        load_m3d_refseg(release)
    noise = np.random.default_rng(0).integers(0, 250, SHAPE, dtype=np.uint8)  # compresses poorly
    nib.save(nib.Nifti1Image(noise, AFFINE_0), release / "s0000" / "mask.nii.gz")
    whole = (release / "s0000" / "mask.nii.gz").read_bytes()
    (release / "s0000" / "mask.nii.gz").write_bytes(whole[: len(whole) // 2])  # header intact, data truncated
    with pytest.raises(DataError, match="readable NIfTI"):
        load_m3d_refseg(release)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), AFFINE_0), release / "s0000" / "mask.nii.gz")
    with pytest.raises(DataError, match=r"CT's shape \(20, 24, 16\)"):
        load_m3d_refseg(release)


def test_missing_listing_and_columns(release: Path) -> None:
    (release / "M3D_RefSeg_train.csv").unlink()
    with pytest.raises(FileNotFoundError, match="M3D_RefSeg_train.csv"):
        load_m3d_refseg(release, "train", on_error="skip")
    (release / "M3D_RefSeg_test.csv").write_text("Image,Mask,Question\n", encoding="utf-8")
    with pytest.raises(DataError, match="Mask_ID"):
        load_m3d_refseg(release, on_error="skip")


def test_missing_nibabel_says_how_to_install(release: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(ImportError, match=r"pip install 'medground-eval\[m3d\]'"):
        load_m3d_refseg(release)


def test_voxel_box_to_mm_values() -> None:
    affine = np.array([[2.0, 0, 0, 10], [0, -3.0, 0, 20], [0, 0, 4.0, 30], [0, 0, 0, 1]])
    # voxel (0, 0, 0) alone: centre (10, 20, 30), half a voxel each way; y flipped by the affine
    np.testing.assert_allclose(voxel_box_to_mm([0, 0, 0, 1, 1, 1], affine), [9, 18.5, 28, 11, 21.5, 32])
    boxes = np.array([[0, 0, 0, 1, 1, 1], [2, 3, 4, 5, 9, 7]], dtype=float)
    mm = voxel_box_to_mm(boxes, affine)
    assert mm.shape == (2, 6)
    np.testing.assert_allclose(np.prod(mm[:, 3:] - mm[:, :3], axis=1), np.prod(boxes[:, 3:] - boxes[:, :3], axis=1) * 24)


def test_voxel_box_to_mm_oblique_encloses_voxel_centres() -> None:
    angle = np.deg2rad(30)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine[:3, 3] = [5, -5, 1]
    box = np.array([2, 3, 4, 5, 9, 7])
    mm = voxel_box_to_mm(box, affine)
    centres = np.stack(np.meshgrid(*[np.arange(lo, hi) for lo, hi in zip(box[:3], box[3:])], indexing="ij"), -1)
    world = nib.affines.apply_affine(affine, centres.reshape(-1, 3))
    assert np.all(world >= mm[:3]) and np.all(world <= mm[3:])
    assert np.prod(mm[3:] - mm[:3]) > np.prod(box[3:] - box[:3])


def test_voxel_box_to_mm_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(4,\)"):
        voxel_box_to_mm([0, 0, 1, 1], np.eye(4))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        voxel_box_to_mm([0, 0, 0, 1, 1, 1], np.eye(3))


def test_helpers_reject_empty_masks() -> None:
    with pytest.raises(ValueError, match="no nonzero"):
        mask_box(np.zeros((3, 4, 5), bool))
    with pytest.raises(ValueError, match="no nonzero"):
        largest_slice_box(np.zeros((3, 4, 5), bool))


masks = arrays(bool, st.tuples(*[st.integers(1, 7)] * 3), elements=st.booleans()).filter(lambda m: m.any())
masks_2d_or_3d = st.integers(2, 3).flatmap(
    lambda ndim: arrays(bool, st.tuples(*[st.integers(1, 7)] * ndim), elements=st.booleans())
).filter(lambda m: m.any())


@settings(max_examples=200, deadline=None)
@given(masks_2d_or_3d)
def test_mask_box_matches_argwhere(mask: np.ndarray) -> None:
    points = np.argwhere(mask)
    np.testing.assert_array_equal(mask_box(mask), np.concatenate([points.min(0), points.max(0) + 1]))


@settings(max_examples=200, deadline=None)
@given(masks, st.integers(0, 2))
def test_largest_slice_box_matches_brute_force(mask: np.ndarray, axis: int) -> None:
    counts = [np.take(mask, i, axis=axis).sum() for i in range(mask.shape[axis])]
    best = counts.index(max(counts))
    index, box = largest_slice_box(mask, axis=axis)
    assert index == best
    points = np.argwhere(np.take(mask, best, axis=axis))
    np.testing.assert_array_equal(box, np.concatenate([points.min(0), points.max(0) + 1]))


# --- release layouts (issue 14) ---------------------------------------------------------------------------------
# The HF release GoodBaiBai88/M3D-RefSeg (tree at 80bd0b8) holds M3D_RefSeg_{all,train,test}.csv at the root
# beside M3D_RefSeg.zip, which unpacks to the case folder M3D_RefSeg/. BAAI-DCAI/M3D (commit 63e72005)
# Data/process/m3d_refseg_data_prepare.py writes M3D_RefSeg_npy/<case>/{ct,mask}.npy (1 x 32 x 256 x 256 after
# transpose(2, 0, 1)) and copies text.json; LaMed/src/train/train.py lists M3D_RefSeg_npy/M3D_RefSeg.csv (train)
# and M3D_RefSeg_test.csv; LaMed/src/dataset/multi_dataset.py RefSegDataset loads data_root / Image and keeps
# mask == Mask_ID.


def _score(tmp_path: Path, data_dir: Path, completions: dict[str, str]) -> dict:
    from typer.testing import CliRunner

    from medground_eval.cli import app

    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": k, "completion": v}) + "\n" for k, v in completions.items()))
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(app, ["score", str(preds), "--dataset", "m3d-refseg", "--data-dir", str(data_dir),
                                      "--output", str(out), "--bootstrap", "0", "--frame", "voxel"])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """The release as published: CSVs at the root, cases under M3D_RefSeg/."""
    root = tmp_path / "release"
    write_case(root / "M3D_RefSeg", "s0000", {1: [np.s_[2:5, 3:9, 4:7]]}, {"1": "A liver lesion."})
    write_listing(root, "test", [("s0000", 1, "0", "Please segment the lesion.")])
    return root


@pytest.mark.parametrize("where", ["root", "case folder"])
def test_published_layout_scores_end_to_end(published: Path, tmp_path: Path, where: str) -> None:
    data_dir = published if where == "root" else published / "M3D_RefSeg"
    (sample,) = load_m3d_refseg(data_dir).samples
    assert sample.boxes.tolist() == [[2, 3, 4, 5, 9, 7]] and sample.phrase == "A liver lesion."
    good = "<think>t</think><answer>[2, 3, 4, 5, 9, 7]</answer>"
    metrics = _score(tmp_path, data_dir, {sample.id: good})
    assert metrics["miou"] == 1.0 and metrics["n"] == 1, metrics


def write_npy_case(root: Path, case: str, label_blocks: dict[int, tuple[slice, slice, slice]],
                   texts: dict[str, str]) -> None:
    """One case as M3D's prepare script writes it: (1, D, H, W) float arrays and a copied text.json."""
    folder = root / case
    folder.mkdir(parents=True)
    shape = (32, 256, 256)
    np.save(folder / "ct.npy", np.zeros((1, *shape), dtype=np.float32))
    mask = np.zeros((1, *shape), dtype=np.float32)
    for label, block in label_blocks.items():
        mask[(0, *block)] = label
    np.save(folder / "mask.npy", mask)
    (folder / "text.json").write_text(json.dumps(texts), encoding="utf-8")


def test_m3d_npy_training_layout(tmp_path: Path) -> None:
    npy = tmp_path / "M3D_RefSeg_npy"
    # label 2 on d 3..5, h 10..20, w 30..40 of the (D, H, W) grid
    write_npy_case(npy, "s0007", {2: np.s_[3:6, 10:21, 30:41]}, {"2": "A renal cyst."})
    with (npy / "M3D_RefSeg_test.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerow(["s0007/ct.npy", "s0007/mask.npy", 2, "0", "Segment the cyst.", "It is [SEG]."])
    for data_dir in (npy, tmp_path):  # the npy folder itself, or the root holding it
        (sample,) = load_m3d_refseg(data_dir).samples
        # reordered to x, y, z = (h, w, d), upper bounds exclusive, in the npy grid
        assert sample.boxes.tolist() == [[10, 30, 3, 21, 41, 6]]
        assert sample.image_size == (256, 256, 32)
        assert sample.extra["grid"] == "m3d-npy" and sample.extra["affine"] is None
    with pytest.raises(DataError, match="already cropped and resized"):
        load_m3d_refseg(npy, npy_crop=True)


def test_nifti_names_fall_back_to_npy_files(tmp_path: Path) -> None:
    npy = tmp_path / "M3D_RefSeg_npy"
    write_npy_case(npy, "s0001", {1: np.s_[0:2, 0:4, 0:8]}, {"1": "x"})
    write_listing(npy, "test", [("s0001", 1, "0", "q")])  # cells say ct.nii.gz / mask.nii.gz
    (sample,) = load_m3d_refseg(npy).samples
    assert sample.boxes.tolist() == [[0, 0, 0, 4, 8, 2]]


def test_unrecognised_layout_names_the_files_looked_for(tmp_path: Path) -> None:
    (tmp_path / "cases").mkdir()
    with pytest.raises(FileNotFoundError) as caught:
        load_m3d_refseg(tmp_path / "cases")
    message = str(caught.value)
    for path in (tmp_path / "cases" / "M3D_RefSeg_test.csv", tmp_path / "cases" / "M3D_RefSeg_npy" / "M3D_RefSeg_test.csv",
                 tmp_path / "M3D_RefSeg_test.csv"):
        assert str(path) in message
    write_listing(tmp_path, "test", [("s0009", 1, "0", "q")])
    with pytest.raises(DataError) as row_error:
        load_m3d_refseg(tmp_path)
    assert str(tmp_path / "M3D_RefSeg" / "s0009" / "ct.nii.gz") in str(row_error.value)
    assert str(tmp_path / "M3D_RefSeg_npy" / "s0009" / "ct.npy") in str(row_error.value)
