"""`solarmap predict` against a plain sliding window, on the same scene and checkpoint.

The baseline is what a first script does: read the whole scene into memory, run the model in
256-pixel windows with stride 236 (eager PyTorch, fp32, batches of 4), keep the mean of the
overlapping windows, write a plain GeoTIFF and polygonize it. Each run is one fresh process
(imports, model load, reading, writing: the whole-process wall time), the runs alternate
``--repeats`` times and the fastest of each is kept, so the ratios come from one sitting.

Printed per run: wall seconds, the ratio baseline / run, pixel IoU against the region's truth
at the checkpoint's threshold (as `solarmap evaluate` scores it: no-data pixels left out),
and for `solarmap predict` the IoU of its solar mask with the PyTorch engine's (the output it
gave before ONNX Runtime became the default).

    python benchmarks/bench_fast_predict.py [--workdir DIR] [--size 3072] [--checkpoint CKPT]
        [--repeats 2]

Without --checkpoint it takes demo-out/checkpoint when `make demo` has run, else the shipped
model. Nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The baseline's window and stride, pixels.
WINDOW, STRIDE, BATCH = 256, 236, 4


def baseline(scene: Path, ckpt_dir: Path, out: Path) -> None:
    """The plain sliding window (run in a child process)."""
    import geopandas as gpd
    import rasterio
    import torch
    from rasterio import features
    from shapely.geometry import shape

    from data_prep.sentinel2 import read_scene
    from solarmap.model import load_checkpoint

    ck = load_checkpoint(ckpt_dir)
    model = ck.model.eval()
    refl, valid, info = read_scene(scene, allow_full=True)
    _, H, W = refl.shape
    x = ck.normalise(torch.from_numpy(refl)[None])[0]
    acc = np.zeros((H, W), dtype=np.float32)
    n = np.zeros((H, W), dtype=np.float32)
    boxes = [(r, c) for r in _starts(H) for c in _starts(W)]
    with torch.inference_mode():
        for i in range(0, len(boxes), BATCH):
            part = boxes[i : i + BATCH]
            batch = torch.stack([x[:, r : r + WINDOW, c : c + WINDOW] for r, c in part])
            prob = torch.sigmoid(model(batch))[:, 0].numpy()
            for (r, c), p in zip(part, prob, strict=True):
                acc[r : r + WINDOW, c : c + WINDOW] += p
                n[r : r + WINDOW, c : c + WINDOW] += 1
    prob = np.where(valid, acc / np.maximum(n, 1), np.nan).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": W, "height": H, "count": 1, "dtype": "float32",
               "crs": info.crs, "transform": info.transform, "nodata": float("nan"),
               "compress": "deflate", "tiled": True}  # fmt: skip
    with rasterio.open(out / "probability.tif", "w", **profile) as dst:
        dst.write(prob[None])
    mask = (prob >= ck.threshold).astype(np.uint8)
    geoms = [shape(g) for g, v in features.shapes(mask, mask=mask.astype(bool),
                                                  transform=info.transform) if v]  # fmt: skip
    gpd.GeoDataFrame(geometry=geoms, crs=info.crs).to_file(out / "polygons.gpkg")


def _starts(size: int) -> list[int]:
    """Window starts every STRIDE pixels, the last one flush with the edge."""
    last = max(size - WINDOW, 0)
    return sorted({*range(0, last + 1, STRIDE), last})


def run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - t


def solar(path: Path, threshold: float) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        p = ds.read(1)
    return np.nan_to_num(p, nan=0.0) >= threshold


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two solar masks (the project's formula, :func:`train.evaluate.iou_score`)."""
    from train.evaluate import iou_score

    return float(iou_score(int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("bench-fast-predict"))
    ap.add_argument("--size", type=int, default=3072)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--baseline", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        baseline(*args.baseline)
        return
    from solarmap.model import shipped_checkpoint
    from train.evaluate import evaluate_prediction

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    demo = ROOT / "demo-out" / "checkpoint"
    ckpt = (args.checkpoint or (demo if demo.is_dir() else shipped_checkpoint())).resolve()
    region = work / f"region-{args.size}"
    sm = [sys.executable, "-m", "solarmap"]
    if not (region / "scene.tif").exists():
        subprocess.run([*sm, "-q", "demo-data", "--out", str(region), "--size", str(args.size),
                        "--seed", "7", "--overwrite"], check=True, cwd=ROOT)  # fmt: skip
    scene = region / "scene.tif"
    runs: dict[str, list[str]] = {
        "plain sliding window (baseline)": [sys.executable, __file__, "--baseline", str(scene),
                                            str(ckpt), str(work / "baseline")],
        "solarmap predict --engine torch": [*sm, "-q", "predict", "--scene", str(scene),
                                            "--checkpoint", str(ckpt), "--out",
                                            str(work / "torch"), "--engine", "torch",
                                            "--overwrite"],
        "solarmap predict (default: onnx)": [*sm, "-q", "predict", "--scene", str(scene),
                                             "--checkpoint", str(ckpt), "--out",
                                             str(work / "onnx"), "--overwrite"],
    }  # fmt: skip
    walls: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, cmd in runs.items():
            walls[name].append(run(cmd))
    threshold = json.loads((work / "onnx" / "predict.json").read_text())["threshold"]
    folders = dict(zip(runs, ("baseline", "torch", "onnx"), strict=True))
    masks = {k: solar(work / d / "probability.tif", threshold) for k, d in folders.items()}
    truth_iou = {  # as `solarmap evaluate` scores it: truth rasterized by the centre rule
        k: evaluate_prediction(
            work / d / "probability.tif", region / "truth.gpkg", threshold=threshold
        )["pixel"]["iou"]
        for k, d in folders.items()
    }
    base = min(walls["plain sliding window (baseline)"])
    torch_mask = masks["solarmap predict --engine torch"]
    rows: list[dict[str, Any]] = []
    print(f"scene {args.size}² ({args.size**2 * 100 / 1e6:.0f} km²), checkpoint {ckpt}, "
          f"threshold {threshold:.3f}, {args.repeats} alternating runs each\n")  # fmt: skip
    print("| run | wall s (best) | baseline / run | IoU vs truth | IoU vs --engine torch |")
    print("|---|---|---|---|---|")
    for name in runs:
        wall = min(walls[name])
        row = {
            "run": name, "walls": walls[name], "wall": wall, "speedup": base / wall,
            "iou_truth": truth_iou[name], "iou_torch": iou(masks[name], torch_mask),
        }  # fmt: skip
        rows.append(row)
        print(f"| {name} | {wall:.1f} | {base / wall:.2f} | {row['iou_truth']:.3f} | "
              f"{row['iou_torch']:.4f} |")  # fmt: skip
    (work / "fast-predict.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
