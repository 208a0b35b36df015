"""Prediction benchmark: throughput (km²/s), peak RSS and where the time goes.

For each scene size, writes an L2A-like scene window by window (see bench_prepare), then runs
prediction in a fresh child process and prints wall time, km²/s, the child's own peak RSS and
the share of time outside the model forward pass (reading, blending, writing, polygonizing).
Peak RSS should stay nearly flat as the scene grows.

    python benchmarks/bench_predict.py [--sizes 2048 8192 16384] [--checkpoint DIR]

Without --checkpoint a randomly initialised default U-Net is used: throughput does not depend
on the weights (though the polygon count does).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_prepare import write_scene

from solarmap.model import random_checkpoint


def child(scene: Path, ckpt: Path, out: Path) -> None:
    from data_prep.sentinel2 import open_scene
    from solarmap.model import load_checkpoint
    from solarmap.predict import PredictConfig, predict_scene

    t0 = time.perf_counter()
    c = load_checkpoint(ckpt)
    with open_scene(scene) as s:
        res = predict_scene(s, c, out, config=PredictConfig(), overwrite=True)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"wall": wall, "rss_mb": rss, "seconds": res.seconds, "polygons": res.n_polygons}
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192, 16384])
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = args.checkpoint or random_checkpoint(work / "ckpt")
        print(
            f"{'pixels':>8} {'km²':>7} {'wall s':>7} {'km²/s':>7} {'peak RSS MB':>11} "
            f"{'outside fwd':>11}  split (s)"
        )
        for size in args.sizes:
            scene = work / f"scene_{size}.tif"
            write_scene(scene, size)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(scene), str(ckpt), str(work / "out")],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            km2 = size * size * 100 / 1e6
            sec = r["seconds"]
            total = sum(sec.values())
            outside = 1 - sec.get("forward", 0) / total if total else float("nan")
            split = ", ".join(f"{k} {v:.1f}" for k, v in sec.items())
            print(
                f"{size:>7}² {km2:7.0f} {r['wall']:7.1f} {km2 / r['wall']:7.2f} "
                f"{r['rss_mb']:11.0f} {outside:11.1%}  {split}"
            )
            scene.unlink()


if __name__ == "__main__":
    main()
