"""Does the audit catch a planted cue? Models trained with and without one, audited alike.

Trains small models with the real CLI on demo regions whose every OSM-mapped farm has a cue
planted around it (``solarmap demo-data --spurious pad|snow``, several seeds and ring widths:
a fifth of the farms are unmapped, with panels but no cue and no label, so the cue is what
tells a label) and as many on clean regions (no cue, every farm mapped: the labels follow the
panels). Each model predicts its own region (at one threshold, 0.5) and its detections in the
region's held-out test blocks (the chips `prepare` put in the test split, never trained on)
are audited, the largest first (``solarmap audit --target``, the default explain methods).
Its own region, because the question is what a model relies on where it works, not whether it
transfers: on another seed's region a clean model trained on 512 px finds solar almost
everywhere (the transfer benchmark's problem), and flags on such detections say nothing
about a cue. Per model it prints the model-level reliance score (``summary.reliance`` of
audit.json, the mean over detections of max(1 - kept_bare, cue)), the share of detections
flagged for context reliance and the share that overlap a true farm; then the ROC-AUC of the
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
#: Share of farms left unmapped: planted regions keep the generator's default, so a label is
#: told by its cue; clean regions map every farm.
UNMAPPED = {"planted": 0.2, "clean": 0.0}
#: One detection threshold for every model (validation thresholds of these small models range
#: from about 0.1 to 0.999).
THRESHOLD = 0.5


def region(
    work: Path, name: str, cue: str, width: float, seed: int, size: int, unmapped: float
) -> Path:
    out = work / "regions" / name
    if not (out / "scene.tif").exists():
        sm("demo-data", "--out", str(out), "--seed", str(seed), "--size", str(size),
           "--spurious", cue, "--spurious-width", str(width), "--unmapped-fraction",
           str(unmapped), "--overwrite")  # fmt: skip
    return out


def predict(work: Path, ckpt: Path, scene: Path, name: str) -> Path:
    pred = work / "pred" / name
    if not (pred / "polygons.gpkg").exists():
        sm("predict", "--scene", str(scene), "--checkpoint", str(ckpt), "--out", str(pred),
           "--threshold", str(THRESHOLD), "--overwrite", "--ood-check", "off")  # fmt: skip
    return pred / "polygons.gpkg"


def held_out(polygons: Path, chips: Path, truth: Path, out: Path) -> tuple[Path, int]:
    """The detections whose centroid lies in the test-split chips, and how many there are."""
    from solarmap.geo import read_vector, write_vector

    dets = read_vector(polygons, layer="solar")
    test = read_vector(chips / "chips.gpkg", layer="chips")
    test = test[test["split"] == "test"].to_crs(dets.crs)
    inside = dets[dets.centroid.within(test.union_all())] if len(test) else dets.iloc[:0]
    farms = read_vector(truth, layer="farms").to_crs(dets.crs)
    inside = inside.assign(on_farm=inside.intersects(farms.union_all()) if len(farms) else False)
    if len(inside):
        write_vector(inside, out, layer="solar")
    return out, len(inside)


def audit_summary(
    work: Path, ckpt: Path, scene: Path, target: Path, name: str, top: int
) -> dict[str, Any]:
    out = work / "audit" / name
    if not (out / "audit.json").exists():
        sm("audit", "--scene", str(scene), "--checkpoint", str(ckpt), "--target",
           str(target), "--top", str(top), "--out", str(out), "--overwrite",
           check=False)  # fmt: skip
    if not (out / "audit.json").exists():
        return {"objects": 0}
    return json.loads((out / "audit.json").read_text())["summary"]


def breakdown(work: Path, name: str) -> dict[str, Any]:
    """Context-flagged share of the audited detections of 1 ha and more, and of those on a
    true farm and off one (false positives), with their counts."""
    from solarmap.geo import read_vector

    path = work / "audit" / name / "audit.json"
    target = work / "pred" / f"{name}-own" / "held_out.gpkg"
    if not path.exists() or not target.exists():
        return {}
    objects = json.loads(path.read_text())["objects"]
    on = read_vector(target, layer="solar").set_index("id")["on_farm"]

    def share(rows: list[dict[str, Any]]) -> tuple[float | None, int]:
        flags = [o["flags"]["context_reliance"] for o in rows]
        return (sum(flags) / len(flags) if flags else None), len(flags)

    out = {}
    for key, rows in (
        ("ge_1ha", [o for o in objects if o["area_ha"] >= 1.0]),
        ("on_farm", [o for o in objects if bool(on.get(o["id"], False))]),
        ("off_farm", [o for o in objects if not bool(on.get(o["id"], False))]),
    ):
        out[f"flagged_{key}"], out[f"n_{key}"] = share(rows)
    return out


def on_farm_share(work: Path, name: str, target: Path) -> float | None:
    """Share of the audited detections that overlap a true farm."""
    from solarmap.geo import read_vector

    path = work / "audit" / name / "audit.json"
    if not path.exists():
        return None
    ids = [o["id"] for o in json.loads(path.read_text())["objects"]]
    dets = read_vector(target, layer="solar")
    hit = dets[dets["id"].isin(ids)]["on_farm"]
    return float(hit.mean()) if len(hit) else None


def main() -> None:
    from train.evaluate import roc_auc

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--size", type=int, default=512, help="training region side, px")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--top", type=int, default=6, help="held-out detections audited per model")
    ap.add_argument("--cross", nargs=2, type=Path, metavar=("CHECKPOINT", "SCENE"))
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    path = work / "audit-bench.json"
    if path.exists():
        results = json.loads(path.read_text())
    for name, cue, width, seed in MODELS:
        unmapped = UNMAPPED["clean" if cue == "none" else "planted"]
        reg = region(work, name, cue, width, seed, args.size, unmapped)
        chips = prepare([reg / "scene.tif"], reg / "labels.osm", work / "chips" / name)
        ckpt = work / "ckpt" / name
        if not (ckpt / "model.safetensors").exists():
            sm("train", "--chips", str(chips), "--out", str(ckpt), "--epochs", str(args.epochs),
               "--patience", str(args.epochs), "--overwrite", check=False)  # fmt: skip
        if not (ckpt / "model.safetensors").exists():
            print(f"{name}: training failed; left out", flush=True)
            continue
        row = results.setdefault(name, {"cue": cue, "width": width, "seed": seed})
        if "objects" not in row:
            polygons = predict(work, ckpt, reg / "scene.tif", f"{name}-own")
            target, n = held_out(
                polygons, chips, reg / "truth.gpkg", polygons.with_name("held_out.gpkg")
            )
            s = audit_summary(work, ckpt, reg / "scene.tif", target, name, args.top) if n else {}
            row["held_out_detections"] = n
            row["objects"] = s.get("objects", 0)
            row["reliance"] = s.get("reliance")
            row["flagged_context"] = (s.get("flags") or {}).get("context_reliance")
            row["flagged"] = s.get("flagged")
            row["on_farm"] = on_farm_share(work, name, target) if n else None
        path.write_text(json.dumps(results, indent=1))
        print(
            f"{name}: {row['objects']} of {row['held_out_detections']} held-out detections "
            f"audited, reliance {_f(row['reliance'])}, context-flagged "
            f"{_f(row['flagged_context'])}, on a true farm {_f(row['on_farm'])}",
            flush=True,
        )
    scored = [
        (r["cue"] != "none", r["reliance"] or 0.0)
        for k, r in results.items()
        if not k.startswith("_") and r.get("objects")
    ]
    truth = [int(p) for p, _ in scored]
    if 0 < sum(truth) < len(truth):
        import numpy as np

        auc = roc_auc(np.array([s for _, s in scored]), np.array(truth, dtype=np.uint8))
        print(f"\nmodel-level reliance, planted vs clean: ROC-AUC {auc:.3f} "
              f"({sum(truth)} planted, {len(truth) - sum(truth)} clean, models with "
              "audited detections)")  # fmt: skip
        results["_roc_auc"] = auc
    print("\n| model | cue | held-out detections | audited | on a true farm | reliance | "
          "context-flagged | flagged, >= 1 ha | flagged, on a farm | flagged, off a farm "
          "|")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if name.startswith("_") or "objects" not in r:
            continue
        r |= breakdown(work, name)
        figures = (r["on_farm"], r["reliance"], r["flagged_context"])
        parts = [
            f"{_f(r.get(f'flagged_{k}'))} ({r.get(f'n_{k}', 0)})"
            for k in ("ge_1ha", "on_farm", "off_farm")
        ]
        print(f"| {name} | {r['cue']} | {r['held_out_detections']} | {r['objects']} | "
              + " | ".join([*(_f(v) for v in figures), *parts]) + " |")  # fmt: skip
    if args.cross:
        ck, scene = args.cross
        polygons = predict(work, ck.resolve(), scene.resolve(), f"cross-{ck.name}")
        s = audit_summary(work, ck.resolve(), scene.resolve(), polygons, f"cross-{ck.name}",
                          args.top)  # fmt: skip
        results["_cross"] = {"checkpoint": str(ck), "scene": str(scene), "summary": s}
        print(f"\ncross-region audit of {ck} on {scene}:")
        print(json.dumps(s, indent=1))
    path.write_text(json.dumps(results, indent=1))
    print(f"\n{time.perf_counter() - t0:.0f} s", flush=True)


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    main()
