"""Does the audit catch a planted cue? Models trained with and without one, audited alike.

Trains small models with the real CLI on demo regions whose every OSM-mapped farm has a cue
planted around it (``solarmap demo-data --spurious pad|snow``, several seeds and ring widths:
unmapped farms have panels but no cue and no label, so the cue is what tells a label) and as
many on clean regions (no cue), then predicts two test regions, one with pads and one with
snow around the mapped farms, and audits the largest detections of each (``solarmap audit
--target``, the default explain methods). Per model it prints the model-level reliance score
(``summary.reliance`` of audit.json, the mean over detections of max(1 - kept, cue)) and the
share of detections flagged for context reliance; then the ROC-AUC of the model-level score,
planted against clean (the score of a model: the mean over the two test regions). Optionally
(``--cross CHECKPOINT SCENE``) it audits a checkpoint on a region it was not trained on (e.g. a
transfer-benchmark model on another preset's test region) and prints what the audit shows.
Nothing here asserts a score: it prints them (and writes WORKDIR/audit-bench.json).

    python benchmarks/bench_audit.py --workdir /tmp/auditbench [--size 512] [--epochs 30]
        [--top 8] [--cross tr/ckpt/austria-a__unet tr/desert-test/scene.tif]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import prepare, sm

#: (name, cue, mean ring width m, seed): six planted models and six clean ones.
MODELS = [
    ("pad-30-s1", "pad", 30, 1),
    ("pad-30-s2", "pad", 30, 2),
    ("pad-50-s3", "pad", 50, 3),
    ("snow-30-s1", "snow", 30, 1),
    ("snow-30-s2", "snow", 30, 2),
    ("snow-50-s3", "snow", 50, 3),
    *[(f"clean-s{s}", "none", 30, s) for s in range(1, 7)],
]
TESTS = {"pad": 900, "snow": 901}


def region(work: Path, name: str, cue: str, width: float, seed: int, size: int) -> Path:
    out = work / "regions" / name
    if not (out / "scene.tif").exists():
        sm("demo-data", "--out", str(out), "--seed", str(seed), "--size", str(size),
           "--spurious", cue, "--spurious-width", str(width), "--overwrite")  # fmt: skip
    return out


def audit_summary(work: Path, ckpt: Path, scene: Path, name: str, top: int) -> dict[str, Any]:
    pred = work / "pred" / name
    if not (pred / "polygons.gpkg").exists():
        sm("predict", "--scene", str(scene), "--checkpoint", str(ckpt), "--out", str(pred),
           "--overwrite", "--ood-check", "off")  # fmt: skip
    out = work / "audit" / name
    if not (out / "audit.json").exists():
        sm("audit", "--scene", str(scene), "--checkpoint", str(ckpt), "--target",
           str(pred / "polygons.gpkg"), "--top", str(top), "--out", str(out), "--overwrite",
           check=False)  # fmt: skip
    if not (out / "audit.json").exists():
        return {"objects": 0}
    return json.loads((out / "audit.json").read_text())["summary"]


def main() -> None:
    from train.evaluate import roc_auc

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--size", type=int, default=512, help="training region side, px")
    ap.add_argument("--test-size", type=int, default=768)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--top", type=int, default=8, help="detections audited per test region")
    ap.add_argument("--cross", nargs=2, type=Path, metavar=("CHECKPOINT", "SCENE"))
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tests = {
        cue: region(work, f"test-{cue}", cue, 30, seed, args.test_size) / "scene.tif"
        for cue, seed in TESTS.items()
    }
    results: dict[str, Any] = {}
    path = work / "audit-bench.json"
    if path.exists():
        results = json.loads(path.read_text())
    for name, cue, width, seed in MODELS:
        reg = region(work, name, cue, width, seed, args.size)
        chips = prepare([reg / "scene.tif"], reg / "labels.osm", work / "chips" / name)
        ckpt = work / "ckpt" / name
        if not (ckpt / "model.safetensors").exists():
            sm("train", "--chips", str(chips), "--out", str(ckpt), "--epochs", str(args.epochs),
               "--patience", str(args.epochs), "--overwrite", check=False)  # fmt: skip
        if not (ckpt / "model.safetensors").exists():
            print(f"{name}: training failed; left out", flush=True)
            continue
        row = results.setdefault(name, {"cue": cue, "width": width, "seed": seed})
        for test_cue, scene in tests.items():
            if test_cue not in row:
                s = audit_summary(work, ckpt, scene, f"{name}-on-{test_cue}", args.top)
                row[test_cue] = {
                    "objects": s.get("objects", 0),
                    "reliance": s.get("reliance"),
                    "flagged_context": (s.get("flags") or {}).get("context_reliance"),
                    "flagged": s.get("flagged"),
                }
        path.write_text(json.dumps(results, indent=1))
        cells = "  ".join(
            f"{c}: {row[c]['objects']} obj, reliance {_f(row[c]['reliance'])}, "
            f"context-flagged {_f(row[c]['flagged_context'])}"
            for c in tests
        )
        print(f"{name}: {cells}", flush=True)
    scored = [
        (r["cue"] != "none", sum(r[c]["reliance"] or 0 for c in tests) / len(tests))
        for r in results.values()
        if all(c in r for c in tests)
    ]
    truth = [int(p) for p, _ in scored]
    if 0 < sum(truth) < len(truth):
        import numpy as np

        auc = roc_auc(np.array([s for _, s in scored]), np.array(truth, dtype=np.uint8))
        print(f"\nmodel-level reliance, planted vs clean: ROC-AUC {auc:.3f} "
              f"({sum(truth)} planted, {len(truth) - sum(truth)} clean)")  # fmt: skip
        results["_roc_auc"] = auc
    print("\n| model | cue | reliance (pad / snow test) | context-flagged share (pad / snow) |")
    print("|---|---|---|---|")
    for name, r in results.items():
        if name.startswith("_"):
            continue
        rel = " / ".join(_f(r[c]["reliance"]) for c in tests if c in r)
        fl = " / ".join(_f(r[c]["flagged_context"]) for c in tests if c in r)
        print(f"| {name} | {r['cue']} | {rel} | {fl} |")
    if args.cross:
        ck, scene = args.cross
        s = audit_summary(work, ck.resolve(), scene.resolve(), f"cross-{ck.name}", args.top)
        results["_cross"] = {"checkpoint": str(ck), "scene": str(scene), "summary": s}
        print(f"\ncross-region audit of {ck} on {scene}:")
        print(json.dumps(s, indent=1))
    path.write_text(json.dumps(results, indent=1))
    print(f"\n{time.perf_counter() - t0:.0f} s", flush=True)


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    main()
