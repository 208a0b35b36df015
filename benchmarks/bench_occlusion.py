"""Occlusion and superpixel cost against the object's context, not the window.

For detected objects of several sizes (by default from `solarmap demo`), on a fixed 256×256
window centred on each and on the window `solarmap explain` reads (object plus 32 px context),
prints the occlusion positions and seconds of solarmap's sweep (the object's bbox plus context)
next to Captum's Occlusion over the whole window (8×8 windows, stride 8, same batch), and the
time of one superpixel evaluation, which is what every superpixel method pays per coalition.

    python benchmarks/bench_occlusion.py [--checkpoint DIR --scene TIF --predictions GPKG]
        [--ranks 0,10,30,60]
"""

from __future__ import annotations

import argparse
import time

import torch
from captum.attr import Occlusion
from explain_window import add_window_arguments, load_window

from attribute.occlusion import occlusion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_window_arguments(ap)
    ap.add_argument("--ranks", default="0,10,30,60")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    cols = ("object", "window", "ours: positions", "ours: s", "Captum: positions", "Captum: s")
    print("| " + " | ".join((*cols, "ms per evaluation")) + " |")
    print("|---|---|---|---|---|---|---|")
    for rank in (int(r) for r in args.ranks.split(",")):
        for size in (256, None):
            w = load_window(args.checkpoint, args.scene, args.predictions, size=size, rank=rank)
            x, f = w.x, w.f
            base = w.zero[None, :, None, None].expand_as(x).contiguous()
            t = time.perf_counter()
            ours = occlusion(f, x, window=8, baseline=w.zero, batch_size=args.batch,
                             region_bbox=w.bbox)  # fmt: skip
            t_ours = time.perf_counter() - t
            t = time.perf_counter()
            with torch.no_grad():
                Occlusion(f).attribute(
                    x, sliding_window_shapes=(10, 8, 8), strides=(10, 8, 8), baselines=base,
                    perturbations_per_eval=args.batch,
                )  # fmt: skip
            t_cap = time.perf_counter() - t
            h, wd = x.shape[-2:]
            full = ((h - 8) // 8 + 1) * ((wd - 8) // 8 + 1)
            with torch.no_grad():
                t = time.perf_counter()
                f(x.expand(args.batch, -1, -1, -1))
                ms = (time.perf_counter() - t) / args.batch * 1e3
            label = "256² fixed" if size else "explain's"
            print(
                f"| {w.area_ha:.1f} ha, bbox {w.bbox[2] - w.bbox[0]}×{w.bbox[3] - w.bbox[1]} px "
                f"| {h}×{wd} ({label}) | {ours.extra['positions']} | {t_ours:.1f} | {full} "
                f"| {t_cap:.1f} | {ms:.1f} |"
            )


if __name__ == "__main__":
    main()
