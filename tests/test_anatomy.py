"""Anatomical qualifiers (side, zone) of phrases, labels and regions, and the rewards that respect them.

Phrases are synthetic, in the style of MS-CXR label_text and ChestX-ray8 findings (never real MS-CXR rows).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medground_eval.anatomy import (
    BILATERAL_CREDIT,
    Qualifiers,
    label_agreement,
    patient_left_on_image_right,
    read_qualifiers,
    region_agreement,
    region_qualifiers,
    sample_left_on_right,
)
from medground_eval.rewards import AnatomyReward, SemanticReward, SpatialSemanticReward

L, R = frozenset({"left"}), frozenset({"right"})
BOTH = L | R


@pytest.mark.parametrize("phrase, sides, zones", [
    ("small left apical pneumothorax", L, {"upper"}),
    ("Right lower lobe consolidation", R, {"lower"}),
    ("left-sided pleural effusion", L, set()),
    ("bibasilar atelectasis", BOTH, {"lower"}),
    ("bilateral perihilar opacities", BOTH, {"mid"}),
    ("retrocardiac opacity", L, {"lower"}),
    ("opacity in the lingula", L, {"mid", "lower"}),
    ("RML pneumonia", R, {"mid"}),
    ("LUL nodule", L, {"upper"}),
    ("R costophrenic angle blunting", R, {"lower"}),
    ("L basilar opacity", L, {"lower"}),
    ("elevated right hemidiaphragm", R, {"lower"}),
    ("opacities in both lung bases", BOTH, {"lower"}),
    ("mid and lower zone opacities on the right", R, {"mid", "lower"}),
    ("Cardiomegaly", frozenset(), set()),
    ("Pneumothorax", frozenset(), set()),
    ("", frozenset(), set()),
])
def test_qualifiers_of_report_style_phrases(phrase, sides, zones):
    q = read_qualifiers(phrase)
    assert q.sides == sides and q.zones == zones


def test_single_letters_are_sides_only_in_capitals():
    assert read_qualifiers("R effusion").side == "right"
    assert read_qualifiers("the r in a word: ralph").side is None
    assert read_qualifiers("lul").sides == frozenset()  # lobe codes are written in capitals


words = st.sampled_from(["left", "right", "bilateral", "apical", "basilar", "opacity", "effusion", "R", "L", "RLL",
                         "mid", "retrocardiac", "the", "perihilar", "x", "LUL"])


@given(st.lists(words, max_size=12), st.lists(words, max_size=12))
def test_qualifiers_of_two_texts_joined_are_the_union(a, b):
    qa, qb = read_qualifiers(" ".join(a)), read_qualifiers(" ".join(b))
    joined = read_qualifiers(" ".join(a) + " " + " ".join(b))
    assert joined == Qualifiers(qa.sides | qb.sides, qa.zones | qb.zones)


def test_label_agreement_rules():
    phrase = "small left pleural effusion"
    assert label_agreement(phrase, "small left pleural effusion") == 1.0
    assert label_agreement(phrase, "right pleural effusion") == 0.0
    assert label_agreement(phrase, "bilateral pleural effusions") == BILATERAL_CREDIT
    assert label_agreement("bilateral effusions", "left effusion") == BILATERAL_CREDIT
    assert label_agreement(phrase, "pleural effusion") == 1.0  # the label names no side: nothing contradicts
    assert label_agreement("left apical pneumothorax", "left basilar pneumothorax") == 0.0  # another zone
    assert label_agreement("left upper lobe opacity", "left apical opacity") == 1.0  # apical lies in the upper zone


def test_region_sides_follow_the_convention():
    box = np.array([[700.0, 100.0, 900.0, 300.0]])  # image right, upper band
    assert region_qualifiers(box, (1000, 1000)) == Qualifiers(L, frozenset({"upper"}))
    assert region_qualifiers(box, (1000, 1000), left_on_right=False).sides == R
    wide = np.array([[100.0, 600.0, 900.0, 900.0]])  # past the midline by far on both sides
    assert region_qualifiers(wide, (1000, 1000)).sides == BOTH
    two = np.array([[100.0, 700.0, 300.0, 900.0], [700.0, 700.0, 900.0, 900.0]])
    assert region_qualifiers(two, (1000, 1000)) == Qualifiers(BOTH, frozenset({"lower"}))
    assert region_qualifiers(np.zeros((0, 4)), (1000, 1000)) == Qualifiers()


def test_volume_orientation_codes_decide_the_side():
    assert patient_left_on_image_right(axcodes=("L", "P", "S")) is True
    assert patient_left_on_image_right(axcodes=("R", "A", "S")) is False
    assert patient_left_on_image_right("neurological") is False
    assert sample_left_on_right({"axcodes": ("R", "A", "S")}) is False
    assert sample_left_on_right({"view": "AP"}) is True
    assert sample_left_on_right({"laterality_convention": "neurological"}) is False
    with pytest.raises(ValueError, match="radiological"):
        patient_left_on_image_right("sideways")


def test_region_agreement_never_rewards_the_wrong_side():
    phrase = read_qualifiers("left lower lobe opacity")
    assert region_agreement(phrase, Qualifiers(R, frozenset({"lower"}))) == 0.0
    assert region_agreement(phrase, Qualifiers(L, frozenset({"lower"}))) == 1.0
    assert region_agreement(phrase, Qualifiers(L, frozenset({"upper"}))) == 0.5
    assert region_agreement(read_qualifiers("cardiomegaly"), Qualifiers(R, frozenset({"mid"}))) == 1.0
    assert region_agreement(phrase, Qualifiers()) == 0.0


def _answer(box, label):
    return f'<think>x</think><answer>{{"bbox_2d": {box}, "label": "{label}"}}</answer>'


def test_the_issue_table_with_minilm_wrong_side_gets_no_semantic_credit():
    # The table of issue 19, rerun with the default semantic reward (all-MiniLM-L6-v2).
    labels = ["small left pleural effusion", "small right pleural effusion", "right pleural effusion",
              "bilateral pleural effusions", "left apical pneumothorax", "enlarged cardiac silhouette"]
    completions = [_answer([10, 10, 50, 50], label) for label in labels]
    columns = dict(phrase=["small left pleural effusion"] * 6, solution=[[10, 10, 50, 50]] * 6)
    gated = np.array(SemanticReward()(completions, **columns))
    plain = np.array(SemanticReward(anatomy="ignore")(completions, **columns))
    assert plain[1] > 0.9 and plain[2] > 0.9  # what the embedding alone gives the wrong side
    assert gated[1] == 0.0 and gated[2] == 0.0
    assert gated[0] == pytest.approx(plain[0]) and gated[0] > 0.9
    assert gated[3] == pytest.approx(BILATERAL_CREDIT * plain[3]) and 0 < gated[3] < plain[3]
    assert gated[4] == pytest.approx(plain[4]) and gated[5] == pytest.approx(plain[5])


def test_anatomy_reward_and_its_place_in_the_combined_reward():
    left_box, mirrored = [700, 500, 900, 800], [100, 500, 300, 800]  # radiological: image right = patient left
    completions = [_answer(left_box, "left lower lobe opacity"), _answer(mirrored, "left lower lobe opacity"),
                   "<think>x</think><answer>no box</answer>"]
    columns = dict(phrase=["left lower lobe opacity"] * 3, solution=[left_box] * 3, image_size=[[1000, 1000]] * 3)
    assert AnatomyReward()(completions, **columns) == [1.0, 0.0, 0.0]
    assert AnatomyReward(convention="neurological")(completions, **columns) == [0.0, 1.0, 0.0]
    per_row = dict(columns, view=["PA", "PA", "PA"], axcodes=[None, ("R", "A", "S"), None])
    assert AnatomyReward()(completions, **per_row) == [1.0, 1.0, 0.0]  # the volume's codes decide row 1

    reward = SpatialSemanticReward(encoder="lexical")
    parts = reward.breakdown(completions, **columns)
    assert parts.anatomy.tolist() == [1.0, 0.0, 0.0]
    expected = parts.format + parts.spatial + parts.semantic + 0.5 * parts.anatomy
    np.testing.assert_allclose(parts.total, expected)
    assert reward.max_total == 3.5

    paper = SpatialSemanticReward.paper(encoder="lexical")
    assert paper.anatomy_weight == 0.0 and paper.semantic.anatomy == "ignore"
    assert paper.breakdown(completions, **columns).anatomy.tolist() == [0.0, 0.0, 0.0]


def test_combined_reward_without_image_size_warns_once_and_scores_no_anatomy():
    reward = SpatialSemanticReward(encoder="lexical")
    columns = dict(phrase=["left effusion"], solution=[[0, 0, 10, 10]])
    with pytest.warns(UserWarning, match="image_size"):
        parts = reward.breakdown([_answer([0, 0, 10, 10], "left effusion")], **columns)
    assert parts.anatomy.tolist() == [0.0]


def test_anatomy_options_are_checked():
    with pytest.raises(ValueError, match="anatomy"):
        SemanticReward(anatomy="strict")
    with pytest.raises(ValueError, match="anatomy_weight"):
        SpatialSemanticReward(anatomy_weight=float("nan"))
    with pytest.raises(ValueError, match="convention"):
        AnatomyReward(convention="upside-down")


def test_worked_example_of_docs_rewards_md_anatomy():
    phrase = "left lower lobe consolidation"
    completions = [
        "<think>x</think><answer>" + '[{"bbox_2d": [620, 600, 880, 860], "label": "left lower lobe consolidation"}]'
        + "</answer>",
        "<think>x</think><answer>" + '[{"bbox_2d": [120, 600, 380, 860], "label": "right lower lobe consolidation"}]'
        + "</answer>",
        "<think>x</think><answer>" + '[{"bbox_2d": [620, 150, 880, 400], "label": "left lower lobe consolidation"}]'
        + "</answer>",
    ]
    columns = dict(phrase=[phrase] * 3, solution=[[620, 600, 880, 860]] * 3, image_size=[[1000, 1000]] * 3)
    parts = SpatialSemanticReward(encoder="lexical").breakdown(completions, **columns)
    np.testing.assert_allclose(parts.iou, [1, 0, 0])
    np.testing.assert_allclose(parts.semantic, [1, 0, 1])
    np.testing.assert_allclose(parts.anatomy, [1, 0, 0.5])


# ------------------------------------------------------------------------------------------- laterality metrics
from medground_eval.anatomy import laterality_report, mirror_boxes  # noqa: E402

MSCXR_HEADER = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height"]
SIDED_FINDINGS = [  # (category, phrase, x, y, w, h) on a 2000 x 2500 frontal radiograph, PA: patient left = image right
    ("Pleural effusion", "small left pleural effusion", 1300, 1700, 500, 450),
    ("Pneumothorax", "right apical pneumothorax", 250, 300, 500, 400),
    ("Consolidation", "left lower lobe consolidation", 1150, 1500, 600, 500),
    ("Atelectasis", "right basilar atelectasis", 300, 1650, 550, 400),
    ("Pneumonia", "patchy opacity in the left mid lung", 1200, 1050, 450, 400),
    ("Pneumothorax", "small left apical pneumothorax", 1350, 280, 400, 350),
    ("Consolidation", "RLL consolidation", 280, 1550, 600, 500),
    ("Edema", "bilateral perihilar opacities", 300, 1000, 1400, 500),
]


def synthetic_mscxr(tmp_path):
    import csv

    from medground_eval.datasets.mscxr import load_mscxr

    path = tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MSCXR_HEADER)
        for k in range(5):  # five images, the same findings on each
            for category, phrase, x, y, w, h in SIDED_FINDINGS:
                writer.writerow([f"synthetic{k}", category, phrase, f"files/p{k}/img.jpg", x + 7 * k, y, w, h,
                                 2000, 2500])
    return load_mscxr(path)


def test_mirrored_answers_are_all_on_the_wrong_side_and_correct_ones_never(tmp_path):
    samples = synthetic_mscxr(tmp_path).samples
    phrases = [s.phrase for s in samples]
    truth = [s.boxes for s in samples]
    sizes = [s.image_size for s in samples]
    categories = [s.category for s in samples]
    correct = laterality_report(phrases, truth, truth, sizes, categories=categories)
    assert correct.wrong_side_rate == 0.0 and correct.laterality_accuracy == 1.0 and correct.zone_agreement == 1.0
    assert correct.truth_laterality_accuracy == 1.0  # the synthetic boxes follow the PA convention
    assert correct.n_sided == len(samples) and correct.n_one_sided == len(samples) - 5

    flipped = [mirror_boxes(s.boxes, s.image_size[0]) for s in samples]
    mirrored = laterality_report(phrases, flipped, truth, sizes, categories=categories)
    assert mirrored.wrong_side_rate == 1.0 and mirrored.mirrored == mirrored.wrong_side == mirrored.n_one_sided
    assert mirrored.laterality_accuracy == pytest.approx(5 / 40)  # only the bilateral phrase stays right
    assert mirrored.zone_agreement == 1.0  # a left-right mirror keeps the zone
    assert mirrored.per_category["Pneumothorax"]["wrong_side_rate"] == 1.0
    assert mirrored.per_category["Edema"]["wrong_side_rate"] is None  # no one-sided phrase in that category

    # The same truth read under the neurological convention contradicts its phrases: the convention check says so.
    neurological = laterality_report(phrases, truth, truth, sizes, left_on_right=False)
    assert neurological.truth_laterality_accuracy == pytest.approx(5 / 40)
    assert neurological.truth_laterality_other == 1.0 and correct.truth_laterality_other == pytest.approx(5 / 40)

    # Boxes unrelated to their phrases' sides fit neither convention: no convention finding for them.
    from medground_eval.evaluation.diagnosis import anatomy_findings

    rng = np.random.default_rng(0)
    shuffled = [truth[i] for i in rng.permutation(len(truth))]
    unrelated = laterality_report(phrases, shuffled, shuffled, sizes)
    assert unrelated.truth_laterality_accuracy < 0.8 and unrelated.truth_laterality_other < 0.8
    assert anatomy_findings(unrelated) == []
    assert [f.code for f in anatomy_findings(neurological, "neurological")] == ["side-convention"]


def test_laterality_report_counts_what_it_cannot_place():
    report = laterality_report(["left effusion", "cardiomegaly"], [np.zeros((0, 4))] * 2, [np.zeros((0, 4))] * 2,
                               [None, None])
    assert report.n_no_size == 1 and report.n_sided == 0 and report.laterality_accuracy is None
    no_answer = laterality_report(["left effusion"], [np.zeros((0, 4))], [np.array([[700, 0, 900, 9]])],
                                  [(1000, 1000)])
    assert no_answer.laterality_accuracy == 0.0 and no_answer.wrong_side_rate == 0.0  # a miss, not the wrong side


boxes_2d = st.tuples(st.floats(0, 1000), st.floats(0, 1000), st.floats(0, 1000), st.floats(0, 1000)).map(
    lambda b: [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
phrase_pool = st.sampled_from(["left effusion", "right apical pneumothorax", "bibasilar opacities", "cardiomegaly",
                               "RLL consolidation", "left mid lung nodule"])


@given(st.lists(st.tuples(phrase_pool, st.lists(boxes_2d, max_size=3), st.lists(boxes_2d, min_size=1, max_size=2),
                          st.booleans()), min_size=1, max_size=12))
def test_run_metrics_agree_with_the_per_region_rule(rows):
    # The vectorized run metrics and region_qualifiers share box_flags; this pins that they also reduce alike.
    phrases = [r[0] for r in rows]
    preds = [np.array(r[1]).reshape(-1, 4) for r in rows]
    truths = [np.array(r[2]).reshape(-1, 4) for r in rows]
    conventions = [r[3] for r in rows]
    report = laterality_report(phrases, preds, truths, [(1000, 1000)] * len(rows), left_on_right=conventions)
    sided, one_sided = [], []
    for phrase, pred, convention in zip(phrases, preds, conventions):
        expected = read_qualifiers(phrase).sides
        region = region_qualifiers(pred, (1000, 1000), left_on_right=convention).sides
        if expected:
            sided.append(bool(region) and region == expected)
        if len(expected) == 1:
            one_sided.append(bool(region) and not region & expected)
    assert report.laterality_accuracy == (pytest.approx(np.mean(sided)) if sided else None)
    assert report.wrong_side_rate == (pytest.approx(np.mean(one_sided)) if one_sided else None)


# ------------------------------------------------------------------------------------ score on the command line
def _completion(box):
    return f'<think>The finding [{box[0]}, {box[1]}, {box[2]}, {box[3]}].</think><answer>{{"bbox_2d": {box}}}</answer>'


def _predictions(tmp_path, name, samples, mirrored):
    import json

    path = tmp_path / name
    with path.open("w") as handle:
        for s in samples:
            boxes = mirror_boxes(s.boxes, s.image_size[0]) if mirrored else s.boxes
            box = [int(round(v)) for v in boxes[0]]  # one box per sample in this set
            handle.write(json.dumps({"id": s.id, "completion": _completion(box)}) + "\n")
    return path


@pytest.mark.parametrize("mirrored, wrong_side", [(False, 0.0), (True, 1.0)])
def test_score_reports_the_wrong_side_rate_of_a_mirrored_model(tmp_path, mirrored, wrong_side):
    import json

    from typer.testing import CliRunner

    from medground_eval.cli import app

    loaded = synthetic_mscxr(tmp_path)
    preds = _predictions(tmp_path, "preds.jsonl", loaded.samples, mirrored)
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(app, ["score", str(preds), "--dataset", "mscxr", "--annotations",
                                      str(tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv"), "--bootstrap", "0",
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    anatomy = json.loads(out.read_text())["anatomy"]
    assert anatomy["wrong_side_rate"] == wrong_side and anatomy["n_one_sided"] == 35
    assert anatomy["mirrored"] == (35 if mirrored else 0)
    assert anatomy["truth_laterality_accuracy"] == 1.0
    assert "wrong-side rate" in result.output
    neurological = CliRunner().invoke(app, ["score", str(preds), "--dataset", "mscxr", "--annotations",
                                            str(tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv"), "--bootstrap", "0",
                                            "--convention", "neurological", "--output", str(out)])
    assert neurological.exit_code == 0, neurological.output
    flipped = json.loads(out.read_text())["anatomy"]
    assert flipped["wrong_side_rate"] == 1.0 - wrong_side  # the other convention reads every side the other way
    assert flipped["truth_laterality_accuracy"] == pytest.approx(5 / 40)


def test_score_names_a_systematic_flip_and_a_wrong_convention(tmp_path):
    from typer.testing import CliRunner

    from medground_eval.cli import app

    samples = synthetic_mscxr(tmp_path).samples
    annotations = str(tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv")
    mirrored = _predictions(tmp_path, "mirrored.jsonl", samples, True)
    correct = _predictions(tmp_path, "correct.jsonl", samples, False)

    def warnings_of(preds, *extra):
        result = CliRunner().invoke(app, ["score", str(preds), "--dataset", "mscxr", "--annotations", annotations,
                                          "--bootstrap", "0", *extra])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert "systematic left/right flip: 35 of 35" in warnings_of(mirrored)
    assert "left/right flip" not in warnings_of(correct)
    assert "side convention" not in warnings_of(correct)
    assert "neurological side convention, 1.000 under the other. the images are stored with the other convention: " \
           "score with --convention radiological" in warnings_of(correct, "--convention", "neurological")


def test_doctor_names_the_flip_of_a_mirrored_model(tmp_path):
    import json

    from typer.testing import CliRunner

    from medground_eval.cli import app

    samples = synthetic_mscxr(tmp_path).samples
    annotations = str(tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv")
    for mirrored in (True, False):
        preds = _predictions(tmp_path, f"preds{mirrored}.jsonl", samples, mirrored)
        result = CliRunner().invoke(app, ["doctor", str(preds), "--dataset", "mscxr", "--annotations", annotations,
                                          "--json"])
        assert result.exit_code == 0, result.output
        codes = [f["code"] for f in json.loads(result.output)["findings"]]
        assert ("left-right-flip" in codes) is mirrored
        assert "side-convention" not in codes
    table = CliRunner().invoke(app, ["doctor", str(tmp_path / "predsTrue.jsonl"), "--dataset", "mscxr",
                                     "--annotations", annotations])
    assert "systematic left/right flip: 35 of 35 wrong-side predictions mirror the true region" in \
        " ".join(table.output.split())


def test_a_samples_own_convention_fields_win_over_the_run_option():
    from medground_eval.datasets.base import LoadedDataset
    from medground_eval.evaluation.scorer import score_predictions
    from medground_eval.structures import Sample

    box = [[700.0, 600.0, 900.0, 800.0]]  # the image's right half
    samples = [
        Sample("pa", "left effusion", box, (1000, 1000)),  # run convention (radiological): patient left, right side
        Sample("neuro", "left effusion", box, (1000, 1000), extra={"laterality_convention": "neurological"}),
        Sample("ct", "left effusion", box, (1000, 1000), extra={"axcodes": ("R", "A", "S")}),
        Sample("ap", "left effusion", box, (1000, 1000), extra={"view": "AP", "axcodes": ("L", "P", "S")}),
    ]
    records = [{"id": s.id, "pred_boxes": box} for s in samples]
    result = score_predictions(records, LoadedDataset("synthetic", samples), n_bootstrap=0)
    assert result.anatomy.truth_laterality_accuracy == 0.5  # "neuro" and "ct" place image right on patient right
    assert result.anatomy.wrong_side == 2 and result.anatomy.wrong_side_rate == 0.5
    assert result.to_dict()["config"]["convention"] == "radiological"


def test_compat_runs_report_no_anatomy(tmp_path):
    # Under --compat vlm-r1 the compared boxes are in the model's resized input, not in the image whose midline
    # decides the side: reading sides from them would give a wrong wrong-side rate.
    from medground_eval.evaluation.scorer import score_predictions

    loaded = synthetic_mscxr(tmp_path)
    records = [{"id": s.id, "completion": _completion([int(v) for v in s.boxes[0]])} for s in loaded.samples]
    assert score_predictions(records, loaded, n_bootstrap=0).anatomy.wrong_side_rate == 0.0
    for preset in ("vlm-r1", "medground-r1", "lmms-eval"):
        result = score_predictions(records, loaded, compat=preset, n_bootstrap=0)
        assert result.anatomy is None and result.to_dict()["anatomy"] is None
