"""Does concept naming name a planted cue? The features that carry a model's solar logit, named.

Uses the models of ``bench_audit.py`` (trained with the real CLI on demo regions whose every
OSM-mapped farm has a bright pad or snow planted around it, and on clean regions; trained here
when the work folder lacks them). For each model, the probe scene is a planted region: its own
for a planted model, the pad region of the same seed for a clean one (the same landscape, pads
beside the mapped farms, which the clean model never saw labelled). Every channel of the layer
is named by contrastive concept naming (``solarmap concepts``); then each mapped truth farm of
the probe region is explained by its features (activation x gradient of the farm's summed
logit), and the features carrying the solar logit are the five with the largest contribution
summed over the farms.

Printed per model: those five features, their names, how many name the cue ("spurious pad" for
pads, "snow" for snow) and their share of the five's positive contribution, and how many of the
layer's features the cue names at all; then the ROC-AUC of that share, planted against clean.
Nothing here asserts a figure.

With ``--sae``, instead: for the shipped model and one planted and one clean model, a sparse
autoencoder (``solarmap concepts --sae`` defaults) is trained on the layer over every region's
scene; printed are its reconstruction (FVU on held-out positions), sparsity (L0, dead share),
how many codes and how many channels reach a concept ROC-AUC of 0.9, and per concept the best
code's and the best channel's AUC and the logistic probes' on all codes and on all channels.

    python benchmarks/bench_concepts.py --workdir /tmp/auditbench [--layer decoder.blocks.3]
        [--models pad-30-s1,clean-s1] [--sae]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_audit import MODELS, UNMAPPED, region
from bench_transfer import prepare, sm

#: The concept each cue is named by.
CUE_CONCEPT = {"pad": "spurious pad", "snow": "snow"}
#: Features counted as carrying the solar logit.
CARRIERS = 5


def ensure_model(work: Path, name: str, cue: str, width: float, seed: int, size: int,
                 epochs: int) -> tuple[Path, Path]:  # fmt: skip
    """The region and checkpoint of one bench_audit model, trained when missing."""
    unmapped = UNMAPPED["clean" if cue == "none" else "planted"]
    reg = region(work, name, cue, width, seed, size, unmapped)
    ckpt = work / "ckpt" / name
    if not (ckpt / "model.safetensors").exists():
        chips = prepare([reg / "scene.tif"], reg / "labels.osm", work / "chips" / name)
        sm("train", "--chips", str(chips), "--out", str(ckpt), "--epochs", str(epochs),
           "--patience", str(epochs), "--overwrite")  # fmt: skip
    return reg, ckpt


def carriers(reg: Path, ckpt: Path, layer: str | None) -> dict[str, Any]:
    import geopandas as gpd
    import numpy as np

    from attribute.concepts import (
        ConceptConfig,
        concept_readers,
        default_layer,
        explain_detections,
        name_features,
        probe_tiles,
    )
    from attribute.targets import Target
    from data_prep.sentinel2 import open_scene
    from solarmap.model import load_checkpoint

    ck = load_checkpoint(ckpt)
    model = ck.freeze()
    layer = layer or default_layer(model)
    truth = gpd.read_file(reg / "truth.gpkg", layer="farms")
    farms = truth[truth["mapped"]]
    targets = [Target(int(i), "polygon", g) for i, g in zip(farms.index, farms.geometry,
                                                             strict=True)]  # fmt: skip
    with open_scene(reg / "scene.tif") as scene:
        probe = probe_tiles([scene], concept_readers([scene], "landcover"), ck.normalise,
                            tile_px=64)  # fmt: skip
        named, scores = name_features(model, probe, layer=layer, config=ConceptConfig())
        names = {f.feature: f.names for f in named}
        rows = explain_detections(scene, ck, targets, layer=layer, names=names,
                                  top=scores.shape[1])  # fmt: skip
    total = np.zeros(scores.shape[1])
    for r in rows:
        for f in r["features"]:
            total[f["feature"]] += f["contribution"]
    top = [int(j) for j in np.argsort(-total)[:CARRIERS]]
    return {
        "features": scores.shape[1],
        "probe_tiles": len(probe),
        "farms": len(targets),
        "carriers": [
            {"feature": j, "contribution": float(total[j]), "names": names.get(j, [])} for j in top
        ],
        "named": {str(k): v for k, v in names.items()},
    }


def sae_figures(work: Path, layer: str | None, models: list[str]) -> None:
    from contextlib import ExitStack

    from attribute.concepts import concept_readers, default_layer, probe_tiles
    from attribute.sae import SaeConfig, concept_probes, train_sae
    from data_prep.sentinel2 import open_scene
    from solarmap.model import load_checkpoint, shipped_checkpoint

    scenes = sorted((work / "regions").glob("*/scene.tif"))
    for name in models:
        ck = load_checkpoint(shipped_checkpoint() if name == "shipped" else work / "ckpt" / name)
        model = ck.freeze()
        at = layer or default_layer(model)
        with ExitStack() as stack:
            opened = [stack.enter_context(open_scene(p)) for p in scenes]
            probe = probe_tiles(opened, concept_readers(opened, "landcover"), ck.normalise,
                                tile_px=64)  # fmt: skip
        t0 = time.perf_counter()
        res = train_sae(model, probe, layer=at, config=SaeConfig())
        p = concept_probes(model, probe, res)
        print(f"{name} at {at}: {len(probe)} tiles, {res.positions} positions, "
              f"{res.sae.n_features} codes over {p['channels']} channels; FVU {res.fvu:.3f}, "
              f"L0 {res.l0:.1f}, dead {res.dead:.0%}; AUC >= 0.9: {p['sae_features_at_good']} "
              f"codes, {p['channels_at_good']} channels")  # fmt: skip
        print(f"   ({time.perf_counter() - t0:.0f} s)")
        for r in p["per_concept"]:
            print(f"   {r['concept']:<22} best code {r['best_sae_feature_auc']:.3f}  best channel "
                  f"{r['best_channel_auc']:.3f}  probe on codes {r['probe_sae_auc']:.3f}  "
                  f"on channels {r['probe_channels_auc']:.3f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--layer", default=None, help="default: the last decoder block but one")
    ap.add_argument("--sae", action="store_true")
    ap.add_argument("--models", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if args.sae:
        sae_figures(work, args.layer, (args.models or "shipped,pad-30-s1,clean-s1").split(","))
        return
    wanted = set(args.models.split(",")) if args.models else None
    by_seed = {seed: (n, c, w) for n, c, w, seed in MODELS if c == "pad"}
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name, cue, width, seed in MODELS:
        if wanted and name not in wanted:
            continue
        _, ckpt = ensure_model(work, name, cue, width, seed, args.size, args.epochs)
        # a clean model is probed on a planted region of its seed (pads beside mapped farms)
        probe_name, probe_cue, probe_width = (name, cue, width) if cue != "none" else \
            by_seed.get(seed, ("pad-30-s1", "pad", 30))  # fmt: skip
        probe_seed = seed if probe_name == name or seed in by_seed else 1
        reg, _ = ensure_model(work, probe_name, probe_cue, probe_width, probe_seed, args.size,
                              args.epochs)  # fmt: skip
        concept = CUE_CONCEPT[probe_cue]
        r = carriers(reg, ckpt, args.layer)
        r.update(cue=cue, probe=probe_name, concept=concept)
        r["carriers_naming_cue"] = sum(concept in c["names"] for c in r["carriers"])
        pos = [c for c in r["carriers"] if c["contribution"] > 0]
        mass = sum(c["contribution"] for c in pos)
        r["cue_contribution_share"] = (
            sum(c["contribution"] for c in pos if concept in c["names"]) / mass if mass else 0.0
        )
        r["features_naming_cue"] = sum(concept in v for v in r["named"].values())
        results[name] = r
        show = "; ".join(f"{c['feature']}: {', '.join(c['names']) or 'unnamed'}"
                         for c in r["carriers"])  # fmt: skip
        print(f"{name:>11} on {probe_name:<10} carriers naming '{concept}': "
              f"{r['carriers_naming_cue']}/{CARRIERS} ({r['cue_contribution_share']:.0%} of their "
              f"contribution), layer features naming it: "
              f"{r['features_naming_cue']}/{r['features']}  [{show}]", flush=True)  # fmt: skip
    (work / f"concepts-bench-{args.layer or 'default'}.json").write_text(
        json.dumps(results, indent=1)
    )
    planted = [r for r in results.values() if r["cue"] != "none"]
    clean = [r for r in results.values() if r["cue"] == "none"]
    for label, group in (("planted", planted), ("clean", clean)):
        if group:
            n = sum(r["carriers_naming_cue"] > 0 for r in group)
            share = sum(r["carriers_naming_cue"] for r in group) / (CARRIERS * len(group))
            print(f"{label}: {n}/{len(group)} models have a carrier named by the cue; "
                  f"{share:.0%} of their carriers are")  # fmt: skip
    if planted and clean:
        import numpy as np

        from train.evaluate import roc_auc

        scored = [(r["cue"] != "none", r["cue_contribution_share"]) for r in results.values()]
        auc = roc_auc(np.array([v for _, v in scored]),
                      np.array([int(p) for p, _ in scored], dtype=np.uint8))  # fmt: skip
        print(f"share of the carriers' contribution named by the cue, planted vs clean: "
              f"ROC-AUC {auc:.3f}")  # fmt: skip
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
