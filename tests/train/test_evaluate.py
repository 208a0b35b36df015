"""Evaluation: pixel counts, the streaming PR curve, object matching, and the end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import MultiPolygon, box

from solarmap.errors import InputError
from solarmap.geo import write_cog, write_vector
from train.evaluate import (
    PixelCounts,
    ProbabilityHistogram,
    evaluate_prediction,
    match_objects,
    object_metrics,
    plot_pr_curve,
    scores,
)

UTM = "EPSG:32633"  # Austria
X0, Y0 = 500000.0, 5300000.0


def sq(x: float, y: float, w: float, h: float) -> Any:
    """A w×h metre rectangle with its lower-left corner (x, y) metres from the origin."""
    return box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


def frame(geoms: list[Any], crs: str | None = UTM) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": np.arange(len(geoms))}, geometry=geoms, crs=crs)


# ------------------------------------------------------------------------------------ scores


def test_scores_from_counts_are_the_same_for_scalars_and_arrays() -> None:
    assert scores(2, 1, 1) == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "iou": 0.5}
    )
    assert scores(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}
    tp, fp, fn = np.array([2, 0, 5]), np.array([1, 0, 0]), np.array([1, 0, 3])
    arrays = scores(tp, fp, fn)
    for i in range(3):
        one = scores(int(tp[i]), int(fp[i]), int(fn[i]))
        assert {k: float(v[i]) for k, v in arrays.items()} == one


# ------------------------------------------------------------------------------------ pixels


def test_pixel_counts_known_answer_with_ignore() -> None:
    pred = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=bool)
    truth = np.array([[1, 0, 1, 0], [255, 255, 1, 0]], dtype=np.uint8)
    c = PixelCounts()
    c.update(pred, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 2)
    m = c.metrics()
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["iou"] == pytest.approx(0.5)
    assert m["tp"] == 2


def test_pixel_counts_streaming_equals_one_shot() -> None:
    rng = np.random.default_rng(1)
    pred = rng.random((3, 50, 40)) > 0.6
    truth = rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=(3, 50, 40), p=[0.6, 0.3, 0.1])
    whole = PixelCounts()
    whole.update(pred, truth)
    parts = PixelCounts()
    for rows in (slice(0, 7), slice(7, 33), slice(33, 50)):
        parts.update(pred[:, rows], truth[:, rows])
    assert parts == whole
    assert whole.tp + whole.fp + whole.fn + whole.tn == int((truth != 255).sum())
    assert whole.tp == int((pred & (truth == 1)).sum())


def test_pixel_counts_zero_over_zero_is_zero() -> None:
    c = PixelCounts()
    assert c.metrics()["precision"] == 0.0
    c.update(np.zeros((4, 4), bool), np.zeros((4, 4), np.uint8))
    m = c.metrics()
    assert m["tn"] == 16
    assert all(m[k] == 0.0 for k in ("precision", "recall", "f1", "iou"))


def test_pixel_counts_rejects_bad_input() -> None:
    c = PixelCounts()
    with pytest.raises(InputError, match="boolean"):
        c.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="values"):
        c.update(np.zeros((2, 2), bool), np.full((2, 2), 7, np.uint8))
    with pytest.raises(InputError, match="shape"):
        c.update(np.zeros((2, 3), bool), np.zeros((2, 2), np.uint8))


# ------------------------------------------------------------------------------- PR curve


def direct_counts(prob: np.ndarray, truth: np.ndarray, t: float) -> tuple[int, int]:
    keep = (truth != 255) & np.isfinite(prob)
    pred = (prob >= t) & keep
    return int((pred & (truth == 1)).sum()), int((pred & (truth == 0)).sum())


def test_histogram_matches_direct_computation_within_one_bin() -> None:
    rng = np.random.default_rng(2)
    truth = rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=20000, p=[0.7, 0.25, 0.05])
    prob = np.clip(rng.normal(0.3 + 0.4 * (truth == 1), 0.2), 0, 1).astype(np.float32)
    prob[::97] = np.nan
    h = ProbabilityHistogram()
    for chunk in np.array_split(np.arange(prob.size), 5):
        h.update(prob[chunk], truth[chunk])
    c = h.curve()
    n_pos = int(((truth == 1) & np.isfinite(prob)).sum())
    for t in (0.1, 0.25, 0.5, 0.731, 0.9):
        k = round(t * 1000)
        assert c["thresholds"][k] == pytest.approx(t)
        hi_tp, hi_fp = direct_counts(prob, truth, t + 1e-3)
        lo_tp, lo_fp = direct_counts(prob, truth, t - 1e-3)
        assert hi_tp <= c["tp"][k] <= lo_tp
        assert hi_fp <= c["fp"][k] <= lo_fp
        assert c["recall"][k] == pytest.approx(c["tp"][k] / n_pos)
        assert c["precision"][k] == pytest.approx(c["tp"][k] / (c["tp"][k] + c["fp"][k]))
    assert c["tp"][0] == n_pos  # threshold 0: every valid pixel is predicted


def test_histogram_is_exact_for_values_off_bin_edges() -> None:
    rng = np.random.default_rng(3)
    prob = (rng.integers(0, 1000, 5000) + 0.5) / 1000  # bin centres
    truth = (rng.random(5000) < prob).astype(np.uint8)
    h = ProbabilityHistogram()
    h.update(prob, truth)
    c = h.curve()
    for k in (0, 123, 500, 999):
        tp, fp = direct_counts(prob, truth, k / 1000)
        fn = int((truth == 1).sum()) - tp
        assert (c["tp"][k], c["fp"][k]) == (tp, fp)
        assert c["iou"][k] == pytest.approx(tp / (tp + fp + fn))
        assert c["f1"][k] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_best_threshold_separates_a_separable_case() -> None:
    rng = np.random.default_rng(4)
    neg, pos = rng.uniform(0.0, 0.4, 3000), rng.uniform(0.6, 1.0, 1000)
    prob = np.concatenate([neg, pos])
    truth = np.concatenate([np.zeros(3000, np.uint8), np.ones(1000, np.uint8)])
    h = ProbabilityHistogram()
    h.update(prob, truth)
    for metric in ("iou", "f1"):
        t = h.best_threshold(metric=metric)
        assert neg.max() < t <= pos.min()
        assert t == pytest.approx(0.5, abs=0.02)  # middle of the plateau
        tp, fp = direct_counts(prob, truth, t)
        assert (tp, fp) == (1000, 0)
    assert h.average_precision() == pytest.approx(1.0)


def test_histogram_skips_ignore_and_nan_and_needs_positives() -> None:
    h = ProbabilityHistogram()
    h.update(np.array([0.9, np.nan, 0.8, 0.2]), np.array([255, 1, 0, 0], np.uint8))
    assert h.positive.sum() == 0 and h.negative.sum() == 2
    with pytest.raises(InputError, match="no solar pixel"):
        h.best_threshold()
    with pytest.raises(InputError):
        h.best_threshold(metric="accuracy")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- objects


def test_exact_match() -> None:
    farm = sq(0, 0, 200, 200)
    m = object_metrics(frame([farm]), frame([farm]))
    assert (m["n_truth"], m["n_found"], m["n_pred"], m["n_correct"]) == (1, 1, 1, 1)
    assert m["recall"] == m["precision"] == m["f1"] == 1.0
    assert m["area_error"] == pytest.approx(0.0)
    assert m["median_area_error"] == pytest.approx(0.0)
    assert m["by_area"]["1-10 ha"]["n_found"] == 1


def test_iou_035_counts_and_020_does_not() -> None:
    truth = frame([sq(0, 0, 200, 200)])
    # A prediction inside the farm: IoU = covered fraction = its share of the farm.
    t, p = match_objects(frame([sq(0, 0, 200, 70)]), truth)
    assert t["best_iou"].iloc[0] == pytest.approx(0.35)
    assert t["found"].iloc[0] and p["correct"].iloc[0]
    t, p = match_objects(frame([sq(0, 0, 200, 40)]), truth)
    assert t["best_iou"].iloc[0] == pytest.approx(0.2)
    assert not t["found"].iloc[0]  # IoU 0.2, covers 20 %: missed
    assert p["correct"].iloc[0]  # ...but the piece lies on the farm: a correct detection


def test_iou_020_counts_when_it_covers_half_the_farm() -> None:
    truth = frame([sq(0, 0, 100, 100)])
    blob = frame([sq(-200, 0, 500, 100)])  # holds the whole farm, 5× its area
    t, p = match_objects(blob, truth)
    assert t["best_iou"].iloc[0] == pytest.approx(0.2)
    assert t["found"].iloc[0] and p["correct"].iloc[0]
    m = object_metrics(blob, truth)
    assert m["area_error"] == pytest.approx(4.0)  # 5 ha predicted for a 1 ha farm

    shifted = frame([sq(200, 0, 300, 100)])  # IoU 0.2, a third of each: neither rule
    truth3 = frame([sq(0, 0, 300, 100)])
    t, p = match_objects(shifted, truth3)
    assert t["best_iou"].iloc[0] == pytest.approx(0.2)
    assert not t["found"].iloc[0] and not p["correct"].iloc[0]
    m = object_metrics(shifted, truth3)
    assert (m["recall"], m["precision"], m["area_error"]) == (0.0, 0.0, None)


def test_big_farm_split_into_pieces_is_found_and_every_piece_correct() -> None:
    truth = frame([sq(0, 0, 400, 400)])
    halves = frame([sq(0, 0, 200, 400), sq(200, 0, 200, 400)])
    m = object_metrics(halves, truth)
    assert (m["n_found"], m["n_correct"], m["n_pred"]) == (1, 2, 2)
    assert m["area_error"] == pytest.approx(0.0)
    # Four strips: each has IoU 0.25 and covers 25 %, together they cover all of it.
    strips = frame([sq(100 * i, 0, 95, 400) for i in range(4)])
    t, p = match_objects(strips, truth)
    assert t["best_iou"].iloc[0] < 0.3
    assert t["found"].iloc[0] and p["correct"].all()
    assert t["covered"].iloc[0] == pytest.approx(0.95)
    assert t["area_error"].iloc[0] == pytest.approx(-0.05)


def test_prediction_over_two_farms_shares_its_area() -> None:
    truth = frame([sq(0, 0, 100, 100), sq(100, 0, 300, 100)])  # 1 ha and 3 ha, touching
    pred = frame([sq(0, 0, 400, 110)])
    t, p = match_objects(pred, truth)
    assert t["found"].all() and p["correct"].all()
    assert t["pred_area_ha"].to_numpy() == pytest.approx([1.1, 3.3])
    m = object_metrics(pred, truth)
    assert m["area_error"] == pytest.approx(0.1)


def test_false_positive_missed_farm_bins_and_area_error_sign() -> None:
    truth = frame(
        [
            sq(0, 0, 50, 50),  # 0.25 ha, found
            sq(1000, 0, 80, 80),  # 0.64 ha, unmapped: missed
            sq(2000, 0, 200, 200),  # 4 ha, found by a larger prediction
            sq(3000, 0, 300, 300),  # 9 ha, found by a smaller prediction
            sq(4000, 0, 400, 500),  # 20 ha, found exactly
            sq(6000, 0, 500, 500),  # 25 ha, missed
        ]
    )
    pred = frame(
        [
            sq(0, 0, 50, 50),
            sq(1990, -10, 220, 220),  # 4.84 ha
            sq(3000, 0, 300, 270),  # 8.1 ha
            sq(4000, 0, 400, 500),
            sq(20000, 20000, 70, 70),  # false positive far away, 0.49 ha
            sq(30000, 0, 200, 100),  # false positive, 2 ha
        ]
    )
    m = object_metrics(pred, truth)
    assert (m["n_truth"], m["n_found"], m["n_pred"], m["n_correct"]) == (6, 4, 6, 4)
    assert m["recall"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(4 / 6)
    small, mid, big = m["by_area"]["<1 ha"], m["by_area"]["1-10 ha"], m["by_area"][">=10 ha"]
    assert (small["n_truth"], small["n_found"], small["n_pred"], small["n_correct"]) == (2, 1, 2, 1)
    assert (mid["n_truth"], mid["n_found"], mid["n_pred"], mid["n_correct"]) == (2, 2, 3, 2)
    assert (big["n_truth"], big["n_found"], big["n_pred"], big["n_correct"]) == (2, 1, 1, 1)
    # Area errors: +21 % and −10 % in the middle bin; overall (0.25+4.84+8.1+20)/(0.25+4+9+20).
    assert mid["area_error"] == pytest.approx((4.84 + 8.1) / 13 - 1)
    assert mid["median_area_error"] == pytest.approx((0.21 - 0.1) / 2)
    assert m["area_error"] == pytest.approx(33.19 / 33.25 - 1)
    assert big["area_error"] == pytest.approx(0.0)
    t, _ = match_objects(pred, truth)
    assert t["area_error"].iloc[2] > 0 > t["area_error"].iloc[3]
    assert np.isnan(t["area_error"].iloc[1])

    # The same polygons in lon/lat give the same answer (equal-area reprojection).
    m_ll = object_metrics(pred.to_crs("EPSG:4326"), truth.to_crs("EPSG:4326"))
    for key in ("n_truth", "n_found", "n_pred", "n_correct"):
        assert m_ll[key] == m[key]
        for label in m["by_area"]:
            assert m_ll["by_area"][label][key] == m["by_area"][label][key]
    assert m_ll["area_error"] == pytest.approx(m["area_error"], abs=2e-3)
    assert m_ll["matched_truth_area_ha"] == pytest.approx(m["matched_truth_area_ha"], rel=2e-3)
    assert "laea" in m_ll["crs"]
    # Mixed CRSs are fine too.
    m_mixed = object_metrics(pred.to_crs("EPSG:4326"), truth)
    assert m_mixed["n_correct"] == 4 and m_mixed["n_found"] == 4


def test_multipolygon_farm_is_one_farm() -> None:
    farm = MultiPolygon([sq(0, 0, 100, 100), sq(300, 0, 100, 100)])
    m = object_metrics(frame([sq(0, 0, 100, 100), sq(300, 0, 100, 100)]), frame([farm]))
    assert (m["n_truth"], m["n_found"], m["n_pred"], m["n_correct"]) == (1, 1, 2, 2)


def test_small_truth_farms_can_be_excluded() -> None:
    truth = frame([sq(0, 0, 50, 50), sq(1000, 0, 200, 200)])  # 0.25 ha and 4 ha
    pred = frame([sq(0, 0, 50, 50), sq(5000, 0, 50, 50)])
    m = object_metrics(pred, truth, min_truth_area_ha=0.5)
    assert (m["n_truth"], m["n_found"], m["n_truth_excluded"]) == (1, 0, 1)
    # The detection of the excluded farm is neither correct nor false.
    assert (m["n_pred"], m["n_correct"], m["n_pred_ignored"]) == (1, 0, 1)


def test_missing_crs_and_bad_options_raise() -> None:
    good = frame([sq(0, 0, 100, 100)])
    with pytest.raises(InputError, match="no CRS"):
        object_metrics(frame([sq(0, 0, 100, 100)], crs=None), good)
    with pytest.raises(InputError, match="no CRS"):
        object_metrics(good, frame([sq(0, 0, 100, 100)], crs=None))
    with pytest.raises(InputError, match="iou_min"):
        object_metrics(good, good, iou_min=0)
    with pytest.raises(InputError, match="area_bins_ha"):
        object_metrics(good, good, area_bins_ha=(10.0, 1.0))


def test_empty_predictions() -> None:
    truth = frame([sq(0, 0, 100, 100), sq(1000, 0, 400, 400)])
    m = object_metrics(frame([]), truth)
    assert (m["n_truth"], m["n_found"], m["n_pred"]) == (2, 0, 0)
    assert m["recall"] == 0.0 and m["precision"] == 0.0
    assert m["area_error"] is None and m["median_area_error"] is None
    m = object_metrics(frame([sq(0, 0, 10, 10)]), frame([]))
    assert (m["n_truth"], m["n_pred"], m["n_correct"], m["recall"]) == (0, 1, 0, 0.0)
    json.dumps(m)  # always serialisable


# ------------------------------------------------------------------------------ end to end

H, W = 60, 80
TRANSFORM = Affine(10, 0, X0, 0, -10, Y0)
#: Pixel boxes (row0, col0, row1, col1).
FARM_A, FARM_B = (10, 10, 30, 30), (40, 50, 50, 70)
FARM_C, FARM_D = (5, 60, 8, 63), (56, 20, 59, 30)
FALSE_POS = (45, 5, 52, 15)


def px_box(r0: int, c0: int, r1: int, c1: int) -> Any:
    return box(X0 + c0 * 10, Y0 - r1 * 10, X0 + c1 * 10, Y0 - r0 * 10)


def make_region(tmp: Path) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    prob = rng.uniform(0.0, 0.3, (H, W)).astype(np.float32)
    solar = np.zeros((H, W), bool)
    for r0, c0, r1, c1 in (FARM_A, FARM_B, FARM_C, FARM_D):
        solar[r0:r1, c0:c1] = True
    prob[10:30, 10:30] = 0.9
    prob[40:50, 50:60] = 0.7  # half of farm B detected
    prob[40:50, 60:70] = 0.3
    prob[5:8, 60:63] = 0.2  # farm C missed
    prob[45:52, 5:15] = 0.8  # false positive
    prob[55:, :] = np.nan  # no data, farm D under it
    ignore = np.zeros((H, W), np.uint8)
    ignore[:, :3] = 255
    prob[20:30, :3] = 0.95  # in the ignored strip: must not count
    mask = np.where(solar, 1, 0).astype(np.uint8)
    mask[:, :3] = 255

    files: dict[str, Any] = {
        "prob": write_cog(tmp / "prob.tif", prob, crs=UTM, transform=TRANSFORM, nodata=np.nan),
        "mask": write_cog(
            tmp / "mask.tif", mask, crs=UTM, transform=TRANSFORM, overview_resampling="nearest"
        ),
        "ignore": write_cog(
            tmp / "ignore.tif", ignore, crs=UTM, transform=TRANSFORM, overview_resampling="nearest"
        ),
    }
    farms = gpd.GeoDataFrame(
        {"farm_id": [1, 2, 3, 4]},
        geometry=[px_box(*b) for b in (FARM_A, FARM_B, FARM_C, FARM_D)],
        crs=UTM,
    ).to_crs("EPSG:4326")  # another CRS than the raster's: reprojected on the way
    files["truth"] = write_vector(farms, tmp / "truth.gpkg", layer="farms")
    preds = gpd.GeoDataFrame(
        {"prob_mean": [0.9, 0.7, 0.8]},
        geometry=[px_box(*FARM_A), px_box(40, 50, 50, 60), px_box(*FALSE_POS)],
        crs=UTM,
    )
    files["polygons"] = write_vector(preds, tmp / "polygons.gpkg", layer="polygons")

    valid = np.isfinite(prob) & (ignore != 255)
    counts = PixelCounts()
    counts.update(valid & (prob >= 0.5), np.where(valid, solar, 255).astype(np.uint8))
    files["expected"] = counts.metrics()
    return files


def test_evaluate_prediction_end_to_end(tmp_path: Path) -> None:
    f = make_region(tmp_path)
    out = tmp_path / "eval"
    res = evaluate_prediction(
        f["prob"], f["mask"], polygons=f["polygons"], threshold=0.5, out=out, block_rows=16
    )
    px = res["pixel"]
    for key in ("tp", "fp", "fn", "tn", "precision", "recall", "iou"):
        assert px[key] == pytest.approx(f["expected"][key]), key
    assert px["tp"] == 400 + 100 and px["fp"] == 70
    assert res["threshold"] == 0.5
    best = res["best_threshold"]["iou"]
    assert 0.3 <= best["threshold"] < 0.7
    assert best["iou"] >= px["iou"]

    obj = res["object"]
    assert (obj["n_truth"], obj["n_found"], obj["n_pred"], obj["n_correct"]) == (3, 2, 3, 2)
    assert obj["n_truth_unobserved"] == 1  # farm D lies under the no-data rows
    assert obj["by_area"]["1-10 ha"]["n_found"] == 2
    assert obj["by_area"]["<1 ha"]["n_truth"] == 1

    assert 0.5 < px["roc_auc"] <= 1 and 0 < px["pr_auc"] == px["average_precision"] <= 1

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["pixel"]["tp"] == px["tp"]
    assert saved["pixel"]["roc_auc"] == px["roc_auc"] and saved["pixel"]["pr_auc"] == px["pr_auc"]
    assert saved["best_threshold"]["iou"]["iou"] == best["iou"]
    assert saved["object"]["n_found"] == 2
    png = (out / "pr_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000


def test_vector_truth_and_ignore_mask_agree_with_mask_truth(tmp_path: Path) -> None:
    f = make_region(tmp_path)
    a = evaluate_prediction(f["prob"], f["mask"], polygons=f["polygons"], threshold=0.5)
    b = evaluate_prediction(
        f["prob"], f["truth"], polygons=f["polygons"], threshold=0.5, ignore=f["ignore"],
        block_rows=7,
    )  # fmt: skip
    assert a["pixel"] == b["pixel"]
    assert a["best_threshold"] == b["best_threshold"]
    for key in ("n_truth", "n_found", "n_pred", "n_correct", "n_truth_unobserved"):
        assert a["object"][key] == b["object"][key], key
    # A (4 ha) found exactly, B (2 ha) half found: 5 ha predicted for 6 ha.
    assert b["object"]["area_error"] == pytest.approx(-1 / 6, abs=1e-6)
    assert b["object"]["median_area_error"] == pytest.approx(-0.25, abs=1e-6)
    # Farms off the raster are left out, not missed; a named layer of a multi-layer file.
    farms = gpd.read_file(f["truth"], layer="farms")
    off = gpd.GeoDataFrame({"farm_id": [9]}, geometry=[px_box(100, 100, 120, 120)], crs=UTM).to_crs(
        farms.crs
    )
    more = tmp_path / "more.gpkg"
    farms.iloc[:1].to_file(more, layer="aaa_other")
    with_off = gpd.GeoDataFrame([*farms.to_dict("records"), *off.to_dict("records")], crs=farms.crs)
    with_off.to_file(more, layer="farms")
    d = evaluate_prediction(
        f["prob"], more, polygons=f["polygons"], threshold=0.5, ignore=f["ignore"],
        truth_layer="farms",
    )  # fmt: skip
    assert d["object"]["n_truth"] == b["object"]["n_truth"] == 3
    assert d["object"]["n_truth_unobserved"] == 2
    assert d["pixel"] == b["pixel"]

    c = evaluate_prediction(f["prob"], f["truth"], threshold=0.5)  # no ignore mask
    assert c["pixel"]["fp"] > b["pixel"]["fp"]  # the ignored strip's 0.95 pixels now count
    assert c["object"] is None


def test_evaluate_rejects_mismatched_grids_and_bad_values(tmp_path: Path) -> None:
    f = make_region(tmp_path)
    shifted = write_cog(
        tmp_path / "shifted.tif",
        np.zeros((H, W), np.uint8),
        crs=UTM,
        transform=TRANSFORM * Affine.translation(1, 0),
    )
    with pytest.raises(InputError, match=r"shifted\.tif"):
        evaluate_prediction(f["prob"], shifted, threshold=0.5)
    bad = write_cog(
        tmp_path / "bad.tif", np.full((H, W), 7, np.uint8), crs=UTM, transform=TRANSFORM
    )
    with pytest.raises(InputError, match=r"bad\.tif"):
        evaluate_prediction(f["prob"], bad, threshold=0.5)
    for threshold in (1.5, 0.0, 1.0, float("nan")):  # a probability strictly inside (0, 1)
        with pytest.raises(InputError, match="threshold"):
            evaluate_prediction(f["prob"], f["mask"], threshold=threshold)


def test_evaluate_without_solar_truth(tmp_path: Path) -> None:
    f = make_region(tmp_path)
    empty = write_cog(
        tmp_path / "empty.tif", np.zeros((H, W), np.uint8), crs=UTM, transform=TRANSFORM
    )
    res = evaluate_prediction(f["prob"], empty, threshold=0.5, out=tmp_path / "e")
    assert res["best_threshold"] is None
    assert res["pixel"]["recall"] == 0.0 and res["pixel"]["fp"] > 0
    assert res["pixel"]["roc_auc"] is None  # undefined without solar pixels: JSON null
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["pixel"]["roc_auc"] is None
    assert (tmp_path / "e" / "pr_curve.png").exists()


def test_plot_pr_curve_needs_curve_arrays(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="curve misses"):
        plot_pr_curve({"thresholds": np.zeros(3)}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_roc_auc_known_answers() -> None:
    from train.evaluate import roc_auc

    truth = np.array([0, 0, 1, 1, 255])
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9, 0.0]), truth) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1, 5.0]), truth) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5, 0.5]), truth) == 0.5
    # one of four positive/negative pairs is ordered wrongly
    assert roc_auc(np.array([0.1, 0.6, 0.5, 0.9, 0.0]), truth) == 0.75
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([0, 0])))


def test_histogram_roc_auc_known_answers() -> None:
    def auc(prob: list[float], truth: list[int]) -> float:
        h = ProbabilityHistogram()
        h.update(np.array(prob), np.array(truth, np.uint8))
        return h.roc_auc()

    truth = [0, 0, 0, 1, 1, 255]
    assert auc([0.1, 0.2, 0.3, 0.8, 0.9, 0.0], truth) == 1.0  # separable
    assert auc([0.8, 0.9, 0.7, 0.1, 0.2, 1.0], truth) == 0.0  # reversed
    assert auc([0.4] * 6, truth) == 0.5  # constant: every pair a tie
    # 0.5 beats 0.1 and ties the two background 0.5s; 0.9 beats all three: 5 of 6 pairs
    assert auc([0.1, 0.5, 0.5, 0.5, 0.9, 0.0], truth) == pytest.approx(5 / 6)
    assert np.isnan(auc([0.1, 0.2], [0, 0])) and np.isnan(auc([0.1, 0.2], [1, 255]))


def test_histogram_roc_auc_is_the_rank_auc_of_binned_probabilities() -> None:
    from train.evaluate import N_BINS, roc_auc

    rng = np.random.default_rng(7)
    truth = (rng.random(20_000) < 0.2).astype(np.uint8)
    prob = np.clip(rng.normal(0.35 + 0.3 * truth, 0.2), 0.0, 1.0)  # overlapping classes
    truth[rng.random(truth.size) < 0.05] = 255
    h = ProbabilityHistogram()
    for part in np.array_split(np.arange(prob.size), 7):  # streamed in chunks
        h.update(prob[part], truth[part])
    binned = np.clip((prob * N_BINS).astype(np.int64), 0, N_BINS - 1)
    assert h.roc_auc() == pytest.approx(roc_auc(binned, truth), abs=1e-12)
    assert 0.75 < h.roc_auc() < 0.95
    # Binning costs little: within a bin's worth of the exact value.
    assert h.roc_auc() == pytest.approx(roc_auc(prob, truth), abs=2e-3)
