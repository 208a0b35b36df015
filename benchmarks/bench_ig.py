"""Integrated Gradients: what each baseline means to the model, and the passes it costs.

Explains the largest detected objects of a prediction with a trained checkpoint (e.g. from
`solarmap demo`: demo-out/checkpoint, demo-out/unseen-region/scene.tif,
demo-out/prediction/polygons.gpkg) and prints, per baseline: f(x′) against f(x), the share of
the score the explanation accounts for, (f(x) − f(x′)) / |f(x)|, and whether the reference is
clearly non-solar (attribute.base.reference_check) for each object; then, per baseline and
rule, the steps at which the gate reached ≤ 1 % completeness error and the backward passes
spent, with medians over the objects. The default baseline is the cheapest of those that are
non-solar for every object (the line "cheapest meaningful").

The gate starts at 4 steps and refines nested rules (midpoint ×3, trapezoid ×2),
reusing every gradient, so passes are those of the final step count (+1 end node for the
trapezoid). For comparison it also prints the completeness error of Captum's default, 50
Gauss-Legendre steps, on the same baselines.

    python benchmarks/bench_ig.py --checkpoint DIR --scene TIF --predictions GPKG [--n 6]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients

from attribute.base import BaselineName, make_baseline, reference_check
from attribute.integrated_gradients import Rule, integrated_gradients
from attribute.targets import probability_to_logit, read_target
from data_prep.sentinel2 import open_scene
from solarmap.geo import read_vector
from solarmap.model import load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=Path("demo-out/checkpoint"))
    ap.add_argument("--scene", type=Path, default=Path("demo-out/unseen-region/scene.tif"))
    ap.add_argument("--predictions", type=Path, default=Path("demo-out/prediction/polygons.gpkg"))
    ap.add_argument("--n", type=int, default=6)
    args = ap.parse_args()
    ck = load_checkpoint(args.checkpoint)
    ck.freeze()
    zero = ck.zero_reflectance()
    polys = read_vector(args.predictions).sort_values("area_m2", ascending=False)
    baselines: tuple[BaselineName, ...] = ("zero", "blur", "median", "context")
    rules: tuple[Rule, ...] = ("midpoint", "trapezoid")
    combos = [(b, r) for b in baselines for r in rules]
    steps: dict[tuple[str, str], list[float]] = {c: [] for c in combos}
    passes: dict[tuple[str, str], list[int]] = {c: [] for c in combos}
    captum_err: dict[str, list[float]] = {b: [] for b in baselines}
    refs: dict[str, list[Any]] = {b: [] for b in baselines}
    t_logit = probability_to_logit(ck.threshold)
    with open_scene(args.scene) as scene:
        for geom in list(polys.geometry)[: args.n]:
            tw = read_target(scene, ck, "object", geom)
            x, f = tw.x, tw.f
            region = f.region_numpy()
            for b in baselines:
                with torch.no_grad():
                    fx = float(f(x)[0])
                    fb = float(f(make_baseline(x, b, zero_reflectance=zero, region=region))[0])
                refs[b].append(
                    reference_check(
                        fx, fb, n_pixels=f.n_pixels, reduction="sum", threshold_logit=t_logit
                    )
                )
            for b, r in combos:
                a = integrated_gradients(
                    f,
                    x,
                    baseline=b,
                    rule=r,
                    steps=4,
                    max_steps=324,
                    batch_size=16,
                    zero_reflectance=zero,
                    region=region,
                )
                steps[(b, r)].append(a.extra["steps"] if a.extra["converged"] else np.inf)
                passes[(b, r)].append(a.cost.backward)
            for b in baselines:
                base = make_baseline(x, b, zero_reflectance=zero, region=region)
                _, delta = IntegratedGradients(f).attribute(
                    x, baselines=base, internal_batch_size=16, return_convergence_delta=True
                )
                with torch.no_grad():
                    gap = float(f(x)[0] - f(base)[0])
                captum_err[b].append(abs(float(delta.sum())) / abs(gap))
    print(f"threshold logit {t_logit:.2f}; a non-solar reference has a mean logit <= it - 1")
    print(f"{'baseline':<10} {'non-solar':>9} {'median share':>12}  mean logit f(x') per object")
    for b in baselines:
        ok = sum(r.non_solar for r in refs[b])
        share = np.median([r.share for r in refs[b]])
        logits = " ".join(f"{r.mean_logit:.1f}" for r in refs[b])
        print(f"{b:<10} {ok:>5}/{len(refs[b]):<3} {share:12.2f}  {logits}")
    print(f"{'baseline/rule':<18} {'median steps':>12} {'median passes':>13}  steps per object")
    for c in combos:
        print(
            f"{c[0] + '/' + c[1]:<18} {np.median(steps[c]):12.0f} {np.median(passes[c]):13.0f}"
            f"  {steps[c]}"
        )
    meaningful = [c for c in combos if all(r.non_solar for r in refs[c[0]])]
    if meaningful:
        best = min(meaningful, key=lambda c: (np.median(passes[c]), c))
        print(
            f"cheapest meaningful: {best[0]}/{best[1]}, median {np.median(passes[best]):.0f} passes"
        )
    else:
        print("cheapest meaningful: none (no baseline is non-solar for every object)")
    print("Captum default (50 Gauss-Legendre steps), completeness error:")
    for b, errs in captum_err.items():
        print(f"  {b}: median {np.median(errs):.2%}, max {np.max(errs):.2%}")


if __name__ == "__main__":
    main()
