"""Train the solar U-Net on prepared chips.

BCE + Dice loss with ignore pixels (255) masked out, AdamW, dihedral and brightness
augmentation, seeded and deterministic on CPU, early stopping on validation IoU, resumable from
the last finished epoch. The decision threshold is chosen on the validation split and stored in
the checkpoint with the metrics and a fingerprint of the training data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from solarmap.bands import BANDS
from solarmap.errors import InputError, OutputExistsError
from solarmap.geo import atomic_path, write_json
from solarmap.model import ModelConfig, build_model, save_checkpoint
from solarmap.progress import make_progress
from train.dataset import ChipDataset, read_stats
from train.evaluate import PixelCounts, ProbabilityHistogram

log = logging.getLogger(__name__)

STATE_DIR = "last"


@dataclass(frozen=True)
class TrainConfig:
    """Training options; written into the checkpoint metadata."""

    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 10
    augment: bool = True
    brightness: float = 0.03
    dice_weight: float = 1.0
    seed: int = 0
    max_minutes: float | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise InputError("epochs, batch size and patience must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or self.brightness < 0:
            raise InputError("learning rate must be > 0; weight decay and brightness >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    checkpoint: Path
    best_epoch: int
    epochs_run: int
    threshold: float
    val: dict[str, float]
    test: dict[str, float] | None
    seconds: float
    images_per_s: float


def masked_bce_dice(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *, dice_weight: float = 1.0
) -> torch.Tensor:
    """BCE + soft Dice over valid pixels only. Tensors ``[N, 1, H, W]``."""
    n_valid = valid.sum().clamp_min(1.0)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * valid).sum() / n_valid
    prob = torch.sigmoid(logits) * valid
    inter = (prob * target).sum()
    dice = 1 - (2 * inter + 1) / (prob.sum() + (target * valid).sum() + 1)
    return bce + dice_weight * dice


def data_fingerprint(root: Path) -> str:
    """SHA-256 over the prepared folder's chip index, statistics and configuration."""
    h = hashlib.sha256()
    for name in ("chips.gpkg", "stats.json", "config.json"):
        p = root / name
        if p.exists():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@torch.inference_mode()
def score(
    model: nn.Module, ds: ChipDataset, *, batch_size: int, threshold: float | None = None
) -> tuple[ProbabilityHistogram, PixelCounts | None]:
    """Probability histogram (and counts at ``threshold``) of a model over a dataset."""
    model.eval()
    hist = ProbabilityHistogram()
    counts = PixelCounts() if threshold is not None else None
    for x, y, v in DataLoader(ds, batch_size=batch_size, shuffle=False):
        prob = torch.sigmoid(model(x)).numpy()[:, 0]
        truth = np.where(v.numpy()[:, 0] > 0, y.numpy()[:, 0], 255).astype(np.uint8)
        hist.update(prob, truth)
        if counts is not None and threshold is not None:
            counts.update(prob >= threshold, truth)
    return hist, counts


def _save_state(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, info: dict) -> None:
    """Resumable state: weights, optimizer moments and RNG, as safetensors (no pickle)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    with atomic_path(folder / "state.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(folder / "state.json", info)


def _load_state(folder: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    tensors = load_file(str(folder / "state.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)
    torch.set_rng_state(tensors["rng.torch"])
    return json.loads((folder / "state.json").read_text())


def train(
    chips: str | Path,
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train on a prepared folder and write a checkpoint folder.

    Raises:
        InputError: on a chip folder without train or val chips.
        OutputExistsError: when ``out`` holds a checkpoint and neither ``resume`` nor
            ``overwrite`` is set.
    """
    cfg = config or TrainConfig()
    root, out = Path(chips), Path(out)
    if (out / "checkpoint.json").exists() and not (resume or overwrite):
        raise OutputExistsError(f"{out}: holds a checkpoint; pass --overwrite or --resume")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    stats = read_stats(root)
    train_ds = ChipDataset(
        root, "train", augment=cfg.augment, brightness=cfg.brightness, stats=stats, seed=cfg.seed
    )
    val_ds = ChipDataset(root, "val", stats=stats)
    if len(train_ds) == 0:
        raise InputError(f"{root}: no training chips; prepare more area or a smaller block size")
    if len(val_ds) == 0 or not any((val_ds.raw(i)[1] == 1).any() for i in range(len(val_ds))):
        log.warning(
            "no solar pixel in the validation chips: early stopping and the threshold use the "
            "train split (prepare more area or a smaller --block-size for an honest choice)"
        )
        val_ds = ChipDataset(root, "train", stats=stats)
    chip_size = train_ds.chip_size
    if chip_size % cfg.model.multiple:
        raise InputError(
            f"chip size {chip_size} is not a multiple of {cfg.model.multiple}; "
            "prepare with another --chip-size"
        )

    model = build_model(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    state_dir = out / STATE_DIR
    start_epoch, best, best_epoch, best_state, history = 0, -1.0, -1, None, []
    if resume and (state_dir / "state.json").exists():
        info = _load_state(state_dir, model, opt)
        start_epoch, best, best_epoch = info["epoch"] + 1, info["best"], info["best_epoch"]
        history = info["history"]
        sched.load_state_dict(info["scheduler"])
        if (state_dir / "best.safetensors").exists():
            best_state = load_file(str(state_dir / "best.safetensors"))
        log.info(
            "resuming after epoch %d (best val IoU %.3f at epoch %d)",
            start_epoch,
            best,
            best_epoch + 1,
        )

    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=gen,
        drop_last=len(train_ds) > cfg.batch_size,
    )
    t0 = time.perf_counter()
    seen = 0
    epoch = start_epoch - 1
    with make_progress() as progress:
        task = progress.add_task("training", total=cfg.epochs, completed=start_epoch)
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            losses = []
            for x, y, v in loader:
                opt.zero_grad(set_to_none=True)
                loss = masked_bce_dice(model(x), y, v, dice_weight=cfg.dice_weight)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                seen += len(x)
            sched.step()
            hist, _ = score(model, val_ds, batch_size=cfg.batch_size * 2)
            t = hist.best_threshold(metric="iou")
            curve = hist.curve()
            val_iou = float(np.interp(t, curve["thresholds"], curve["iou"]))
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_iou": val_iou})
            if val_iou > best:
                best, best_epoch = val_iou, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                state_dir.mkdir(parents=True, exist_ok=True)
                with atomic_path(state_dir / "best.safetensors") as tmp:
                    save_file(best_state, str(tmp))
            _save_state(
                state_dir,
                model,
                opt,
                {
                    "epoch": epoch,
                    "best": best,
                    "best_epoch": best_epoch,
                    "history": history,
                    "scheduler": sched.state_dict(),
                },
            )
            progress.update(
                task, advance=1, description=f"loss {np.mean(losses):.3f} val IoU {val_iou:.3f}"
            )
            log.debug("epoch %d loss %.4f val IoU %.4f", epoch + 1, np.mean(losses), val_iou)
            minutes = (time.perf_counter() - t0) / 60
            if epoch - best_epoch >= cfg.patience:
                log.info(
                    "early stop at epoch %d: no val IoU gain for %d epochs", epoch + 1, cfg.patience
                )
                break
            if cfg.max_minutes is not None and minutes >= cfg.max_minutes:
                log.info("time budget of %.1f min reached at epoch %d", cfg.max_minutes, epoch + 1)
                break
    seconds = time.perf_counter() - t0

    if best_state is not None:
        model.load_state_dict(best_state)
    hist, _ = score(model, val_ds, batch_size=cfg.batch_size * 2)
    threshold = hist.best_threshold(metric="iou")
    _, val_counts = score(model, val_ds, batch_size=cfg.batch_size * 2, threshold=threshold)
    val_metrics = val_counts.metrics() if val_counts else {}
    test_ds = ChipDataset(root, "test", stats=stats)
    test_metrics = None
    if len(test_ds):
        _, test_counts = score(model, test_ds, batch_size=cfg.batch_size * 2, threshold=threshold)
        test_metrics = test_counts.metrics() if test_counts else None

    meta = {
        "bands": list(BANDS),
        "normalisation": {"mean": stats["mean"], "std": stats["std"]},
        "model": dataclasses.asdict(cfg.model),
        "chip_size": chip_size,
        "threshold": threshold,
        "metrics": {"val": val_metrics, "test": test_metrics, "best_epoch": best_epoch + 1},
        "training": {**cfg.to_dict(), "history": history, "seconds": round(seconds, 1)},
        "data_fingerprint": data_fingerprint(root),
        "chips": str(root.resolve()),
    }
    save_checkpoint(out, model.eval(), meta)
    images_per_s = seen / seconds if seconds > 0 else 0.0
    log.info(
        "trained %d epochs in %.0f s (%.1f images/s); best epoch %d, val IoU %.3f at %.2f",
        epoch + 1 - start_epoch,
        seconds,
        images_per_s,
        best_epoch + 1,
        val_metrics.get("iou", float("nan")),
        threshold,
    )
    return TrainResult(
        checkpoint=out,
        best_epoch=best_epoch + 1,
        epochs_run=epoch + 1,
        threshold=threshold,
        val=val_metrics,
        test=test_metrics,
        seconds=seconds,
        images_per_s=images_per_s,
    )
