"""Train the general model shipped in the package (solarmap/models/general) and its model card.

Training data: a training region of every synthetic preset (``solarmap demo-data --preset``)
plus the real Austrian Sentinel-2 chips of ``../shared/realdata`` when present; model selection
(early stopping, threshold) on a held-out validation region of every preset. Everything runs
through the real CLI. The finished checkpoint is written with float16 weights (half the size;
the model computes in float32 after loading) and without its resumable state, and its
records name the training data by description instead of by this machine's paths.

    python scripts/train_general_model.py --workdir /tmp/general [--minutes 20] [--size 768]
        [--transfer /tmp/transfer/transfer.json]   # figures for the model card
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_transfer import PRESETS, VARIANTS, austria_all, synthetic  # noqa: E402

OUT = ROOT / "solarmap" / "models" / "general"


def sm(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "solarmap", "-q", *args], text=True)
    if r.returncode:
        raise SystemExit(f"solarmap {args[0]} failed")


def ship(ckpt: Path, meta_extra: dict[str, Any]) -> None:
    """Copy ``ckpt`` into the package: float16 weights, metadata with ``meta_extra``."""
    import torch
    from safetensors.torch import save_file

    from solarmap.geo import write_json
    from solarmap.model import META_FILE, WEIGHTS_FILE, load_checkpoint

    loaded = load_checkpoint(ckpt)
    meta = {k: v for k, v in loaded.metadata.items() if k != "path"} | meta_extra
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    state = {
        k: (v.half() if v.is_floating_point() else v).contiguous()
        for k, v in loaded.model.state_dict().items()
    }
    save_file(state, str(OUT / WEIGHTS_FILE), metadata={"solarmap": json.dumps(meta)})
    write_json(OUT / META_FILE, meta)
    again = load_checkpoint(OUT)
    x = torch.randn(1, 10, 64, 64)
    with torch.no_grad():
        diff = (again.model(x) - loaded.model(x)).abs().max().item()
    print(
        f"shipped {OUT} ({(OUT / WEIGHTS_FILE).stat().st_size / 1e6:.1f} MB); float16 max logit "
        f"change {diff:.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--variant", default="unet", choices=sorted(VARIANTS))
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    syn = {p: synthetic(work, p, k, args.size) for k, p in enumerate(PRESETS)}
    chips = [syn[p]["train"] for p in PRESETS]
    real = austria_all(work)
    if real is not None:
        chips.append(real)
    vals = [syn[p]["val"] for p in PRESETS]
    ckpt = work / "general"
    sm(
        "train", *[a for c in chips for a in ("--chips", str(c))],
        *[a for v in vals for a in ("--val-chips", str(v))],
        "--out", str(ckpt), "--max-minutes", str(args.minutes), "--overwrite",
        *VARIANTS[args.variant],
    )  # fmt: skip
    described = [f"synthetic preset {p} (solarmap demo-data --preset {p})" for p in PRESETS]
    if real is not None:
        described.append("Austrian Sentinel-2 L2A chips 2022 (26 sites, date + median)")
    ship(
        ckpt,
        {
            "chips": described,
            "val_chips": [f"synthetic preset {p}, held-out region" for p in PRESETS],
            "variant": args.variant,
        },
    )


if __name__ == "__main__":
    main()
