"""Integrated Gradients: model passes the completeness gate needs, by baseline and rule.

Explains the largest detected objects of a prediction with a trained checkpoint (e.g. from
`solarmap demo`: demo-out/checkpoint, demo-out/unseen-region/scene.tif,
demo-out/prediction/polygons.gpkg) and prints, per baseline and rule, the steps at which the
gate reached ≤ 1 % completeness error and the backward passes spent (the gate doubles steps
from 4 and re-runs, so passes are cumulative), with medians over the objects.

    python benchmarks/bench_ig.py --checkpoint DIR --scene TIF --predictions GPKG [--n 6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import geopandas as gpd
import numpy as np
import torch
from rasterio.windows import transform as window_transform

from attribute.explain import read_padded
from attribute.integrated_gradients import BaselineName, Rule, integrated_gradients
from attribute.targets import build_target, probability_to_logit, window_for_target
from data_prep.sentinel2 import open_scene
from solarmap.model import load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=Path("demo-out/checkpoint"))
    ap.add_argument("--scene", type=Path, default=Path("demo-out/unseen-region/scene.tif"))
    ap.add_argument("--predictions", type=Path, default=Path("demo-out/prediction/polygons.gpkg"))
    ap.add_argument("--n", type=int, default=6)
    args = ap.parse_args()
    ck = load_checkpoint(args.checkpoint)
    for p in ck.model.parameters():
        p.requires_grad_(False)
    zero = -torch.tensor(ck.mean) / torch.tensor(ck.std)
    polys = gpd.read_file(args.predictions).sort_values("area_m2", ascending=False)
    baselines: tuple[BaselineName, ...] = ("zero", "blur", "median")
    rules: tuple[Rule, ...] = ("midpoint", "trapezoid")
    combos = [(b, r) for b in baselines for r in rules]
    steps: dict[tuple[str, str], list[int]] = {c: [] for c in combos}
    passes: dict[tuple[str, str], list[int]] = {c: [] for c in combos}
    with open_scene(args.scene) as scene:
        info = scene.info
        for geom in list(polys.geometry)[: args.n]:
            win = window_for_target(
                geom,
                scene_transform=info.transform,
                scene_shape=(info.height, info.width),
                multiple=ck.config.multiple,
            )
            refl, valid = read_padded(scene, win)
            x = ck.normalise(torch.from_numpy(refl)[None])
            f = build_target(
                "object",
                geom,
                model=ck.model,
                x=x,
                transform=window_transform(win, info.transform),
                threshold_logit=probability_to_logit(ck.threshold),
                valid=valid,
            )
            for b, r in combos:
                a = integrated_gradients(
                    f,
                    x,
                    baseline=b,
                    rule=r,
                    steps=4,
                    max_steps=256,
                    batch_size=16,
                    zero_reflectance=zero,
                )
                steps[(b, r)].append(a.extra["steps"] if a.extra["converged"] else -1)
                passes[(b, r)].append(a.cost.backward)
    print(f"{'baseline/rule':<18} {'median steps':>12} {'median passes':>13}  steps per object")
    for c in combos:
        print(
            f"{c[0] + '/' + c[1]:<18} {np.median(steps[c]):12.0f} {np.median(passes[c]):13.0f}"
            f"  {steps[c]}"
        )


if __name__ == "__main__":
    main()
