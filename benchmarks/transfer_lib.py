"""Scoring a checkpoint on a region it was (or was not) trained on, for the transfer benchmark.

A *test region* is a list of scenes, each with its truth: a mask GeoTIFF on the scene's grid
(0 background, 1 solar, 255 ignore) or truth polygons (rasterized onto the scene's grid here).
Every scene is predicted with :func:`solarmap.predict.predict_scene`, the code `solarmap
predict` runs; the probabilities of a whole region go into one streaming histogram, from which
pixel ROC-AUC, PR-AUC and the IoU at the checkpoint's threshold and at the best threshold come,
and each scene's objects are matched by :func:`train.evaluate.evaluate_prediction` and summed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.rasterize import rasterize_labels
from data_prep.sentinel2 import open_scene
from solarmap.geo import open_raster, read_vector
from solarmap.model import Checkpoint, load_checkpoint
from solarmap.ood import METADATA_KEY as OOD_KEY
from solarmap.predict import PredictConfig, predict_scene
from train.evaluate import PixelCounts, ProbabilityHistogram, evaluate_prediction


@dataclass(frozen=True)
class TestScene:
    """One scene of a test region and its truth (mask raster or polygons)."""

    scene: Path
    truth: Path


def _up(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


def _truth_mask(truth: Path, prob_path: Path) -> np.ndarray:
    with open_raster(prob_path) as prob:
        shape, transform, crs = (prob.height, prob.width), prob.transform, prob.crs
    if truth.suffix.lower() in (".tif", ".tiff"):
        with open_raster(truth) as src:
            return src.read(1)
    polys = read_vector(truth, what="truth polygons").to_crs(crs)
    return rasterize_labels(polys, transform=transform, shape=shape)


def score_region(
    checkpoint: Path | Checkpoint, scenes: list[TestScene], *, window: int = 256
) -> dict[str, Any]:
    """Pixel and object scores of a checkpoint over every scene of a region.

    Returns:
        ``roc_auc``, ``pr_auc``, ``iou`` (at the checkpoint's threshold), ``best_iou`` (and
        ``best_threshold``), ``object_recall``, ``object_precision``, pixel counts ``tp``,
        ``fp``, ``fn``.
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    hist, counts = ProbabilityHistogram(), PixelCounts()
    found = truth_n = correct = pred_n = warned = 0
    ood = "warn" if OOD_KEY in ckpt.metadata else "off"  # older checkpoints carry no statistics
    with tempfile.TemporaryDirectory() as tmp:
        for k, ts in enumerate(scenes):
            out = Path(tmp) / f"s{k}"
            with open_scene(ts.scene) as src:
                side = max(src.info.height, src.info.width)
                w = _up(min(window, _up(side, 32)), ckpt.config.multiple)
                overlap = 0 if side <= w else min(32, w // 4)
                res = predict_scene(
                    src, ckpt, out, config=PredictConfig(window=w, overlap=overlap, ood_check=ood)
                )
                warned += bool(res.ood and res.ood.get("warning"))
            truth = _truth_mask(ts.truth, res.probability)
            with open_raster(res.probability) as p:
                prob = p.read(1)
            hist.update(prob, truth)
            counts.update(prob >= ckpt.threshold, truth)
            if (truth == 1).any():
                m = evaluate_prediction(
                    res.probability, ts.truth, polygons=res.polygons, threshold=ckpt.threshold
                )
                ob = m["object"]
                found += ob["n_found"]
                truth_n += ob["n_truth"]
                correct += ob["n_correct"]
                pred_n += ob["n_pred"]
    best_t, best = hist.best(metric="iou")
    px = counts.metrics()
    return {
        "roc_auc": hist.roc_auc(),
        "pr_auc": hist.average_precision(),
        "iou": px["iou"],
        "best_iou": best["iou"],
        "best_threshold": best_t,
        "object_recall": found / truth_n if truth_n else float("nan"),
        "object_precision": correct / pred_n if pred_n else float("nan"),
        "scenes": len(scenes),
        "ood_warnings": warned,
        **{k: px[k] for k in ("tp", "fp", "fn") if k in px},
    }
