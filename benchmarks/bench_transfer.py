"""Transfer matrix: train on one region, score on others it never saw.

Regions: synthetic regions of the generator's presets (``solarmap demo-data --preset``: a
training region, a held-out validation region and a test region per preset, each a different
place), and the real Austrian chips of ``../shared/realdata`` split by site into two halves A
and B, each scored on its single-date images and on its April-September median composites
apart. Models (``--variants``): the U-Net with the defaults of ``solarmap train`` (``unet``),
the U-Net with other input and augmentation choices, the U-Net on a spectral prior (``prior``:
``solarmap train --prior``), and the spectral baselines (``spectral``:
logistic regression on six indices; ``index``: the best single normalized difference), each
trained with the real CLI on a training set only and selected on held-out regions (the
presets' validation regions, ``--val-chips``; an Austrian half alone on its own site-wise
validation split), never on the test regions.

For each (training set, model) × test region it prints pixel ROC-AUC, PR-AUC, IoU at the
checkpoint's threshold and at the best threshold, and object recall/precision, and writes every
figure to ``WORKDIR/transfer.json``. Nothing here asserts a speed or a score: it prints them.

    python benchmarks/bench_transfer.py --workdir /tmp/transfer [--size 768] [--minutes 3]
        [--train synthetic,austria-a] [--variants unet,robust,spectral,index] [--presets ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transfer_lib import TestScene, score_region

ROOT = Path(__file__).resolve().parents[1]
AUSTRIA = ROOT.parent / "shared" / "realdata" / "austria-s2-2022"
PRESETS = ("deccan", "central-europe", "alpine", "desert", "rice-paddy")
#: The input and augmentation choices compared (``unet`` is the default of `solarmap train`).
VARIANTS: dict[str, list[str]] = {
    "unet": [],
    "robust": [
        "--indices",
        "ratio:B02:B03,nd:B02:B08,nd:B11:B08,nd:B05:B08,nd:B08:B04,nd:B11:B12",
        "--gain", "0.15", "--offset", "0.01", "--brightness", "0.2", "--haze", "0.03",
    ],
    "robust-chip": [
        "--norm", "chip",
        "--indices",
        "ratio:B02:B03,nd:B02:B08,nd:B11:B08,nd:B05:B08,nd:B08:B04,nd:B11:B12",
        "--gain", "0.15", "--offset", "0.01", "--brightness", "0.2", "--haze", "0.03",
    ],
    "prior": ["--prior"],
    "spectral": ["--model", "spectral"],
    "index": ["--model", "index"],
}  # fmt: skip
CHIP = 64  # the Austrian chips are 13-61 px a side: one chip size for every region


def sm(*args: str, check: bool = True) -> None:
    """Run the solarmap CLI; a failure prints its error line (and stops the benchmark when
    ``check``)."""
    r = subprocess.run(
        [sys.executable, "-m", "solarmap", "-q", *args], capture_output=True, text=True
    )
    if r.returncode:
        line = f"solarmap {' '.join(args[:3])}...: {r.stderr.strip()[-400:]}"
        if check:
            raise SystemExit(line)
        print(line, flush=True)


def prepare(scenes: list[Path], labels: Path, out: Path) -> Path:
    if not (out / "stats.json").exists():
        scene_args = [a for s in scenes for a in ("--scene", str(s))]
        sm(
            "prepare", *scene_args, "--labels", str(labels), "--out", str(out),
            "--chip-size", str(CHIP), "--stride", str(CHIP // 2), "--block-size", str(4 * CHIP),
            "--overwrite",
        )  # fmt: skip
    return out


def synthetic(work: Path, preset: str, k: int, size: int) -> dict[str, Any]:
    """Train, validation and test regions of one preset (three places)."""
    parts: dict[str, Path] = {}
    for role, seed, side in (("train", 100, size), ("val", 200, size // 2), ("test", 300, size)):
        region = work / f"{preset}-{role}"
        if not (region / "scene.tif").exists():
            sm(
                "demo-data", "--preset", preset, "--out", str(region), "--seed", str(seed + k),
                "--size", str(side), "--overwrite",
            )  # fmt: skip
        parts[role] = region
    return {
        "train": prepare([parts["train"] / "scene.tif"], parts["train"] / "labels.osm",
                         work / f"{preset}-train-chips"),
        "val": prepare([parts["val"] / "scene.tif"], parts["val"] / "labels.osm",
                       work / f"{preset}-val-chips"),
        "test": [TestScene(parts["test"] / "scene.tif", parts["test"] / "truth.gpkg")],
    }  # fmt: skip


def austria(work: Path) -> dict[str, dict[str, Any]]:
    """The Austrian sites split in two halves (alternate site ids), prepared and as tests."""
    sites = sorted({re.search(r"s2_(\d+)_", p.name).group(1) for p in AUSTRIA.glob("s2_*.tif")})  # type: ignore[union-attr]
    halves = {"a": sites[0::2], "b": sites[1::2]}
    out: dict[str, dict[str, Any]] = {}
    labels = AUSTRIA / "osm_solar_polygons_austria.geojson"
    for name, ids in halves.items():
        scenes = sorted(p for i in ids for p in AUSTRIA.glob(f"s2_{i}_*.tif"))
        out[name] = {
            "chips": prepare(scenes, labels, work / f"austria-{name}-chips"),
            "date": [TestScene(p, AUSTRIA / f"mask_{p.name.split('_')[1]}.tif")
                     for p in scenes if "median" not in p.name],
            "median": [TestScene(p, AUSTRIA / f"mask_{p.name.split('_')[1]}.tif")
                       for p in scenes if "median" in p.name],
        }  # fmt: skip
    return out


def austria_all(work: Path) -> Path | None:
    """Every Austrian site prepared into one folder (for a model trained on all of them)."""
    if not AUSTRIA.exists():
        return None
    labels = AUSTRIA / "osm_solar_polygons_austria.geojson"
    return prepare(sorted(AUSTRIA.glob("s2_*.tif")), labels, work / "austria-all-chips")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--size", type=int, default=768, help="synthetic training region side, px")
    ap.add_argument("--minutes", type=float, default=3.0, help="U-Net training budget")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--variants", default="unet,robust,spectral,index")
    ap.add_argument(
        "--train",
        default="synthetic,austria-a,synthetic+austria-a",
        help="training sets: synthetic (every preset), PRESET, austria-a, austria-b, joined by +",
    )
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    presets = [p for p in args.presets.split(",") if p]
    t0 = time.perf_counter()
    syn = {p: synthetic(work, p, k, args.size) for k, p in enumerate(presets)}
    aus = austria(work) if AUSTRIA.exists() else {}
    tests: dict[str, list[TestScene]] = {f"syn:{p}": syn[p]["test"] for p in presets}
    for half, parts in aus.items():
        tests[f"austria-{half}:date"] = parts["date"]
        tests[f"austria-{half}:median"] = parts["median"]
    print(f"regions ready in {time.perf_counter() - t0:.0f} s", flush=True)

    results: dict[str, Any] = {}
    path = work / "transfer.json"
    if path.exists():
        results = json.loads(path.read_text())
    for train_set in args.train.split(","):
        chips, vals = [], []
        for part in train_set.split("+"):
            if part == "synthetic":
                chips += [syn[p]["train"] for p in presets]
                vals += [syn[p]["val"] for p in presets]
            elif part in syn:
                chips.append(syn[part]["train"])
                vals.append(syn[part]["val"])
            elif part.startswith("austria-") and part[-1] in aus:
                # validated on its own split (whole sites); the other half stays a clean test
                chips.append(aus[part[-1]]["chips"])
            else:
                raise SystemExit(f"unknown training set part {part!r}")
        # half the Austrian sites alone are a few hundred chips: many short epochs, so that
        # the time budget, not early stopping, ends a U-Net's training
        small = [] if "synthetic" in train_set else ["--epochs", "400", "--patience", "40"]
        for variant in args.variants.split(","):
            key = f"{train_set}/{variant}"
            ckpt = work / "ckpt" / key.replace("/", "__")
            if not (ckpt / "model.safetensors").exists():
                t = time.perf_counter()
                sm(
                    "train", *[a for c in chips for a in ("--chips", str(c))],
                    *[a for v in vals for a in ("--val-chips", str(v))],
                    "--out", str(ckpt), "--max-minutes", str(args.minutes), "--overwrite",
                    *small,
                    *VARIANTS[variant],
                    check=False,
                )  # fmt: skip
                if not (ckpt / "model.safetensors").exists():
                    print(f"{key}: training failed; left out", flush=True)
                    continue
                print(f"trained {key} in {time.perf_counter() - t:.0f} s", flush=True)
            row = results.setdefault(key, {})
            for test, scenes in tests.items():
                if test not in row:
                    row[test] = score_region(ckpt, scenes, window=256)
            path.write_text(json.dumps(results, indent=1))
            cells = " ".join(f"{test}={row[test]['roc_auc']:.3f}" for test in tests)
            print(f"{key}: ROC-AUC {cells}", flush=True)
    print_tables(results, list(tests))


def print_tables(results: dict[str, Any], tests: list[str]) -> None:
    """One table per figure: rows = training set / model, columns = test regions."""
    for metric in ("roc_auc", "pr_auc", "iou", "best_iou", "object_recall", "object_precision"):
        print(f"\n{metric}")
        print(f"| train / model | {' | '.join(tests)} |")
        print(f"|---|{'---|' * len(tests)}")
        for key, row in results.items():
            cells = [f"{row[t][metric]:.3f}" if t in row else "" for t in tests]
            print(f"| {key} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
