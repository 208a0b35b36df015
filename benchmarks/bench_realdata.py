"""Real Sentinel-2 chips (Austria 2022): prepare, train with the CLI, score held-out sites.

Uses ../shared/realdata/austria-s2-2022 (skips when absent). The spatial split holds whole
sites out (a site's date image and its median image share a split). Each held-out scene is
predicted with `solarmap predict` and scored with `solarmap evaluate` against the reference
mask; pixel counts and object matches are summed per split and printed.

    python benchmarks/bench_realdata.py [--epochs 60] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from solarmap.geo import read_vector
from train.evaluate import scores

ROOT = Path(__file__).resolve().parents[1]
AUSTRIA = ROOT.parent / "shared" / "realdata" / "austria-s2-2022"


def sm(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "solarmap", "-q", *args], check=True, capture_output=True, text=True
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    if not AUSTRIA.exists():
        print(f"{AUSTRIA} is absent; nothing to do")
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        scenes = sorted(AUSTRIA.glob("s2_*.tif"))
        sm(
            "prepare",
            *[a for s in scenes for a in ("--scene", str(s))],
            "--labels",
            str(AUSTRIA / "osm_solar_polygons_austria.geojson"),
            "--out",
            str(work / "prepared"),
            "--chip-size",
            "64",
            "--block-size",
            "64",
            "--overwrite",
        )
        sm(
            "train",
            "--chips",
            str(work / "prepared"),
            "--out",
            str(work / "ckpt"),
            "--epochs",
            str(args.epochs),
            "--patience",
            "15",
            "--overwrite",
        )
        chips = read_vector(work / "prepared" / "chips.gpkg")
        print(
            f"{'split':<6} {'scenes':>6} {'pixel IoU':>9} {'prec':>6} {'recall':>6} "
            f"{'farms found':>11} {'detections correct':>18}"
        )
        for split in ("train", "val", "test"):
            counts = []
            for sid in sorted(chips.loc[chips.split == split, "scene_id"]):
                out = work / "pred" / sid
                sm(
                    "predict",
                    "--scene",
                    str(AUSTRIA / f"{sid}.tif"),
                    "--checkpoint",
                    str(work / "ckpt"),
                    "--out",
                    str(out),
                    "--window",
                    "64",
                    "--overlap",
                    "0",
                    "--overwrite",
                )
                site = sid.split("_")[1]
                sm(
                    "evaluate",
                    "--prediction",
                    str(out),
                    "--truth",
                    str(AUSTRIA / f"mask_{site}.tif"),
                )
                m = json.loads((out / "metrics.json").read_text())
                px, ob = m["pixel"], m["object"]
                counts.append(
                    [
                        px["tp"],
                        px["fp"],
                        px["fn"],
                        ob["n_found"],
                        ob["n_truth"],
                        ob["n_correct"],
                        ob["n_pred"],
                    ]
                )
            tp, fp, fn, nf, nt, nc, npred = (int(n) for n in np.sum(counts, axis=0))
            px = scores(tp, fp, fn)
            print(
                f"{split:<6} {len(counts):>6} {px['iou']:9.3f} "
                f"{px['precision']:6.3f} {px['recall']:6.3f} "
                f"{nf:>5}/{nt:<5} {nc:>11}/{npred:<6}"
            )


if __name__ == "__main__":
    main()
