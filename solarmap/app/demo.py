"""`solarmap demo`: the whole spine on the built-in demo region.

Generates a training region and a separate unseen region (different seed, different place),
prepares the training region into chips, trains the U-Net under a time budget, predicts on the
unseen region, and evaluates against the unseen region's complete ground truth (which includes
the farms OpenStreetMap left unmapped).

The run is built in a temporary folder that takes the name ``out`` once it succeeded; its
records (JSON, the checkpoint's metadata, the probability COG's tags) name the demo's own files
relative to themselves, and its logs name them under ``out``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solarmap.geo import output_dir, read_vector, write_json, write_text, write_vector

log = logging.getLogger(__name__)


@dataclass
class DemoSummary:
    """Paths, figures and a printable text of a demo run."""

    out: Path
    metrics: dict[str, Any]
    seconds: dict[str, float]
    text: str


def run_demo(
    out: str | Path,
    *,
    size: int = 2048,
    unseen_size: int = 1024,
    minutes: float = 4.5,
    seed: int = 0,
    overwrite: bool = False,
) -> DemoSummary:
    """Run the demo into ``out`` (built atomically: a failed run leaves nothing).

    Raises:
        OutputExistsError: when ``out`` exists and ``overwrite`` is false.
    """
    from data_prep.prepare import PrepareConfig, prepare
    from data_prep.sentinel2 import open_scene
    from data_prep.synthetic import RegionConfig, generate_region
    from solarmap.app.report import ReportConfig, write_report
    from solarmap.model import load_checkpoint
    from solarmap.predict import PredictConfig, predict_scene
    from train.evaluate import evaluate_prediction
    from train.fit import TrainConfig, train

    out = Path(out)
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()
    with output_dir(out, overwrite=overwrite) as tmp, _logs_name(tmp, out):
        t = time.perf_counter()
        train_region = generate_region(tmp / "train-region", RegionConfig(seed=seed, size=size))
        unseen = generate_region(
            tmp / "unseen-region", RegionConfig(seed=seed + 1, size=unseen_size)
        )
        seconds["generate"] = time.perf_counter() - t

        t = time.perf_counter()
        prepared = tmp / "prepared"
        prepare(
            [train_region.scene],
            train_region.osm,
            prepared,
            config=PrepareConfig(chip_size=256, stride=128, block_size=512, seed=seed),
        )
        seconds["prepare"] = time.perf_counter() - t

        t = time.perf_counter()
        ckpt_dir = tmp / "checkpoint"
        result = train(prepared, ckpt_dir, config=TrainConfig(max_minutes=minutes, seed=seed))
        seconds["train"] = time.perf_counter() - t

        t = time.perf_counter()
        ckpt = _record_chips_relatively(load_checkpoint(ckpt_dir), "../prepared")
        ckpt.metadata["path"] = "../checkpoint"  # how the prediction names its checkpoint
        pred_dir = tmp / "prediction"
        with open_scene(unseen.scene) as scene:
            pred = predict_scene(scene, ckpt, pred_dir, config=PredictConfig())
        seconds["predict"] = time.perf_counter() - t

        t = time.perf_counter()
        metrics = evaluate_prediction(
            pred.probability,
            unseen.truth,
            polygons=pred.polygons,
            threshold=ckpt.threshold,
            out=pred_dir,
        )
        # The targets are stated for farms of 1 ha and more: score those on their own, with
        # detections of the same size.
        polys = read_vector(pred.polygons, what="predicted polygons")
        big = tmp / "prediction" / ".polygons_ge_1ha.gpkg"
        write_vector(polys[polys["area_m2"] >= 1e4], big, layer="solar")
        metrics["object_ge_1ha"] = evaluate_prediction(
            pred.probability,
            unseen.truth,
            polygons=big,
            threshold=ckpt.threshold,
            min_truth_area_ha=1.0,
        )["object"]
        big.unlink()
        write_json(pred_dir / "metrics.json", metrics)
        seconds["evaluate"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - t_all
        text = _summary_text(out, metrics, seconds, result.images_per_s, pred.n_polygons)
        write_text(tmp / "summary.md", text)
        write_json(
            tmp / "summary.json",
            {"metrics": metrics, "seconds": seconds, "train_images_per_s": result.images_per_s},
        )
        _record_paths_relatively(tmp, out)
        t = time.perf_counter()
        write_report([tmp], tmp / "report.html", config=ReportConfig(title="solarmap demo"))
        log.info("report.html written in %.0f s", time.perf_counter() - t)
    log.info("demo finished in %.0f s", seconds["total"])
    return DemoSummary(out=out, metrics=metrics, seconds=seconds, text=text)


# --------------------------------------------------------------------------------------------
# Final paths in records and logs
#
# The stages run inside the demo's temporary folder (it appears under its name only when the
# run succeeded), so what they record of their inputs points into that folder. The demo folder
# is one that may move: its records name each other relatively instead.
# --------------------------------------------------------------------------------------------


def _record_chips_relatively(ckpt: Any, chips: str) -> Any:
    """Save the checkpoint again with ``chips`` (relative to it) as its training data, so the
    weights' metadata and checkpoint.json agree; returns it loaded anew.
    """
    from solarmap.model import load_checkpoint, save_checkpoint

    folder = Path(ckpt.metadata["path"])
    meta = {k: v for k, v in ckpt.metadata.items() if k != "path"}
    save_checkpoint(folder, ckpt.model, {**meta, "chips": chips})
    return load_checkpoint(folder)


def _relocated(value: Any, tmp: Path, out: Path, here: Path) -> Any:
    """``value`` with every path into ``tmp`` made relative to ``here`` (the record's folder),
    and any other mention of ``tmp`` named as ``out``."""
    if isinstance(value, dict):
        return {k: _relocated(v, tmp, out, here) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocated(v, tmp, out, here) for v in value]
    if not isinstance(value, str) or tmp.name not in value:
        return value
    for prefix in {str(tmp.resolve()), str(tmp)}:
        if value == prefix or value.startswith(prefix + os.sep):
            return os.path.relpath(tmp.resolve() / value[len(prefix) + 1 :], here.resolve())
    return value.replace(tmp.name, out.name)


def _record_paths_relatively(tmp: Path, out: Path) -> None:
    """Rewrite the JSON records under ``tmp`` that name paths inside it (see above)."""
    for path in sorted(tmp.rglob("*.json")):
        record = json.loads(path.read_text())
        moved = _relocated(record, tmp, out, path.parent)
        if moved != record:
            write_json(path, moved)


class _FinalNames(logging.Filter):
    """Log records name ``out``, where the files will be, not the temporary folder."""

    def __init__(self, tmp: Path, out: Path) -> None:
        super().__init__()
        self.tmp, self.out = tmp.name, out.name

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.tmp in message:
            record.msg, record.args = message.replace(self.tmp, self.out), None
        return True


@contextlib.contextmanager
def _logs_name(tmp: Path, out: Path) -> Iterator[None]:
    """While the block runs, the root logger's handlers show ``out`` for ``tmp``."""
    names = _FinalNames(tmp, out)
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(names)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(names)


def _summary_text(
    out: Path, metrics: dict[str, Any], seconds: dict[str, float], ips: float, n_poly: int
) -> str:
    px = metrics["pixel"]
    lines = [
        "# solarmap demo",
        "",
        f"Unseen region, against its complete ground truth (threshold {metrics['threshold']:.2f}):",
        f"- pixel IoU {px['iou']:.3f}, F1 {px['f1']:.3f}, precision {px['precision']:.3f}, "
        f"recall {px['recall']:.3f}",
    ]
    obj = metrics.get("object") or {}
    rows = [("all", obj), *(obj.get("by_area") or {}).items()]
    if metrics.get("object_ge_1ha"):
        rows.append((">=1 ha (detections >=1 ha)", metrics["object_ge_1ha"]))
    for name, m in rows:
        if not m:
            continue
        lines.append(
            f"- farms {name}: recall {m['recall']:.3f} ({m['n_found']}/{m['n_truth']}), "
            f"precision {m['precision']:.3f} ({m['n_correct']}/{m['n_pred']})"
        )
    lines += [
        f"- {n_poly} predicted polygons",
        "",
        "Time (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
        + f"; training {ips:.1f} images/s",
        "",
        "Outputs:",
        f"- {out / 'prediction' / 'probability.tif'} (probability COG)",
        f"- {out / 'prediction' / 'polygons.gpkg'} (solar-farm polygons)",
        f"- {out / 'prediction' / 'metrics.json'}, {out / 'prediction' / 'pr_curve.png'}",
        f"- {out / 'checkpoint'} (model.safetensors + checkpoint.json)",
        f"- {out / 'prepared'} (labelled training scene and chip index)",
        f"- {out / 'report.html'} (the run on one page that opens offline in a browser)",
    ]
    return "\n".join(lines) + "\n"


def load_summary(out: Path) -> dict[str, Any]:
    """The summary.json of a finished demo."""
    return json.loads((Path(out) / "summary.json").read_text())
