"""Training benchmark: images/s and quality per encoder under one time budget.

Prepares the demo training region (or uses --chips), then trains each encoder for the same
number of minutes and prints images/s, epochs, validation and test IoU. This is the measurement
behind the default encoder in solarmap.model.ModelConfig.

    python benchmarks/bench_train.py [--chips DIR] [--minutes 3] [--encoders NAME ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from data_prep.prepare import PrepareConfig, prepare
from data_prep.synthetic import RegionConfig, generate_region
from solarmap.model import ModelConfig
from train.fit import TrainConfig, train

CANDIDATES = {
    "tu-mobilenetv3_small_100": (64, 32, 16, 16, 8),
    "mobilenet_v2": (64, 32, 16, 16, 8),
    "resnet18": (64, 32, 16, 16, 8),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chips", type=Path)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--encoders", nargs="+", default=list(CANDIDATES))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        chips = args.chips
        if chips is None:
            region = generate_region(Path(tmp) / "region", RegionConfig(seed=0, size=2048))
            chips = Path(tmp) / "prepared"
            cfg = PrepareConfig(chip_size=256, stride=128, block_size=512)
            prepare([region.scene], region.osm, chips, config=cfg)
        print(f"{'encoder':<26} {'images/s':>8} {'epochs':>6} {'val IoU':>7} {'test IoU':>8}")
        for name in args.encoders:
            dec = CANDIDATES.get(name, (64, 32, 16, 16, 8))
            model = ModelConfig(encoder=name, decoder_channels=dec)
            res = train(
                chips,
                Path(tmp) / f"ckpt-{name}",
                config=TrainConfig(model=model, max_minutes=args.minutes),
            )
            test = res.test["iou"] if res.test else float("nan")
            print(
                f"{name:<26} {res.images_per_s:8.1f} {res.epochs_run:6d} "
                f"{res.val['iou']:7.3f} {test:8.3f}"
            )


if __name__ == "__main__":
    main()
