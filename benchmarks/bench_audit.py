"""Does the audit catch a planted cue? Models trained with and without one, audited alike.

Trains small models with the real CLI on demo regions whose every OSM-mapped farm has a cue
planted around it (``solarmap demo-data --spurious pad|snow``, several seeds and ring widths:
unmapped farms have panels but no cue and no label, so the cue is what tells a label) and as
many on clean regions (no cue). Two test regions have pads or snow around their mapped farms;
each model's detections there (at one threshold, 0.5) are audited, the largest first
(``solarmap audit --target``, the default explain methods): a planted model on the test region
of its own cue, the clean ones half on each. Per model it prints the model-level reliance
score (``summary.reliance`` of audit.json, the mean over detections of max(1 - kept_bare,
cue)) and the share of detections flagged for context reliance; then the ROC-AUC of the
model-level score, planted against clean. Optionally (``--cross CHECKPOINT SCENE``) it audits
a checkpoint on a region it was not trained on (e.g. a transfer-benchmark model on another
preset's test region) and prints what the audit shows. Nothing here asserts a score: it
prints them (and writes WORKDIR/audit-bench.json).

    python benchmarks/bench_audit.py --workdir /tmp/auditbench [--size 512] [--epochs 30]
        [--top 6] [--cross tr/ckpt/austria-a__unet tr/desert-test/scene.tif]
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

#: (name, cue, mean ring width m, seed, test region): six planted models and six clean ones.
#: Each is audited on one test region with a cue: a planted model on its own cue's, the clean
#: ones half on each, so both kinds face the same scenes.
MODELS = [
    ("pad-30-s1", "pad", 30, 1, "pad"),
    ("pad-30-s2", "pad", 30, 2, "pad"),
    ("pad-50-s3", "pad", 50, 3, "pad"),
    ("snow-30-s1", "snow", 30, 1, "snow"),
    ("snow-30-s2", "snow", 30, 2, "snow"),
    ("snow-50-s3", "snow", 50, 3, "snow"),
    *[(f"clean-s{s}", "none", 30, s, "pad" if s <= 3 else "snow") for s in range(1, 7)],
]
TESTS = {"pad": 900, "snow": 901}
#: One detection threshold for every model: a clean model trained on these small, noisy
#: regions (a fifth of the farms unlabelled) picks a validation threshold near 0.999 and
#: detects nothing on the test regions, while a planted one picks about 0.2.
THRESHOLD = 0.5


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
           "--threshold", str(THRESHOLD), "--overwrite", "--ood-check", "off")  # fmt: skip
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
    ap.add_argument("--top", type=int, default=6, help="detections audited per test region")
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
    for name, cue, width, seed, test_cue in MODELS:
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
        if "test" not in row:
            s = audit_summary(work, ckpt, tests[test_cue], f"{name}-on-{test_cue}", args.top)
            row["test"] = test_cue
            row["objects"] = s.get("objects", 0)
            row["reliance"] = s.get("reliance")
            row["flagged_context"] = (s.get("flags") or {}).get("context_reliance")
            row["flagged"] = s.get("flagged")
        path.write_text(json.dumps(results, indent=1))
        print(
            f"{name} on the {test_cue} test: {row['objects']} objects, reliance "
            f"{_f(row['reliance'])}, context-flagged {_f(row['flagged_context'])}",
            flush=True,
        )
    scored = [
        (r["cue"] != "none", r["reliance"] or 0.0)
        for k, r in results.items()
        if not k.startswith("_") and "test" in r
    ]
    truth = [int(p) for p, _ in scored]
    if 0 < sum(truth) < len(truth):
        import numpy as np

        auc = roc_auc(np.array([s for _, s in scored]), np.array(truth, dtype=np.uint8))
        print(f"\nmodel-level reliance, planted vs clean: ROC-AUC {auc:.3f} "
              f"({sum(truth)} planted, {len(truth) - sum(truth)} clean)")  # fmt: skip
        results["_roc_auc"] = auc
    print("\n| model | cue | test region | detections | reliance | context-flagged share |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        if name.startswith("_") or "test" not in r:
            continue
        print(f"| {name} | {r['cue']} | {r['test']} | {r['objects']} | {_f(r['reliance'])} | "
              f"{_f(r['flagged_context'])} |")  # fmt: skip
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
