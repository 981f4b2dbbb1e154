"""3D grounding end to end: synthetic M3D-RefSeg NIfTI cases -> 6-number completions -> rewards and metrics, and
``medground-eval score --dataset m3d-refseg`` in the voxel, norm1000 and m3d-npy frames and the 2D views.

Also the 3D geometry against M3D's own IoU helper, the 3D frames (voxel, norm1000, norm1) and the "m3d-npy"
frame of M3D's preprocessing (checked against the resize M3D's pipeline runs, torch's nearest interpolation).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medground_eval.boxes import box_iou, region_iou, union_area
from medground_eval.cli import app
from medground_eval.datasets import get_loader
from medground_eval.datasets.m3d_refseg import COLUMNS, mask_box, npy_crop_box
from medground_eval.frames import M3D_NPY_SHAPE, get_frame
from medground_eval.metrics import grounding_report, score_samples
from medground_eval.regions import parse_many, predicted_regions
from medground_eval.rewards import SpatialReward

nib = pytest.importorskip("nibabel")

SHAPE = (40, 32, 25)  # (X, Y, Z): 0-1000 coordinates of voxel edges are integers on every axis
BODY = np.s_[4:36, 2:30, 1:24]  # everything else is air at -1024: the foreground crop of M3D's preprocessing
BODY_BOX = [4, 2, 1, 36, 30, 24]
REGIONS = {
    "s0000": {
        1: [np.s_[6:16, 8:20, 4:10]],  # box [6, 8, 4, 16, 20, 10], 720 voxels
        2: [np.s_[20:24, 4:8, 2:4], np.s_[28:34, 20:28, 12:20]],  # two components, one box [20, 4, 2, 34, 28, 20]
    },
    "s0001": {1: [np.s_[10:30, 10:12, 5:15]]},
}
ROWS = [("s0000", 1, "Where is the lesion?"), ("s0000", 2, "Where are the stones?"), ("s0001", 1, "The nodule?")]


def m3d_iou(box1: list[float], box2: list[float]) -> float:
    """M3D's ``calculate_iou`` (BAAI-DCAI/M3D, LaMed/src/utils/utils.py, used by Bench/eval/eval_pos.py), restated:
    it divides the intersection by the volume of the box ENCLOSING both boxes (its ``vol_union``), not by their
    union, so it under-reports whenever the union is not itself a box. Kept here only as the counter-example."""
    x1, y1, z1, x2, y2, z2 = box1
    x3, y3, z3, x4, y4, z4 = box2
    inter = max(0, min(x2, x4) - max(x1, x3)) * max(0, min(y2, y4) - max(y1, y3)) * max(0, min(z2, z4) - max(z1, z3))
    enclosing = (max(x2, x4) - min(x1, x3)) * (max(y2, y4) - min(y1, y3)) * (max(z2, z4) - min(z1, z3))
    return inter / (enclosing + 1e-6)


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """Two CT cases in the M3D-RefSeg release layout, with a test listing of three rows."""
    for case, regions in REGIONS.items():
        folder = tmp_path / case
        folder.mkdir()
        ct = np.full(SHAPE, -1024, dtype=np.int16)
        ct[BODY] = np.arange(32 * 28 * 23).reshape(32, 28, 23) % 400 - 100
        mask = np.zeros(SHAPE, dtype=np.uint8)
        for label, blocks in regions.items():
            for block in blocks:
                mask[block] = label
        nib.save(nib.Nifti1Image(ct, np.eye(4)), folder / "ct.nii.gz")
        nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / "mask.nii.gz")
        (folder / "text.json").write_text(json.dumps({str(k): f"region {k} of {case}" for k in regions}))
    with (tmp_path / "M3D_RefSeg_test.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for case, mask_id, question in ROWS:
            writer.writerow([f"{case}/ct.nii.gz", f"{case}/mask.nii.gz", mask_id, "0", question, "It is [SEG]."])
    return tmp_path


def answer(*boxes: list[float]) -> str:
    return "<think>Chain of boxes.</think><answer>" + ", ".join(json.dumps(b) for b in boxes) + "</answer>"


# ---------------------------------------------------------------- end to end


def test_voxel_and_norm1000_completions_score_expected_3d_iou(release: Path) -> None:
    samples = get_loader("m3d-refseg")(release, "test").samples
    np.testing.assert_array_equal(samples[0].boxes, [[6, 8, 4, 16, 20, 10]])
    np.testing.assert_array_equal(samples[1].boxes, [[20, 4, 2, 34, 28, 20]])
    solution = [s.boxes.tolist() for s in samples]
    image_size = [list(s.image_size) for s in samples]
    # 1: z extended 10 -> 13: 720 / (10 * 12 * 9). 2: the two components as two boxes, inside the true box:
    # (32 + 384) / (14 * 24 * 18). 3: no box.
    expected = [720 / 1080, 416 / 6048, 0.0]
    voxel = [
        answer([6, 8, 4, 16, 20, 13]),
        answer([20, 4, 2, 24, 8, 4], [28, 20, 12, 34, 28, 20]),
        "<think>Not visible.</think><answer>none</answer>",
    ]
    scale = np.array(SHAPE * 2) / 1000
    norm1000 = [
        '<answer>{"bbox_3d": [150, 250, 160, 400, 625, 520], "label": "lesion"}</answer>',
        answer(*(np.divide(b, scale).tolist() for b in ([20, 4, 2, 24, 8, 4], [28, 20, 12, 34, 28, 20]))),
        voxel[2],
    ]
    reward = SpatialReward(dims=3)
    np.testing.assert_allclose(reward(voxel, solution=solution, image_size=image_size), expected)
    np.testing.assert_allclose(reward(voxel, solution=solution, frame=["voxel"] * 3, image_size=image_size), expected)
    np.testing.assert_allclose(
        SpatialReward(dims=3, frame="norm1000")(norm1000, solution=solution, image_size=image_size), expected
    )
    hits = SpatialReward(dims=3, mode="threshold", threshold=0.5)(voxel, solution=solution, image_size=image_size)
    assert hits == [1.0, 0.0, 0.0]

    regions = predicted_regions(parse_many(norm1000, dims=3), frames="norm1000", image_sizes=image_size, dims=3)
    scores = score_samples([s.id for s in samples], regions.boxes, [s.boxes for s in samples],
                           parse_failed=regions.parse_failed, out_of_frame=regions.out_of_frame)
    np.testing.assert_allclose(scores.iou, expected)
    report = grounding_report(scores, thresholds=(0.05, 0.5), n_bootstrap=0)
    assert report.acc == {"0.05": pytest.approx(2 / 3), "0.5": pytest.approx(1 / 3)}
    assert report.miou == pytest.approx(sum(expected) / 3)
    assert report.parse_failure_rate == pytest.approx(1 / 3)


def test_2d_views_score_through_the_2d_calls(release: Path) -> None:
    samples = get_loader("m3d-refseg")(release, "test").samples[:2]
    assert [s.extra["largest_slice"] for s in samples] == [(4, [6, 8, 16, 20]), (12, [28, 20, 34, 28])]
    assert [s.extra["axial_projection_box"] for s in samples] == [[6, 8, 16, 20], [20, 4, 34, 28]]
    image_size = [list(s.image_size[:2]) for s in samples]
    reward = SpatialReward(dims=2)
    on_slice = [answer([6, 8, 16, 14]), answer([28, 20, 34, 24])]
    slice_boxes = [s.extra["largest_slice"][1] for s in samples]
    assert reward(on_slice, solution=slice_boxes, image_size=image_size) == [0.5, 0.5]
    projected = [answer([6, 8, 16, 20]), answer([20, 4, 34, 16])]
    projection_boxes = [s.extra["axial_projection_box"] for s in samples]
    assert reward(projected, solution=projection_boxes, image_size=image_size) == [1.0, 0.5]


def test_m3d_npy_frame_with_the_loaders_crop_box(release: Path) -> None:
    samples = get_loader("m3d-refseg")(release, "test", npy_crop=True).samples
    assert [s.extra["npy_crop_box"] for s in samples] == [BODY_BOX] * 3
    assert "npy_crop_box" not in get_loader("m3d-refseg")(release, "test").samples[0].extra
    frame = get_frame("m3d-npy")
    crops = np.array([s.extra["npy_crop_box"] for s in samples])
    truth = np.vstack([s.boxes for s in samples])
    written = frame.from_pixels(truth, [s.image_size for s in samples], crops)
    completions = [answer(box.tolist()) for box in written]
    regions = predicted_regions(parse_many(completions, dims=3), frames="m3d-npy",
                                image_sizes=[s.image_size for s in samples], input_sizes=crops, dims=3)
    np.testing.assert_allclose(np.vstack(regions.boxes), truth, atol=1e-9)
    assert not regions.out_of_frame.any()


# ---------------------------------------------------------------- medground-eval score


def run_score(release: Path, lines: list[dict], *options: str) -> dict:
    """``medground-eval score preds.jsonl --dataset m3d-refseg --data-dir release ...``: the metrics JSON."""
    preds = release / "preds.jsonl"
    preds.write_text("".join(json.dumps(line) + "\n" for line in lines))
    metrics = release / "metrics.json"
    result = CliRunner().invoke(app, ["score", str(preds), "--dataset", "m3d-refseg", "--data-dir", str(release),
                                      "--bootstrap", "0", "--output", str(metrics), *options])
    assert result.exit_code == 0, result.output
    return json.loads(metrics.read_text())


def sample_ids(release: Path) -> list[str]:
    return [s.id for s in get_loader("m3d-refseg")(release, "test").samples]


@pytest.mark.parametrize("frame", ["voxel", "norm1000"])
def test_score_command_3d_iou_in_voxel_and_norm1000(release: Path, frame: str) -> None:
    ids = sample_ids(release)
    # Truth: [6, 8, 4, 16, 20, 10], [20, 4, 2, 34, 28, 20], [10, 10, 5, 30, 12, 15].
    # 1: z extended 10 -> 13: 720 / 1080. 2: its two components as two boxes: (32 + 384) / 6048. 3: no box.
    voxel = [[[6, 8, 4, 16, 20, 13]], [[20, 4, 2, 24, 8, 4], [28, 20, 12, 34, 28, 20]]]
    per_mille = np.array(SHAPE * 2) / 1000
    boxes = voxel if frame == "voxel" else [[np.divide(b, per_mille).tolist() for b in bs] for bs in voxel]
    lines = [{"id": ids[0], "completion": answer(*boxes[0])}, {"id": ids[1], "pred_boxes": boxes[1]},
             {"id": ids[2], "completion": "<think>Not visible.</think><answer>none</answer>"}]
    metrics = run_score(release, lines, "--frame", frame, "--thresholds", "0.05,0.5")
    iou = [720 / 1080, 416 / 6048, 0.0]
    assert metrics["n"] == 3
    assert metrics["acc"] == {"0.05": pytest.approx(2 / 3), "0.5": pytest.approx(1 / 3)}
    assert metrics["miou"] == pytest.approx(sum(iou) / 3)
    assert metrics["ciou"] == pytest.approx((720 + 416) / (1080 + 6048 + 400))
    assert metrics["parse_failure_rate"] == pytest.approx(1 / 3)
    assert (metrics["config"]["view"], metrics["config"]["frame"]) == ("volume", frame)


def test_score_command_m3d_npy_frame_uses_the_crop_box(release: Path) -> None:
    """npy box edges map back through the crop box: x = x1 + h (x2 - x1) / 256, y = y1 + w (y2 - y1) / 256,
    z = z1 + d (z2 - z1) / 32; the sample's crop is BODY_BOX unless the line gives its own input_size."""
    ids = sample_ids(release)
    lines = [
        # [d, h, w] = [0, 16, 64] .. [32, 96, 192] -> x 4 + 2 .. 4 + 12, y 2 + 7 .. 2 + 21, z 1 + 0 .. 1 + 23:
        # [6, 9, 1, 16, 23, 24] (3220 voxels) vs [6, 8, 4, 16, 20, 10] (720): 10 * 11 * 6 = 660 in common.
        {"id": ids[0], "completion": answer([0, 16, 64, 32, 96, 192])},
        # the whole volume as crop: x = h * 40 / 256, y = w * 32 / 256, z = d * 25 / 32 -> exactly the true box
        {"id": ids[2], "pred_boxes": [[6.4, 64, 80, 19.2, 192, 96]], "input_size": [0, 0, 0, 40, 32, 25]},
    ]
    metrics = run_score(release, lines, "--frame", "m3d-npy", "--thresholds", "0.2,0.5")
    iou = [660 / (3220 + 720 - 660), 0.0, 1.0]
    assert metrics["acc"] == {"0.2": pytest.approx(2 / 3), "0.5": pytest.approx(1 / 3)}
    assert metrics["miou"] == pytest.approx(sum(iou) / 3)
    assert metrics["config"]["missing_predictions"] == 1 and metrics["config"]["frame"] == "m3d-npy"


def test_score_command_slice_and_projection_views(release: Path) -> None:
    ids = sample_ids(release)
    # slices: (4, [6, 8, 16, 20]), (12, [28, 20, 34, 28]), (5, [10, 10, 30, 12]); each prediction covers half.
    # The third is in norm1000 of the [X, Y] = [40, 32] slice: [10, 10, 20, 12].
    on_slice = [{"id": ids[0], "completion": answer([6, 8, 16, 14])},
                {"id": ids[1], "pred_boxes": [28, 20, 34, 24]},
                {"id": ids[2], "pred_boxes": [250, 312.5, 500, 375], "frame": "norm1000"}]
    metrics = run_score(release, on_slice, "--view", "slice", "--thresholds", "0.5,0.7")
    assert metrics["acc"] == {"0.5": 1.0, "0.7": 0.0}
    assert metrics["miou"] == pytest.approx(0.5) and metrics["config"]["view"] == "slice"
    # projections: [6, 8, 16, 20], [20, 4, 34, 28], [10, 10, 30, 12]: exact, half, no box
    projected = [{"id": ids[0], "pred_boxes": [6, 8, 16, 20]}, {"id": ids[1], "pred_boxes": [20, 4, 34, 16]},
                 {"id": ids[2], "completion": "<answer>none</answer>"}]
    metrics = run_score(release, projected, "--view", "projection", "--thresholds", "0.5,0.7")
    assert metrics["acc"] == {"0.5": pytest.approx(2 / 3), "0.7": pytest.approx(1 / 3)}
    assert metrics["miou"] == pytest.approx(0.5) and metrics["parse_failure_rate"] == pytest.approx(1 / 3)


def test_score_command_view_errors(release: Path) -> None:
    preds = release / "preds.jsonl"
    preds.write_text(json.dumps({"id": "x", "pred_boxes": [0, 0, 1, 1]}) + "\n")
    for args, message in (
        (["--dataset", "jsonl", "--view", "slice"], "--view slice: data set jsonl has 2D boxes"),
        (["--dataset", "m3d-refseg", "--data-dir", str(release), "--view", "axial"],
         "--view 'axial': expected one of volume, slice, projection"),
        (["--dataset", "m3d-refseg", "--data-dir", str(release), "--view", "slice", "--frame", "m3d-npy"],
         "--frame m3d-npy with --view slice"),
        (["--dataset", "m3d-refseg", "--data-dir", str(release), "--frame", "qwen2.5-vl"],
         "'resized' is 2D only"),
    ):
        result = CliRunner().invoke(app, ["score", str(preds), *args])
        assert result.exit_code == 1 and message in result.output, (args, result.output)


# ---------------------------------------------------------------- geometry


def test_3d_iou_divides_by_the_union_not_the_enclosing_box() -> None:
    a, b = [0, 0, 0, 2, 2, 2], [1, 1, 1, 3, 3, 3]
    # intersection 1 voxel; union 8 + 8 - 1 = 15; M3D's helper divides by the enclosing 3 x 3 x 3 = 27
    assert box_iou([a], [b])[0] == pytest.approx(1 / 15)
    assert m3d_iou(a, b) == pytest.approx(1 / 27)
    # the two agree only when the union is itself a box (here: shifted along one axis)
    c = [1, 0, 0, 3, 2, 2]
    assert box_iou([a], [c])[0] == pytest.approx(m3d_iou(a, c), abs=1e-6) == pytest.approx(1 / 3, abs=1e-6)


corner = st.integers(0, 12)


@given(st.lists(corner, min_size=6, max_size=6), st.lists(st.integers(1, 6), min_size=6, max_size=6))
@settings(max_examples=200, deadline=None)
def test_m3d_helper_never_exceeds_true_iou(lows: list[int], sizes: list[int]) -> None:
    a = lows[:3] + [lo + s for lo, s in zip(lows[:3], sizes[:3])]
    b = lows[3:] + [lo + s for lo, s in zip(lows[3:], sizes[3:])]
    true_iou = box_iou([a], [b])[0]
    assert m3d_iou(a, b) <= true_iou + 1e-12
    grid = np.zeros((20, 20, 20), dtype=bool), np.zeros((20, 20, 20), dtype=bool)
    for mask, (x1, y1, z1, x2, y2, z2) in zip(grid, (a, b)):
        mask[x1:x2, y1:y2, z1:z2] = True
    assert true_iou == pytest.approx((grid[0] & grid[1]).sum() / (grid[0] | grid[1]).sum())


@given(st.lists(st.tuples(*[st.integers(0, 8)] * 3, *[st.integers(1, 5)] * 3), min_size=1, max_size=5),
       st.lists(st.tuples(*[st.integers(0, 8)] * 3, *[st.integers(1, 5)] * 3), min_size=1, max_size=5))
@settings(max_examples=100, deadline=None)
def test_union_of_several_3d_boxes_matches_voxel_counts(
    pred: list[tuple[int, ...]], true: list[tuple[int, ...]]
) -> None:
    masks = []
    for boxes in (pred, true):
        mask = np.zeros((13, 13, 13), dtype=bool)
        for x, y, z, w, h, d in boxes:
            mask[x:x + w, y:y + h, z:z + d] = True
        masks.append(mask)
    as_corners = [np.array([[x, y, z, x + w, y + h, z + d] for x, y, z, w, h, d in boxes]) for boxes in (pred, true)]
    assert union_area(as_corners[0]) == masks[0].sum()
    assert region_iou(*as_corners) == pytest.approx((masks[0] & masks[1]).sum() / (masks[0] | masks[1]).sum())


# ---------------------------------------------------------------- frames


def test_3d_frames_scale_each_axis() -> None:
    boxes = [[150, 250, 160, 400, 625, 520], [0, 0, 0, 1000, 1000, 1001]]
    result = get_frame("norm1000").to_pixels(boxes, SHAPE)
    np.testing.assert_allclose(result.boxes, [[6, 8, 4, 16, 20, 13], [0, 0, 0, 40, 32, 25]])
    assert result.out_of_frame.tolist() == [False, True]
    norm1 = get_frame("norm1").to_pixels(np.array(boxes[:1]) / 1000, SHAPE)
    np.testing.assert_allclose(norm1.boxes, [[6, 8, 4, 16, 20, 13]])
    voxel = get_frame("voxel").to_pixels([[6, 8, 4, 16, 20, 30]], SHAPE)
    assert get_frame("voxel") == get_frame("pixel")
    np.testing.assert_array_equal(voxel.boxes, [[6, 8, 4, 16, 20, 25]])
    assert voxel.out_of_frame.tolist() == [True]


def test_m3d_npy_frame_permutes_axes_and_undoes_crop_and_resize() -> None:
    size, crop = (100, 80, 64), [10, 20, 4, 74, 52, 36]  # crop 64 x 32 x 32 voxels -> 256 x 256 x 32 npy voxels
    # npy order [d1, h1, w1, d2, h2, w2]: d along z (1 voxel each), h along x (0.25), w along y (0.125)
    result = get_frame("m3d-npy").to_pixels([[8, 64, 128, 16, 128, 256], [0, 0, 0, 33, 256, 256]], size, crop)
    # d2 = 33 lies outside the npy: flagged, mapped to z = 37 (outside the crop) and clipped to the volume only
    np.testing.assert_allclose(result.boxes, [[26, 36, 12, 42, 52, 20], [10, 20, 4, 74, 52, 37]])
    assert result.out_of_frame.tolist() == [False, True]
    np.testing.assert_allclose(get_frame("m3d-npy").from_pixels([[26, 36, 12, 42, 52, 20]], size, crop),
                               [[8, 64, 128, 16, 128, 256]])
    assert get_frame("m3d-npy").to_pixels(np.zeros((0, 6)), size, crop).boxes.shape == (0, 6)


@given(st.lists(st.floats(0, 1), min_size=6, max_size=6), st.lists(st.integers(0, 30), min_size=3, max_size=3),
       st.lists(st.integers(1, 300), min_size=3, max_size=3))
@settings(max_examples=100, deadline=None)
def test_m3d_npy_from_pixels_inverts_to_pixels(unit: list[float], low: list[int], extent: list[int]) -> None:
    crop = np.array(low + [lo + e for lo, e in zip(low, extent)], dtype=float)
    size = crop[3:] + 5
    lo, hi = np.minimum(unit[:3], unit[3:]), np.maximum(unit[:3], unit[3:])
    voxels = np.concatenate([crop[:3] + lo * extent, crop[:3] + hi * extent])[None, :]
    frame = get_frame("m3d-npy")
    written = frame.from_pixels(voxels, size, crop)
    result = frame.to_pixels(written, size, crop)
    np.testing.assert_allclose(result.boxes, voxels, rtol=1e-12, atol=1e-9)
    assert not result.out_of_frame.any()


def test_m3d_npy_frame_errors_say_what_is_missing() -> None:
    frame = get_frame("m3d-npy")
    with pytest.raises(ValueError, match="3D only"):
        frame.to_pixels([[0, 0, 1, 1]], (10, 10), [0, 0, 0, 10, 10, 10])
    with pytest.raises(ValueError, match="needs the foreground crop box"):
        frame.to_pixels([[0, 0, 0, 1, 1, 1]], (10, 10, 10))
    with pytest.raises(ValueError, match="no crop box given for row 1"):
        frame.to_pixels([[0, 0, 0, 1, 1, 1]] * 2, (10, 10, 10), [[0, 0, 0, 5, 5, 5], [np.nan] * 6])
    with pytest.raises(ValueError, match=r"crop box \[0.0, 0.0, 0.0, 11.0, 5.0, 5.0\] \(row 0\) is not a box inside"):
        frame.to_pixels([[0, 0, 0, 1, 1, 1]], (10, 10, 10), [0, 0, 0, 11, 5, 5])
    with pytest.raises(ValueError, match=r"expects a crop box of 6 numbers.*got shape \(1, 2\)"):
        frame.from_pixels([[0, 0, 0, 1, 1, 1]], (10, 10, 10), [5, 5])


def test_npy_crop_box_is_the_box_above_the_low_percentile() -> None:
    ct = np.full((30, 20, 10), -1024.0)
    ct[3:25, 4:18, 2:9] = 40.0
    ct[0, 0, 0] = -2000.0  # below the 0.5th percentile: the percentile, not the minimum, decides
    np.testing.assert_array_equal(npy_crop_box(ct), [3, 4, 2, 25, 18, 9])
    with pytest.raises(ValueError, match="no voxel above"):
        npy_crop_box(np.zeros((4, 4, 4)))


def test_m3d_npy_frame_against_m3d_preprocessing_resize() -> None:
    """Replay M3D's preprocessing of a mask (transpose(2, 0, 1), foreground crop, nearest resize to 32 x 256 x 256
    with torch, as MONAI's Resized calls it): the npy mask's box mapped back lies within one npy voxel above the
    original box on every side, as docs/datasets.md states."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    size = (90, 70, 60)
    ct = np.full(size, -1024.0)
    ct[5:80, 8:66, 3:57] = rng.normal(0, 100, (75, 58, 54))
    crop = npy_crop_box(ct)
    np.testing.assert_array_equal(crop, [5, 8, 3, 80, 66, 57])
    step = (crop[3:] - crop[:3]) / np.array(M3D_NPY_SHAPE)[[1, 2, 0]]  # original voxels per npy voxel, x y z
    frame = get_frame("m3d-npy")
    for _ in range(20):
        lo = rng.integers(crop[:3], crop[3:] - 2)
        hi = lo + rng.integers(2, np.minimum(crop[3:] - lo, 25) + 1)
        mask = np.zeros(size, dtype=np.float32)
        mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
        cropped = mask.transpose(2, 0, 1)[crop[2]:crop[5], crop[0]:crop[3], crop[1]:crop[4]]
        npy = torch.nn.functional.interpolate(torch.from_numpy(cropped.copy())[None, None], size=M3D_NPY_SHAPE,
                                              mode="nearest")[0, 0].numpy()
        if not npy.any():  # a region thinner than one npy voxel can vanish: nothing to map back
            continue
        back = frame.to_pixels(mask_box(npy > 0), size, crop).boxes[0]
        shift = back - np.concatenate([lo, hi])
        assert (shift >= -1e-4).all() and (shift <= np.concatenate([step, step]) + 1e-4).all(), (lo, hi, back)
