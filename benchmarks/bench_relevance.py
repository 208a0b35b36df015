"""Transformer attention relevance beside the U-Net methods: randomization sanity check and
deletion AUC.

A U-Net with a Mix Transformer encoder (``--encoder mit_b0``) is trained with the real CLI on
the demo's prepared chips (``make demo`` first; ``--max-minutes``, kept in the work folder) and
predicts the demo's unseen region. On its ``--top`` largest detections:

1. the randomization sanity check of the audit issue (``solarmap sanity``: cascading
   re-initialisation, |Spearman| of the map with the trained one) for attention relevance,
   saliency and Grad-CAM;
2. deletion and insertion AUCs (``solarmap audit --faithfulness``: pixels removed in the map's
   order, the object's probability followed; a lower deletion AUC than random orders' is
   better) of attention relevance, saliency, Integrated Gradients and Grad-CAM;

and the same deletion AUCs for the demo's own U-Net (MobileNetV3 encoder) on its largest
detections of the same region. Nothing here asserts a figure.

    python benchmarks/bench_relevance.py --workdir bench-relevance [--demo demo-out]
        [--max-minutes 6] [--top 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import sm

METHODS = "attention_relevance,saliency,integrated_gradients,gradcam"


def faithfulness(work: Path, name: str, ckpt: Path, scene: Path, methods: str, top: int) -> Any:
    """Explain the checkpoint's ``top`` largest detections and audit them with the curves."""
    pred = work / f"pred-{name}"
    if not (pred / "polygons.gpkg").exists():
        sm("predict", "--scene", str(scene), "--checkpoint", str(ckpt), "--out", str(pred),
           "--overwrite", "--ood-check", "off", "--engine", "torch")  # fmt: skip
    expl = work / f"explain-{name}"
    sm("explain", "--scene", str(scene), "--checkpoint", str(ckpt), "--target",
       str(pred / "polygons.gpkg"), "--top", str(top), "--methods", methods, "--out", str(expl),
       "--overwrite")  # fmt: skip
    audit = work / f"audit-{name}"
    sm("audit", "--scene", str(scene), "--checkpoint", str(ckpt), "--explanation", str(expl),
       "--out", str(audit), "--faithfulness", "--overwrite")  # fmt: skip
    return pred, json.loads((audit / "audit.json").read_text())["summary"].get("faithfulness", [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--demo", type=Path, default=Path("demo-out"))
    ap.add_argument("--max-minutes", type=float, default=6.0)
    ap.add_argument("--top", type=int, default=4)
    args = ap.parse_args()
    work, demo = args.workdir, args.demo
    work.mkdir(parents=True, exist_ok=True)
    scene = demo / "unseen-region" / "scene.tif"
    t0 = time.perf_counter()
    mit = work / "mit-ckpt"
    if not (mit / "model.safetensors").exists():
        sm("train", "--chips", str(demo / "prepared"), "--out", str(mit), "--encoder", "mit_b0",
           "--max-minutes", str(args.max_minutes), "--overwrite")  # fmt: skip
    pred, rows_mit = faithfulness(work, "mit", mit, scene, METHODS, args.top)
    sanity = work / "sanity-mit"
    sm("sanity", "--scene", str(scene), "--checkpoint", str(mit), "--target",
       str(pred / "polygons.gpkg"), "--top", str(min(2, args.top)), "--methods",
       "attention_relevance,saliency,gradcam", "--out", str(sanity), "--overwrite")  # fmt: skip
    checks = json.loads((sanity / "sanity.json").read_text())
    _, rows_cnn = faithfulness(work, "unet", demo / "checkpoint", scene,
                               "saliency,integrated_gradients,gradcam", args.top)  # fmt: skip
    print(f"sanity (mit_b0 U-Net, {min(2, args.top)} largest detections):")
    for r in checks["rows"]:
        print(f"  {r['method']}: {'pass' if r['pass'] else 'FAIL'}  spearman of |map| with the "
              f"trained one, fully random {r['spearman_abs_full']:.2f} (random vs random "
              f"{r['random_band_spearman_abs']:.2f}), smoothed "
              f"{r['smprt_spearman_abs_full']:.2f}")  # fmt: skip
    for label, rows in (("mit_b0 U-Net", rows_mit), ("MobileNetV3 U-Net (demo)", rows_cnn)):
        print(f"deletion / insertion AUC, {label}, {args.top} largest detections:")
        for r in rows:
            print(f"  {r['map']:<36} deletion {r['deletion_auc']:.3f} "
                  f"(random {r['random_deletion_auc']:.3f}, ratio {r['deletion_ratio']:.2f})  "
                  f"insertion {r['insertion_auc']:.3f}")  # fmt: skip
    (work / "relevance-bench.json").write_text(json.dumps(
        {"sanity": checks, "faithfulness": {"mit": rows_mit, "unet": rows_cnn}}, indent=1,
        default=str))  # fmt: skip
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
