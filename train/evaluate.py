"""Evaluate solar-farm segmentation at pixel level and at object (farm) level.

Pixel level: streaming confusion counts at one threshold (:class:`PixelCounts`) and a streaming
precision-recall curve over 1000 thresholds, with PR-AUC and ROC-AUC
(:class:`ProbabilityHistogram`). Truth masks use the labelled-scene contract: 0 background,
1 solar, 255 ignore.

Object level (:func:`object_metrics`): detected polygons against complete ground-truth farm
polygons, following the protocol of Kruitwagen et al. (2021), "A global inventory of
photovoltaic solar energy generating units", Nature 598:604: a farm is found when a detection
overlaps it with IoU >= 0.3 or covers at least half of it. The exact rules, including the
precision side, are in :func:`match_objects`.

:func:`evaluate_prediction` runs both on a probability COG and a truth mask or truth polygons,
window by window, and writes ``metrics.json`` and ``pr_curve.png``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import numpy as np
import shapely
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from data_prep.rasterize import IGNORE, SOLAR, rasterize_labels
from solarmap.errors import InputError, OutputExistsError
from solarmap.geo import (
    atomic_path,
    check_vector_crs,
    equal_area_crs,
    open_raster,
    polygonize_mask,
    read_vector,
    write_json,
)
from solarmap.model import check_threshold

if TYPE_CHECKING:
    import geopandas as gpd
    from pyproj import CRS

log = logging.getLogger(__name__)

#: Bins of :class:`ProbabilityHistogram` on [0, 1]; thresholds are the lower bin edges.
N_BINS: Final = 1000
#: Rows read per window by :func:`evaluate_prediction`.
BLOCK_ROWS: Final = 1024
#: Raster suffixes :func:`evaluate_prediction` reads as a truth mask (anything else: vector).
_RASTER_SUFFIXES: Final = frozenset({".tif", ".tiff", ".vrt", ".jp2", ".img"})
#: Name endings :func:`evaluate_prediction` reads as OSM XML (solar plants as the truth).
_OSM_SUFFIXES: Final = (".osm", ".osm.bz2", ".osm.gz", ".xml")
#: Files :func:`evaluate_prediction` writes into its output folder.
METRICS_FILE: Final = "metrics.json"
PR_CURVE_FILE: Final = "pr_curve.png"
#: Slack on the IoU and cover thresholds, so that a rule met exactly is not lost to rounding.
_EPS: Final = 1e-9


# --------------------------------------------------------------------------------------------
# Scores from counts
# --------------------------------------------------------------------------------------------

#: Keys of :func:`scores`.
SCORE_NAMES: Final = ("precision", "recall", "f1", "iou")
#: A count or an array of counts (one per threshold): the scores below work on both.
Count = TypeVar("Count", float, np.ndarray)


def _ratio(num: Any, den: Any) -> Any:
    """``num / den``, 0.0 where ``den`` is 0; a float for scalars, ``float64`` for arrays."""
    if np.ndim(num) == 0 and np.ndim(den) == 0:
        return float(num) / float(den) if den else 0.0
    num, den = np.broadcast_arrays(np.asarray(num), np.asarray(den))
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def precision_score(tp: Count, fp: Count) -> Count:
    """``tp / (tp + fp)``: the share of predictions that are right (0.0 when none)."""
    return _ratio(tp, tp + fp)


def recall_score(tp: Count, fn: Count) -> Count:
    """``tp / (tp + fn)``: the share of the truth that is found (0.0 when there is none)."""
    return _ratio(tp, tp + fn)


def f1_score(tp: Count, fp: Count, fn: Count) -> Count:
    """``2 tp / (2 tp + fp + fn)``: the harmonic mean of precision and recall, from counts."""
    return _ratio(2 * tp, 2 * tp + fp + fn)


def iou_score(tp: Count, fp: Count, fn: Count) -> Count:
    """``tp / (tp + fp + fn)``: intersection over union (Jaccard index)."""
    return _ratio(tp, tp + fp + fn)


def harmonic_mean(precision: Count, recall: Count) -> Count:
    """F1 from precision and recall, for counts that differ between the two sides (objects:
    found farms for recall, correct detections for precision)."""
    return _ratio(2 * precision * recall, precision + recall)


def roc_auc(score: np.ndarray, truth: np.ndarray) -> float:
    """Pixel ROC-AUC of any real-valued ``score`` (higher = more solar) against ``truth``
    (0 background, 1 solar, 255 ignore; NaN scores are skipped): the Mann-Whitney U statistic
    from average ranks, so ties count one half. NaN when either class is absent.

    Written here rather than taken from scikit-learn, which the project does not depend on;
    scipy's ``rankdata`` does the ranking.
    """
    from scipy.stats import rankdata

    score, truth = np.asarray(score, np.float64).ravel(), np.asarray(truth).ravel()
    keep = (truth != IGNORE) & np.isfinite(score)
    score, solar = score[keep], truth[keep] == SOLAR
    n_pos, n_neg = int(solar.sum()), int((~solar).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[solar].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def scores(tp: Count, fp: Count, fn: Count) -> dict[str, Count]:
    """``precision``, ``recall``, ``f1`` and ``iou`` from counts (scalars or arrays).

    A ratio whose denominator is zero is 0.0, so the result is always finite and JSON-safe.
    """
    return {
        "precision": precision_score(tp, fp),
        "recall": recall_score(tp, fn),
        "f1": f1_score(tp, fp, fn),
        "iou": iou_score(tp, fp, fn),
    }


# --------------------------------------------------------------------------------------------
# Pixel level
# --------------------------------------------------------------------------------------------


@dataclass
class PixelCounts:
    """Streaming confusion counts of a binary segmentation; truth pixels equal to 255 are ignored.

    Feed chunks with :meth:`update`; counts add up, so streaming over windows gives exactly the
    one-shot answer. Pixels without a valid probability (NaN) should be passed as ``pred``
    False and excluded by the caller by setting their ``truth`` to 255.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def update(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """Add one chunk.

        Args:
            pred: ``bool[H, W]`` (or any shape, e.g. ``[N, H, W]``), True where solar is predicted.
            truth: integer array of the same shape: 0 background, 1 solar, 255 ignore.

        Raises:
            InputError: if the shapes differ, ``pred`` is not boolean, or ``truth`` holds values
                other than 0, 1 and 255.
        """
        pred, truth = np.asarray(pred), np.asarray(truth)
        _check_truth(pred, truth, what="pred")
        if pred.dtype != np.bool_:
            raise InputError(
                f"pred must be a boolean array, got {pred.dtype}; threshold probabilities first"
            )
        valid = truth != IGNORE
        solar = truth == SOLAR
        pv = pred & valid
        tp = int(np.count_nonzero(pv & solar))
        n_pred = int(np.count_nonzero(pv))
        n_solar = int(np.count_nonzero(solar))
        n_valid = int(np.count_nonzero(valid))
        self.tp += tp
        self.fp += n_pred - tp
        self.fn += n_solar - tp
        self.tn += n_valid - n_pred - n_solar + tp

    def metrics(self) -> dict[str, float]:
        """Precision, recall, F1 and IoU of the solar class, plus the four counts.

        A ratio whose denominator is zero is defined as 0.0 (e.g. precision when nothing was
        predicted, recall when the truth has no solar pixel), so the result is always finite
        and JSON-safe; read the counts to tell "0 because undefined" from "0 because wrong".
        """
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        return {**scores(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _check_truth(values: np.ndarray, truth: np.ndarray, *, what: str) -> None:
    if values.shape != truth.shape:
        raise InputError(f"{what} shape {values.shape} does not match truth shape {truth.shape}")
    if truth.dtype.kind not in "ui":
        raise InputError(f"truth must be an integer mask (0, 1, 255), got {truth.dtype}")
    bad = (truth != 0) & (truth != SOLAR) & (truth != IGNORE)
    if bad.any():
        found = np.unique(truth[bad])[:5].tolist()
        raise InputError(f"truth mask holds values {found}; use 0 background, 1 solar, 255 ignore")


class ProbabilityHistogram:
    """Streaming precision-recall curve (and ROC-AUC) of solar probabilities.

    Keeps two histograms of 1000 bins on [0, 1] (probabilities of solar pixels and of
    background pixels), so memory is constant however many pixels are fed. Curve thresholds are
    the lower bin edges 0.000, 0.001, ..., 0.999; a pixel is predicted solar when its
    probability is >= the threshold, so the curve is exact at those edges (up to float rounding
    of values that lie on an edge). Probabilities outside [0, 1] are clipped into it.
    """

    def __init__(self) -> None:
        self.positive = np.zeros(N_BINS, dtype=np.int64)
        self.negative = np.zeros(N_BINS, dtype=np.int64)

    @property
    def thresholds(self) -> np.ndarray:
        """``float64[1000]``: the thresholds of :meth:`curve`."""
        return np.arange(N_BINS, dtype=np.float64) / N_BINS

    def update(self, prob: np.ndarray, truth: np.ndarray) -> None:
        """Add one chunk; pixels with truth 255 or a NaN probability are skipped.

        Args:
            prob: float probabilities of solar, any shape.
            truth: integer array of the same shape: 0 background, 1 solar, 255 ignore.

        Raises:
            InputError: if the shapes differ or ``truth`` holds values other than 0, 1 and 255.
        """
        prob, truth = np.asarray(prob), np.asarray(truth)
        _check_truth(prob, truth, what="prob")
        keep = (truth != IGNORE) & np.isfinite(prob)
        p = prob[keep]
        solar = truth[keep] == SOLAR
        idx = np.clip((p * N_BINS).astype(np.int64), 0, N_BINS - 1)
        self.positive += np.bincount(idx[solar], minlength=N_BINS)
        self.negative += np.bincount(idx[~solar], minlength=N_BINS)

    def curve(self) -> dict[str, np.ndarray]:
        """Metrics at every threshold.

        Returns:
            ``float64[1000]`` arrays ``thresholds``, ``precision``, ``recall``, ``f1``, ``iou``
            and ``int64[1000]`` counts ``tp``, ``fp``, ``fn``. As in
            :meth:`PixelCounts.metrics`, a ratio with a zero denominator is 0.0 (precision at
            thresholds above every probability: check ``tp + fp`` to tell).
        """
        # Reversed cumulative sums: pixels in bins >= k are predicted solar at threshold k/1000.
        tp = np.cumsum(self.positive[::-1])[::-1]
        fp = np.cumsum(self.negative[::-1])[::-1]
        fn = int(self.positive.sum()) - tp
        return {"thresholds": self.thresholds, **scores(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}

    def best_threshold(self, *, metric: Literal["f1", "iou"] = "iou") -> float:
        """The threshold that maximises ``metric`` (see :meth:`best`).

        Raises:
            InputError: if ``metric`` is unknown or no solar pixel has been seen (every
                threshold scores 0).
        """
        return self.best(metric=metric)[0]

    def best(self, *, metric: Literal["f1", "iou"] = "iou") -> tuple[float, dict[str, float]]:
        """The threshold that maximises ``metric``, and the :func:`scores` there.

        When several thresholds tie for the best value (a plateau, as between the two classes
        of a separable case), the middle one of them is returned: the choice farthest from
        either class.

        Raises:
            InputError: if ``metric`` is unknown or no solar pixel has been seen (every
                threshold scores 0).
        """
        if metric not in ("f1", "iou"):
            raise InputError(f"metric must be 'f1' or 'iou', got {metric!r}")
        if self.positive.sum() == 0:
            raise InputError("no solar pixel in the truth yet; cannot choose a threshold")
        curve = self.curve()
        values = curve[metric]
        best = np.flatnonzero(values >= values.max() - 1e-12)
        k = int(best[len(best) // 2])
        return float(self.thresholds[k]), {name: float(curve[name][k]) for name in SCORE_NAMES}

    def average_precision(self) -> float:
        """Area under the precision-recall curve (step rule, as scikit-learn's ``AP``): the
        PR-AUC that :func:`evaluate_prediction` reports."""
        c = self.curve()
        recall = np.append(c["recall"], 0.0)
        return float(np.sum((recall[:-1] - recall[1:]) * c["precision"]))

    def roc_auc(self) -> float:
        """Area under the ROC curve through the bin edges (trapezoid rule).

        The same number as the Mann-Whitney statistic of :func:`roc_auc` on probabilities
        quantised to the bins: a solar pixel in a higher bin than a background pixel counts 1,
        in the same bin one half. NaN when either class has not been seen.
        """
        n_pos, n_neg = int(self.positive.sum()), int(self.negative.sum())
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        below = np.cumsum(self.negative) - self.negative  # background pixels in lower bins
        pairs = self.positive.astype(np.float64) @ (below + 0.5 * self.negative)
        return float(pairs / (n_pos * n_neg))


# --------------------------------------------------------------------------------------------
# Object level
# --------------------------------------------------------------------------------------------


def _crs_of(gdf: Any, what: str) -> CRS:
    crs = getattr(gdf, "crs", None)
    if crs is None:
        raise InputError(f"{what} have no CRS; set one (gdf.set_crs(...)) or fix the file")
    return crs


def _working_crs(pred: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> CRS:
    """A CRS in metres to measure areas in.

    When both inputs share one projected CRS in metres (a scene's UTM zone), that CRS is kept:
    its area error is below 0.2 % inside the zone, far below the error of 10 m pixels.
    Otherwise (geographic inputs, or two different CRSs) a Lambert azimuthal equal-area CRS
    centred on the data is used.
    """
    a, b = _crs_of(pred, "predicted polygons"), _crs_of(truth, "truth polygons")
    if a == b and a.is_projected and a.axis_info[0].unit_name in ("metre", "meter"):
        return a
    bounds = [
        g.geometry.to_crs("EPSG:4326").total_bounds
        for g in (pred, truth)
        if len(g) and not g.geometry.is_empty.all()
    ]
    if not bounds:
        return equal_area_crs(None)
    b4 = np.array(bounds)
    return equal_area_crs((b4[:, 0].min(), b4[:, 1].min(), b4[:, 2].max(), b4[:, 3].max()))


def _clean(gdf: gpd.GeoDataFrame, crs: CRS, what: str) -> gpd.GeoDataFrame:
    """Rows with a polygonal geometry of positive area, valid, in ``crs``."""
    import geopandas as gpd

    out = gdf.to_crs(crs)
    geoms = np.asarray(out.geometry.values, dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    geoms[missing] = None
    invalid = ~missing & ~shapely.is_valid(geoms)
    if invalid.any():
        # make_valid may return a collection with lines; buffer(0) keeps its polygonal part.
        geoms[invalid] = shapely.buffer(shapely.make_valid(geoms[invalid]), 0)
    area = shapely.area(geoms)
    keep = ~missing & (np.nan_to_num(area) > 0)
    if (~keep).any():
        log.warning("%s: %d of %d rows have no area and are skipped", what, (~keep).sum(), len(out))
    out = gpd.GeoDataFrame(out.drop(columns=out.geometry.name), geometry=geoms, crs=crs)
    return out.loc[keep].copy()


def _group_area(
    geoms: np.ndarray, areas: np.ndarray, keys: np.ndarray, n: int, select: np.ndarray
) -> np.ndarray:
    """Area of the union of ``geoms`` grouped by ``keys`` (``float64[n]``); only ``select``."""
    import geopandas as gpd

    geoms, areas, keys = geoms[select], areas[select], keys[select]
    out = np.bincount(keys, weights=areas, minlength=n).astype(np.float64)
    # Groups of one piece: the piece's area. Groups of several may overlap each other, so
    # their union is measured (geopandas' dissolve is the grouped union_all).
    counts = np.bincount(keys, minlength=n)
    multi = counts[keys] > 1
    if multi.any():
        parts = gpd.GeoDataFrame({"key": keys[multi]}, geometry=list(geoms[multi]))
        merged = parts.dissolve(by="key")
        out[merged.index.to_numpy()] = shapely.area(np.asarray(merged.geometry.values))
    return out


def match_objects(
    pred: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    *,
    iou_min: float = 0.3,
    cover_min: float = 0.5,
    min_truth_area_ha: float = 0.0,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Match predicted polygons to truth farms, one row per polygon.

    Each row is one object: a MultiPolygon farm is one farm, a MultiPolygon detection one
    detection. Areas are measured in metres (see :func:`object_metrics` for the CRS). With
    ``P`` a prediction, ``T`` a truth farm, and ``∪P`` / ``∪T`` the union of all predictions /
    of all (kept) truth farms:

    - ``T`` is **found** when ``IoU(P, T) >= iou_min`` for some ``P``, or
      ``area(T ∩ ∪P) / area(T) >= cover_min``: the detections together cover enough of it (a
      farm detected in several fragments, e.g. cut by a road, is found; with a single
      detection this is the published "covers >= 50 %" rule).
    - ``P`` is **correct** when ``IoU(P, T) >= iou_min`` for some ``T``, or
      ``area(P ∩ T) / area(T) >= cover_min`` for some ``T`` (it covers most of a farm, even if
      it spills over), or ``area(P ∩ ∪T) / area(P) >= cover_min`` (most of it lies on farms:
      a piece of a big farm is correct).
    - Truth farms smaller than ``min_truth_area_ha`` are **excluded**: they count neither as
      found nor as missed, and a prediction that is correct only because of them is
      **ignored** (neither correct nor false).

    Each correct prediction's area is shared among the farms it overlaps, in proportion to
    the overlap; ``pred_area_ha`` of a farm is the sum of its shares, so predicted areas add up
    without double counting.

    Args:
        pred: predicted polygons, any CRS.
        truth: complete ground-truth farm polygons, any CRS.
        iou_min: IoU at or above which a pair matches.
        cover_min: covered fraction at or above which a pair (or a union) matches.
        min_truth_area_ha: truth farms below this area are excluded.

    Returns:
        ``(truth, pred)`` GeoDataFrames in the working CRS, without rows of no area, with the
        input columns plus: truth ``area_ha``, ``excluded``, ``found``, ``best_iou``,
        ``covered`` (fraction of the farm under predictions), ``pred_area_ha``,
        ``area_error`` (``pred_area_ha / area_ha - 1``, NaN when not found); pred ``area_ha``,
        ``correct``, ``ignored``, ``best_iou``, ``in_truth`` (fraction of it on kept farms).

    Raises:
        InputError: if either input has no CRS or an option is out of range.
    """
    if not 0 < iou_min <= 1:
        raise InputError(f"iou_min must be in (0, 1], got {iou_min}")
    if not 0 < cover_min <= 1:
        raise InputError(f"cover_min must be in (0, 1], got {cover_min}")
    if not min_truth_area_ha >= 0:
        raise InputError(f"min_truth_area_ha must be >= 0, got {min_truth_area_ha}")
    crs = _working_crs(pred, truth)
    p_df = _clean(pred, crs, "predicted polygons")
    t_df = _clean(truth, crs, "truth polygons")
    p_geoms = np.asarray(p_df.geometry.values, dtype=object)
    t_geoms = np.asarray(t_df.geometry.values, dtype=object)
    n_p, n_t = len(p_geoms), len(t_geoms)
    a_p, a_t = shapely.area(p_geoms), shapely.area(t_geoms)
    kept_t = a_t >= min_truth_area_ha * 1e4

    # Every overlapping (prediction, farm) pair, with its intersection.
    if n_p and n_t:
        pi, ti = shapely.STRtree(t_geoms).query(p_geoms, predicate="intersects")
    else:
        pi = ti = np.zeros(0, dtype=np.int64)
    inter_geoms = shapely.intersection(p_geoms[pi], t_geoms[ti])
    inter = shapely.area(inter_geoms)
    pos = inter > 0
    pi, ti, inter_geoms, inter = pi[pos], ti[pos], inter_geoms[pos], inter[pos]
    iou = inter / (a_p[pi] + a_t[ti] - inter)
    pair_cover_t = inter / a_t[ti]

    # Truth side.
    best_iou_t = np.zeros(n_t)
    np.maximum.at(best_iou_t, ti, iou)
    covered = _group_area(inter_geoms, inter, ti, n_t, np.ones(len(ti), bool)) / a_t
    found = kept_t & ((best_iou_t >= iou_min - _EPS) | (covered >= cover_min - _EPS))

    # Prediction side: once against kept farms, once against all (to find the ignored ones).
    def correct_against(use: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        best_iou = np.zeros(n_p)
        best_cover_t = np.zeros(n_p)
        np.maximum.at(best_iou, pi[use], iou[use])
        np.maximum.at(best_cover_t, pi[use], pair_cover_t[use])
        inside = _group_area(inter_geoms, inter, pi, n_p, use) / a_p
        ok = (
            (best_iou >= iou_min - _EPS)
            | (best_cover_t >= cover_min - _EPS)
            | (inside >= cover_min - _EPS)
        )
        return ok, best_iou, inside

    correct, best_iou_p, in_truth = correct_against(kept_t[ti])
    correct_any, _, _ = correct_against(np.ones(len(ti), bool))
    ignored = correct_any & ~correct

    # Share each correct prediction's area among the farms it overlaps, by overlap.
    overlap_p = np.bincount(pi, weights=inter, minlength=n_p)
    share = np.where(correct[pi], inter / np.maximum(overlap_p[pi], 1e-12) * a_p[pi], 0.0)
    pred_area = np.bincount(ti, weights=share, minlength=n_t)

    t_out = t_df.assign(
        area_ha=a_t / 1e4,
        excluded=~kept_t,
        found=found,
        best_iou=best_iou_t,
        covered=covered,
        pred_area_ha=pred_area / 1e4,
        area_error=np.where(found, pred_area / np.maximum(a_t, 1e-12) - 1, np.nan),
    )
    p_out = p_df.assign(
        area_ha=a_p / 1e4, correct=correct, ignored=ignored, best_iou=best_iou_p, in_truth=in_truth
    )
    return t_out, p_out


def _bin_labels(edges: tuple[float, ...]) -> list[str]:
    labels = [f"<{edges[0]:g} ha"]
    labels += [f"{lo:g}-{hi:g} ha" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f">={edges[-1]:g} ha"]


def _summary(t: gpd.GeoDataFrame, p: gpd.GeoDataFrame) -> dict[str, Any]:
    n_truth, n_found = len(t), int(t["found"].sum())
    n_pred, n_correct = len(p), int(p["correct"].sum())
    recall = recall_score(n_found, n_truth - n_found)
    precision = precision_score(n_correct, n_pred - n_correct)
    f = t.loc[t["found"]]
    truth_area, pred_area = float(f["area_ha"].sum()), float(f["pred_area_ha"].sum())
    return {
        "n_truth": n_truth,
        "n_found": n_found,
        "recall": recall,
        "n_pred": n_pred,
        "n_correct": n_correct,
        "precision": precision,
        "f1": harmonic_mean(precision, recall),
        "matched_truth_area_ha": truth_area,
        "matched_pred_area_ha": pred_area,
        "area_error": pred_area / truth_area - 1 if truth_area > 0 else None,
        "median_area_error": float(np.median(f["area_error"])) if len(f) else None,
    }


def object_metrics(
    pred: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    *,
    iou_min: float = 0.3,
    cover_min: float = 0.5,
    area_bins_ha: tuple[float, ...] = (1.0, 10.0),
    min_truth_area_ha: float = 0.0,
) -> dict[str, Any]:
    """Object-level recall, precision and area error of detected polygons against truth farms.

    Matching rules: see :func:`match_objects`. Areas are in metres: when both inputs share one
    projected CRS in metres it is used; otherwise (geographic or mixed CRSs) both are projected
    to a Lambert azimuthal equal-area CRS centred on the data, so lon/lat and UTM inputs give
    the same answer.

    Counts: ``n_truth`` farms (excluding those below ``min_truth_area_ha``), ``n_found``,
    ``recall = n_found / n_truth``; ``n_pred`` predictions (excluding ignored ones),
    ``n_correct``, ``precision = n_correct / n_pred``; ``f1``. A zero denominator gives 0.0
    (no predictions: precision 0.0), as for pixel metrics. Area error over found farms:
    ``area_error = matched_pred_area_ha / matched_truth_area_ha - 1`` (positive: predictions
    too large) and ``median_area_error``, the median of per-farm ``pred_area / area - 1``; both
    None when no farm was found.

    Per area bin (``by_area``, keys like ``"<1 ha"``, ``"1-10 ha"``, ``">=10 ha"``), the truth
    side (recall, area error) is binned by the truth farm's area and the prediction side
    (precision) by the predicted polygon's area. A bin holds areas ``lo <= a < hi``.

    Args:
        pred: predicted polygons (GeoDataFrame with a CRS).
        truth: complete ground-truth farm polygons (GeoDataFrame with a CRS).
        iou_min: IoU at or above which a pair matches.
        cover_min: covered fraction at or above which a pair matches.
        area_bins_ha: increasing positive bin edges in hectares.
        min_truth_area_ha: truth farms smaller than this are left out of the evaluation.

    Returns:
        The overall metrics, ``by_area``, ``n_truth_excluded``, ``n_pred_ignored``, the
        ``rules`` used and the working ``crs``; JSON-serialisable.

    Raises:
        InputError: if either input has no CRS or an option is out of range.
    """
    edges = tuple(float(e) for e in area_bins_ha)
    if not edges or any(e <= 0 for e in edges) or any(np.diff(edges) <= 0):
        raise InputError(f"area_bins_ha must be increasing positive areas, got {area_bins_ha}")
    t, p = match_objects(
        pred, truth, iou_min=iou_min, cover_min=cover_min, min_truth_area_ha=min_truth_area_ha
    )
    t_kept, p_kept = t.loc[~t["excluded"]], p.loc[~p["ignored"]]
    result = _summary(t_kept, p_kept)
    t_bin = np.digitize(t_kept["area_ha"].to_numpy(), edges)
    p_bin = np.digitize(p_kept["area_ha"].to_numpy(), edges)
    result["by_area"] = {
        label: _summary(t_kept.loc[t_bin == i], p_kept.loc[p_bin == i])
        for i, label in enumerate(_bin_labels(edges))
    }
    result["n_truth_excluded"] = int(t["excluded"].sum())
    result["n_pred_ignored"] = int(p["ignored"].sum())
    result["rules"] = {
        "iou_min": iou_min,
        "cover_min": cover_min,
        "min_truth_area_ha": min_truth_area_ha,
        "area_bins_ha": list(edges),
    }
    result["crs"] = t.crs.to_string() if t.crs is not None else None
    return result


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def plot_pr_curve(
    curve: dict[str, np.ndarray], path: Path, *, chosen: float | None = None, title: str = ""
) -> Path:
    """Draw the precision-recall curve and the metrics against the threshold as a PNG.

    Args:
        curve: output of :meth:`ProbabilityHistogram.curve` (``thresholds``, ``precision``,
            ``recall``, ``f1``, ``iou``; ``tp`` and ``fp`` if present hide the thresholds at
            which nothing is predicted).
        path: PNG to write (atomically).
        chosen: threshold to mark, e.g. the one used for the pixel metrics.
        title: figure title.

    Returns:
        ``path``.

    Raises:
        InputError: if ``curve`` misses one of the arrays.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    missing = {"thresholds", "precision", "recall", "f1", "iou"} - set(curve)
    if missing:
        raise InputError(f"curve misses {sorted(missing)}; pass ProbabilityHistogram.curve()")
    th = np.asarray(curve["thresholds"])
    defined = np.ones(len(th), bool)
    if "tp" in curve and "fp" in curve:
        defined = (np.asarray(curve["tp"]) + np.asarray(curve["fp"])) > 0

    # A Figure without pyplot: no global state, safe in threads and under any backend.
    fig = Figure(figsize=(10, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax_pr, ax_th = fig.subplots(1, 2)
    ax_pr.plot(curve["recall"][defined], curve["precision"][defined], color="C0")
    ax_pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01))
    ax_pr.set_title("precision-recall (pixels)")
    for name, colour in (("precision", "C0"), ("recall", "C1"), ("f1", "C2"), ("iou", "C3")):
        y = np.where(defined, curve[name], np.nan)
        ax_th.plot(th, y, color=colour, label=name)
    ax_th.set(xlabel="threshold", ylabel="metric", xlim=(0, 1), ylim=(0, 1.01))
    ax_th.set_title("metrics by threshold")
    if chosen is not None:
        k = int(np.clip(np.searchsorted(th, chosen, side="right") - 1, 0, len(th) - 1))
        ax_pr.plot(curve["recall"][k], curve["precision"][k], "o", color="k")
        ax_th.axvline(chosen, color="k", linestyle="--", linewidth=1, label=f"t = {chosen:.3g}")
    ax_th.legend(loc="best", fontsize="small")
    for ax in (ax_pr, ax_th):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png")
    return p


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------


def _same_grid(src: Any, ref: Any, path: Path, what: str) -> None:
    if (src.crs, src.transform, src.shape) != (ref.crs, ref.transform, ref.shape):
        raise InputError(
            f"{path}: {what} grid (CRS {src.crs}, {src.shape}, {tuple(src.transform)[:6]}) "
            f"differs from the probability raster's; resample it onto that grid first"
        )


@contextlib.contextmanager
def _open_grids(
    probability: Path, truth: Path | None, ignore: Path | None
) -> Iterator[tuple[Any, Any, Any]]:
    """Open the probability raster and the optional truth and ignore masks on its grid.

    Yields ``(probability, truth mask or None, ignore mask or None)`` datasets; all are closed
    on exit.
    """
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_raster(probability, what="probability raster"))
        if src.crs is None:
            raise InputError(f"{probability}: probability raster has no CRS; georeference it")
        masks = [
            stack.enter_context(open_raster(path, what=what)) if path is not None else None
            for path, what in ((truth, "truth mask"), (ignore, "ignore mask"))
        ]
        for mask, path, what in zip(
            masks, (truth, ignore), ("truth mask", "ignore mask"), strict=True
        ):
            if mask is not None and path is not None:
                _same_grid(mask, src, path, what)
        yield src, masks[0], masks[1]


def _truth_farms(
    truth: Path, truth_src: Any, src: Any, *, layer: str | None, polygonize: bool
) -> gpd.GeoDataFrame | None:
    """Truth farms in the raster's CRS: read from a vector file, or (when ``polygonize``)
    polygonized from a truth mask into 4-connected solar regions (reads the whole mask)."""
    import geopandas as gpd

    if truth_src is not None:
        if not polygonize:
            return None
        solar = polygonize_mask(truth_src.read(1) == SOLAR, src.transform)
        return gpd.GeoDataFrame(geometry=solar, crs=src.crs)
    if truth.name.lower().endswith(_OSM_SUFFIXES):
        from data_prep import osm

        farms = osm.clean_labels(osm.labels_from_xml(truth), source=truth)
    else:
        farms = read_vector(truth, what="truth polygons", **({"layer": layer} if layer else {}))
    check_vector_crs(farms, truth)
    farms = farms.loc[~(farms.geometry.is_empty | farms.geometry.isna())]
    if len(farms) == 0:
        raise InputError(
            f"{truth}: no truth polygons in the file; give the ground-truth farm polygons of the "
            "area (or a 0/1/255 mask GeoTIFF on the prediction's grid)"
        )
    farms = farms.to_crs(src.crs).reset_index(drop=True)
    if not farms.intersects(shapely.box(*src.bounds)).any():
        from rasterio.warp import transform_bounds

        b = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        raise InputError(
            f"{truth}: no truth polygon overlaps the prediction (lon/lat bounds "
            f"{b[0]:.4f},{b[1]:.4f},{b[2]:.4f},{b[3]:.4f}); give the truth of the same area"
        )
    return farms


class _FarmPixels:
    """Pixels each truth farm touches, and how many of them are observed (valid probability,
    truth not "ignore"); entry 0 counts pixels of no farm."""

    def __init__(self, farms: gpd.GeoDataFrame) -> None:
        self.farms = farms
        self.touched = np.zeros(len(farms) + 1, dtype=np.int64)
        self.observed = np.zeros(len(farms) + 1, dtype=np.int64)

    def add(self, near: np.ndarray, transform: Any, truth: np.ndarray) -> None:
        """Count one window: ``near`` farm indices, window ``transform``, ``uint8`` truth."""
        from rasterio.features import rasterize

        if not len(near):
            return
        ids = rasterize(
            zip(self.farms.geometry.iloc[near], near + 1, strict=True),
            out_shape=truth.shape,
            transform=transform,
            fill=0,
            all_touched=True,
            dtype="int32",
        )
        self.touched += np.bincount(ids.ravel(), minlength=len(self.touched))
        self.observed += np.bincount(ids[truth != IGNORE], minlength=len(self.touched))

    def observed_farms(self, raster_bounds: tuple[float, ...]) -> np.ndarray:
        """``bool[n_farms]``: farms of which at least half the pixels are observed.

        A farm that owns no pixel (hidden under an overlapping farm, or smaller than a pixel
        and between centres) counts as observed when it lies on the raster at all.
        """
        on_raster = self.farms.intersects(shapely.box(*raster_bounds)).to_numpy()
        touched, observed = self.touched[1:], self.observed[1:]
        return np.where(touched > 0, observed >= 0.5 * touched, on_raster)


def _valid_window(src: Any, ignore_src: Any, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 probability, bool valid)`` of one window: finite, not nodata, not ignored."""
    prob = src.read(1, window=win).astype(np.float32, copy=False)
    valid = np.isfinite(prob)
    if src.nodata is not None and not math.isnan(src.nodata):
        valid &= prob != src.nodata
    if ignore_src is not None:
        valid &= ignore_src.read(1, window=win) != IGNORE
    return prob, valid


def _farms_in_window(tree: Any, transform: Any, shape: tuple[int, int]) -> np.ndarray:
    """Sorted indices of the farms (spatial index ``tree``) that meet a window; empty without
    farms."""
    if tree is None:
        return np.zeros(0, dtype=np.int64)
    left, top = transform.c, transform.f
    right, bottom = transform * (shape[1], shape[0])
    bounds = shapely.box(left, min(top, bottom), right, max(top, bottom))
    return np.sort(tree.query(bounds, predicate="intersects"))


def _scan_windows(
    src: Any,
    truth_src: Any,
    ignore_src: Any,
    farms: gpd.GeoDataFrame | None,
    *,
    threshold: float,
    block_rows: int,
    farm_pixels: _FarmPixels | None,
    truth: Path,
) -> tuple[PixelCounts, ProbabilityHistogram]:
    """Pixel counts at ``threshold`` and the PR histogram, ``block_rows`` rows at a time; the
    truth of a window is the mask's, or the farms rasterized by the centre rule. Also counts
    ``farm_pixels`` when given."""
    counts, hist = PixelCounts(), ProbabilityHistogram()
    tree = farms.sindex if farms is not None else None
    H, W = src.height, src.width
    for row in range(0, H, block_rows):
        win = Window(0, row, W, min(block_rows, H - row))
        w_tf = window_transform(win, src.transform)
        shape = (int(win.height), int(win.width))
        prob, valid = _valid_window(src, ignore_src, win)
        near = _farms_in_window(tree, w_tf, shape)
        if truth_src is not None:
            t = truth_src.read(1, window=win)
        else:
            near_farms = farms.geometry.iloc[near] if farms is not None else []
            t = rasterize_labels(near_farms, transform=w_tf, shape=shape)
        t = np.where(valid, t, IGNORE).astype(np.uint8)
        try:
            counts.update(np.where(valid, prob >= threshold, False), t)
            hist.update(prob, t)
        except InputError as err:
            raise InputError(f"{truth}: {err}") from err
        if farm_pixels is not None:
            farm_pixels.add(near, w_tf, t)
    return counts, hist


def _best_thresholds(hist: ProbabilityHistogram, truth: Path) -> dict[str, Any] | None:
    """Per metric (IoU, F1): the best threshold and the scores there; None without solar."""
    if hist.positive.sum() == 0:
        log.warning("%s: no solar pixel in the truth; no best threshold", truth)
        return None
    best: dict[str, Any] = {}
    choices: tuple[Literal["iou", "f1"], ...] = ("iou", "f1")
    for metric in choices:
        t_best, at_best = hist.best(metric=metric)
        best[metric] = {"threshold": t_best} | at_best
    return best


def _curve_areas(hist: ProbabilityHistogram) -> dict[str, float | None]:
    """``roc_auc`` and ``pr_auc`` of the pixels, and ``average_precision`` (the PR-AUC under
    its earlier name); ``roc_auc`` is None (JSON null) when a class is absent."""
    ap, auc = hist.average_precision(), hist.roc_auc()
    return {
        "roc_auc": auc if math.isfinite(auc) else None,
        "pr_auc": ap,
        "average_precision": ap,
    }


def _object_result(
    polygons: Path, farm_pixels: _FarmPixels, raster_bounds: tuple[float, ...], **options: Any
) -> dict[str, Any]:
    """:func:`object_metrics` of the predicted polygons against the observed truth farms."""
    observed = farm_pixels.observed_farms(raster_bounds)
    pred = read_vector(polygons, what="predicted polygons")
    if pred.crs is None:
        raise InputError(f"{polygons}: predicted polygons have no CRS; set one in the file")
    obj = object_metrics(pred, farm_pixels.farms.loc[observed], **options)
    obj["n_truth_unobserved"] = int((~observed).sum())
    return obj


def evaluate_prediction(
    probability: Path,
    truth: Path,
    *,
    polygons: Path | None = None,
    threshold: float,
    out: Path | None = None,
    ignore: Path | None = None,
    truth_layer: str | None = None,
    min_truth_area_ha: float = 0.0,
    block_rows: int = BLOCK_ROWS,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Pixel metrics (and object metrics) of a probability raster against the truth.

    Reads the probability raster and the masks window by window (``block_rows`` rows at a
    time), so memory stays flat on whole scenes. Pixels are left out where the probability is
    NaN (or equals the raster's nodata), where the truth mask is 255, and where ``ignore`` is
    255.

    Object metrics (:func:`object_metrics`) are computed when ``polygons`` is given, against
    the truth polygons (a truth mask is polygonized into 4-connected solar regions; this reads
    the whole mask at once). Truth farms of which less than half is observed (valid pixels,
    counting every pixel a farm touches) are left out, as are farms outside the raster:
    nothing there could have been detected.

    Args:
        probability: probability COG, ``float32[1, H, W]`` in [0, 1], NaN nodata.
        truth: either a uint8 mask GeoTIFF on the same grid (0 background, 1 solar, 255
            ignore) or a vector file of complete ground-truth farm polygons (any CRS),
            rasterized onto the grid by the centre rule.
        polygons: predicted polygons (GeoPackage) for object metrics.
        threshold: probability at or above which a pixel is solar, strictly between 0 and 1.
        out: folder to write ``metrics.json`` and ``pr_curve.png`` into.
        ignore: optional uint8 mask on the same grid; pixels equal to 255 are left out.
        truth_layer: layer of a multi-layer truth vector file (default: the first).
        min_truth_area_ha: truth farms smaller than this are left out of object metrics.
        block_rows: rows per window.
        overwrite: replace ``metrics.json`` and ``pr_curve.png`` when ``out`` holds them.

    Returns:
        ``{"pixel": {...}, "object": {...} or None, "threshold": t, "best_threshold":
        {"iou": {...}, "f1": {...}} or None}``; ``pixel`` holds :meth:`PixelCounts.metrics`
        at ``threshold`` and the threshold-free ``roc_auc`` (None without solar or without
        background pixels) and ``pr_auc`` (average precision, also as
        ``average_precision``); each best-threshold entry holds the threshold and the pixel
        metrics there, so ``best_threshold["iou"]["iou"]`` is the IoU at the best threshold
        (None when the truth has no solar pixel).

    Raises:
        InputFileError: if an input file is missing or unreadable.
        InputError: if the grids differ, a CRS is missing (or a GeoJSON holds projected
            coordinates), the truth polygons are empty or do not overlap the raster, no pixel
            is left to compare, the truth mask holds other values than 0, 1 and 255, or an
            option is out of range.
        OutputExistsError: if ``out`` holds metrics already and ``overwrite`` is false.
    """
    check_threshold(threshold)
    if block_rows < 1:
        raise InputError(f"block_rows must be >= 1, got {block_rows}")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"{out}: is a file; give --out a folder to write the metrics into")
    if out is not None and not overwrite:
        for name in (METRICS_FILE, PR_CURVE_FILE):
            if (Path(out) / name).exists():
                raise OutputExistsError(
                    f"{Path(out) / name}: metrics written before; pass --overwrite to replace "
                    "them or choose another --out"
                )
    probability, truth = Path(probability), Path(truth)
    truth_is_mask = truth.suffix.lower() in _RASTER_SUFFIXES

    with _open_grids(probability, truth if truth_is_mask else None, ignore) as (
        src,
        truth_src,
        ignore_src,
    ):
        raster_bounds = tuple(src.bounds)
        farms = _truth_farms(
            truth, truth_src, src, layer=truth_layer, polygonize=polygons is not None
        )
        farm_pixels = _FarmPixels(farms) if polygons is not None and farms is not None else None
        counts, hist = _scan_windows(
            src,
            truth_src,
            ignore_src,
            farms,
            threshold=threshold,
            block_rows=block_rows,
            farm_pixels=farm_pixels,
            truth=truth,
        )

    if counts.tp + counts.fp + counts.fn + counts.tn == 0:
        raise InputError(
            f"{truth}: no pixel to compare: where the prediction has values the truth is "
            "'ignore' (255) or missing; give truth and a prediction of the same area"
        )
    result: dict[str, Any] = {
        "pixel": {**counts.metrics(), **_curve_areas(hist)},
        "object": None,
        "threshold": float(threshold),
        "best_threshold": _best_thresholds(hist, truth),
    }
    if polygons is not None and farm_pixels is not None:
        result["object"] = _object_result(
            polygons, farm_pixels, raster_bounds, min_truth_area_ha=min_truth_area_ha
        )
    elif polygons is not None:
        log.warning("%s: no truth polygons; object metrics skipped", truth)

    m = result["pixel"]
    log.info(
        "pixels at t=%.3f: precision %.3f recall %.3f F1 %.3f IoU %.3f",
        threshold, m["precision"], m["recall"], m["f1"], m["iou"],
    )  # fmt: skip
    if out is not None:
        out = Path(out)
        write_json(out / METRICS_FILE, result)
        plot_pr_curve(hist.curve(), out / PR_CURVE_FILE, chosen=threshold, title=probability.name)
    return result
