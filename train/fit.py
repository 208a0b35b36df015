"""Train the solar U-Net on prepared chips.

BCE + Dice loss with ignore pixels (255) masked out, AdamW, spectral and geometric
augmentation (:mod:`train.augment`), seeded and deterministic on CPU, early stopping on
validation IoU, resumable from the last finished epoch. The decision threshold is chosen on the
validation split and stored in the checkpoint with the metrics, the training pixels' band
statistics (for the out-of-distribution check of predict) and a fingerprint of the training
data.

Training takes one or several prepared folders (e.g. synthetic regions of several presets and
real chips), which must share chip size; their statistics are merged. Validation (early
stopping, threshold) uses the folders' validation splits, or, with ``val_chips``, whole
held-out folders: model selection on a region the model does not train on.

A spectral model (:class:`~solarmap.model.ModelConfig` ``kind="spectral"``) is fitted in one
pass instead (:func:`fit_spectral`): a logistic regression on spectral indices, optionally on
the one index that ranks the training pixels best.

The checkpoint folder is built atomically: nothing appears under its name until the run has
finished. The state after each epoch is kept beside it in ``.NAME.resume`` (see
:func:`resume_dir`), where an interrupted or killed run leaves it for ``--resume``; a finished
checkpoint carries its last state in ``NAME/last``.

:func:`train` runs named steps: :func:`build_data`, :func:`build_parts` (model, optimizer,
schedule), :func:`run_epoch`, :func:`validate`, :func:`choose_threshold`, :func:`measure` and
:func:`save_trained`, inside :func:`torch_settings`, which restores torch's global state
(threads, seed, deterministic algorithms) on exit. Each epoch logs one line with its loss,
validation IoU, elapsed time and ETA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR
from torch.utils.data import ConcatDataset, DataLoader

from data_prep.chips import merge_statistics
from data_prep.rasterize import IGNORE as IGNORE_LABEL
from solarmap.bands import BANDS
from solarmap.errors import CheckpointError, InputError, OutputExistsError, SolarmapError
from solarmap.geo import atomic_path, live_writer, make_folder, output_dir, write_json
from solarmap.indices import all_normalized_differences, index_values
from solarmap.model import ModelConfig, build_model, check_encoder, save_checkpoint
from solarmap.networks import PriorUnet, SpectralNet
from solarmap.ood import METADATA_KEY as OOD_STATS_KEY
from solarmap.progress import make_progress
from train.augment import Augment
from train.dataset import ChipDataset, read_chip_index, read_stats
from train.evaluate import PixelCounts, ProbabilityHistogram, roc_auc

log = logging.getLogger(__name__)

#: The chips of one split: of one folder, or of several concatenated.
Chips = ChipDataset | ConcatDataset

#: The band statistics a checkpoint keeps of its training pixels (``training_stats``; the
#: out-of-distribution check of predict compares a scene with them).
TRAINING_STATS_KEYS = ("bands", "mean", "std", "p02", "p98", "pixels")
#: The folder of a finished checkpoint that holds its last resumable state.
STATE_DIR = "last"
#: Files of a resumable state: the epoch record, the weights + optimizer + RNG, the best weights.
STATE_FILE = "state.json"
STATE_WEIGHTS = "state.safetensors"
BEST_WEIGHTS = "best.safetensors"


def resume_dir(out: str | Path) -> Path:
    """Where a run into ``out`` keeps its resumable state while it trains: the hidden sibling
    ``.NAME.resume``. It outlives an interrupted or killed run, so a rerun with ``resume`` finds
    it by name; when the run finishes it becomes ``out/last`` and is removed."""
    p = Path(out)
    return p.with_name(f".{p.name}.resume")


@dataclass(frozen=True)
class TrainConfig:
    """Training options; written into the checkpoint metadata."""

    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 10
    augment: Augment | None = field(default_factory=Augment)
    dice_weight: float = 1.0
    seed: int = 0
    max_minutes: float | None = None
    threads: int | None = None
    #: A spectral model on the single index that ranks the training pixels best (searched
    #: over every normalized difference), instead of ``model.indices``.
    search_index: bool = False

    def __post_init__(self) -> None:
        for name, value in (
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
            ("--patience", self.patience),
        ):
            if not _whole(value) or value < 1:
                raise InputError(f"{name} {value}: give a whole number >= 1")
        if not 0.0 < self.lr <= 1.0:  # also refuses NaN
            raise InputError(f"--lr {self.lr}: give a learning rate > 0 and <= 1 (e.g. 3e-3)")
        for label, amount in (
            ("weight decay", self.weight_decay),
            ("dice weight", self.dice_weight),
        ):
            if not 0.0 <= amount < math.inf:
                raise InputError(f"{label} {amount}: give a finite number >= 0")
        if self.max_minutes is not None and not 0.0 < self.max_minutes < math.inf:
            raise InputError(
                f"--max-minutes {self.max_minutes}: give a time budget > 0 minutes, or leave it "
                "out for none"
            )
        if not _whole(self.seed) or not 0 <= self.seed < 2**63:
            raise InputError(f"--seed {self.seed}: give a whole number from 0 to 2**63 - 1")
        if self.threads is not None and (not _whole(self.threads) or self.threads < 1):
            raise InputError(f"threads {self.threads}: give 1 or more, or None for torch's own")
        if self.augment is not None and not isinstance(self.augment, Augment):
            raise InputError(f"augment {self.augment!r}: give an Augment or None for none")
        if self.search_index and self.model.kind != "spectral":
            raise InputError("searching the best index is for a spectral model (--model index)")

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


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


def data_fingerprint(roots: Path | list[Path]) -> str:
    """SHA-256 over the prepared folders' chip indexes, statistics and configurations, in
    order (one folder: the hash of that folder alone)."""
    h = hashlib.sha256()
    for root in [roots] if isinstance(roots, Path) else roots:
        for name in ("chips.gpkg", "stats.json", "config.json"):
            p = root / name
            if p.exists():
                h.update(name.encode())
                h.update(p.read_bytes())
    return h.hexdigest()


@torch.inference_mode()
def score(
    model: nn.Module, ds: Chips, *, batch_size: int, threshold: float | None = None
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
    make_folder(folder)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    with atomic_path(folder / STATE_WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    write_json(folder / STATE_FILE, info)


def _load_state(folder: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    tensors = load_file(str(folder / STATE_WEIGHTS))
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
    return json.loads((folder / STATE_FILE).read_text())


# --------------------------------------------------------------------------------------------
# Torch's global state
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_settings(*, seed: int, threads: int | None = None) -> Iterator[None]:
    """Inside the block: torch's CPU generator seeded with ``seed``, deterministic algorithms
    on (warn only), and ``threads`` intra-op threads when given. On exit, also on error, the
    thread count, the deterministic-algorithms flags and the CPU generator's state are put back
    as they were. Training runs on the CPU, so no other generator is touched.
    """
    threads_before = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    rng = torch.get_rng_state()
    try:
        if threads:
            torch.set_num_threads(threads)
        torch.random.default_generator.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        torch.set_rng_state(rng)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


@dataclass
class TrainData:
    """The chips a run uses: the folders, merged normalisation statistics, the train and
    validation datasets (concatenated over folders) and the shared chip size."""

    roots: list[Path]
    stats: dict[str, Any]
    train: Chips
    val: Chips
    chip_size: int
    val_roots: list[Path] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The first training folder."""
        return self.roots[0]


def _parts(ds: Chips) -> list[ChipDataset]:
    """The folders' datasets of ``ds``."""
    return [cast(ChipDataset, d) for d in ds.datasets] if isinstance(ds, ConcatDataset) else [ds]


def _has_solar(ds: Chips) -> bool:
    parts = _parts(ds)
    return any((p.raw(i)[1] == 1).any() for p in parts for i in range(len(p)))


def _concat(parts: list[ChipDataset]) -> Chips:
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def read_training_stats(roots: list[Path]) -> dict[str, Any]:
    """The band statistics of one prepared folder, or those of several merged."""
    parts = [read_stats(r) for r in roots]
    return parts[0] if len(parts) == 1 else merge_statistics(parts)


def build_data(
    roots: Sequence[Path], cfg: TrainConfig, *, val_roots: Sequence[Path] = ()
) -> TrainData:
    """Open the train and validation chips of prepared folders.

    Validation uses every chip of ``val_roots`` when given (held-out regions), else the
    folders' validation splits; when those hold no solar pixel, the train split stands in for
    them (with a warning): early stopping and the threshold need solar pixels.

    Raises:
        InputError: without training chips, when the folders' chip sizes differ, when the
            chip size does not fit the model, or when held-out folders hold no solar pixel.
    """
    roots, val_roots = list(roots), list(val_roots)
    stats = read_training_stats(roots)
    trains = [
        ChipDataset(r, "train", augment=cfg.augment, stats=stats, seed=cfg.seed + k)
        for k, r in enumerate(roots)
    ]
    if not any(len(d) for d in trains):
        where = roots[0] if len(roots) == 1 else ", ".join(map(str, roots))
        raise InputError(f"{where}: no training chips; prepare more area or a smaller block size")
    if val_roots:
        vals = [ChipDataset(r, None, stats=stats) for r in val_roots]
    else:
        vals = [ChipDataset(r, "val", stats=stats) for r in roots]
    sizes = {str(d.root): d.chip_size for d in [*trains, *vals] if len(d)}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{r} {n}" for r, n in sizes.items())
        raise InputError(
            f"--chips folders cut chips of different sizes ({listed}); prepare them with one "
            "--chip-size"
        )
    val_ds = _concat(vals)
    if val_roots and not _has_solar(val_ds):
        raise InputError(
            f"--val-chips {', '.join(map(str, val_roots))}: no solar pixel to validate on; give "
            "a held-out region with solar farms"
        )
    if not val_roots and (len(val_ds) == 0 or not _has_solar(val_ds)):
        log.warning(
            "no solar pixel in the validation chips: early stopping and the threshold use the "
            "train split (prepare more area or a smaller --block-size for an honest choice)"
        )
        val_ds = _concat([ChipDataset(r, "train", stats=stats) for r in roots])
    chip_size = max(sizes.values())
    if chip_size % cfg.model.multiple:
        raise InputError(
            f"chip size {chip_size} is not a multiple of {cfg.model.multiple}; "
            "prepare with another --chip-size"
        )
    return TrainData(
        roots=roots,
        stats=stats,
        train=_concat([d for d in trains if len(d)]),
        val=val_ds,
        chip_size=chip_size,
        val_roots=val_roots,
    )


def test_split(data: TrainData) -> Chips:
    """The test splits of the training folders (empty when they have none)."""
    return _concat([ChipDataset(r, "test", stats=data.stats) for r in data.roots])


@dataclass
class TrainParts:
    """What an epoch changes: the model, its optimizer and the learning-rate schedule."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: CosineAnnealingLR


def build_parts(cfg: TrainConfig, stats: dict[str, Any]) -> TrainParts:
    """The U-Net (seeded random weights: uses torch's generator; its front layer, if any, with
    the normalisation ``stats``), AdamW and a cosine schedule over ``cfg.epochs``."""
    model = build_model(cfg.model, mean=stats["mean"], std=stats["std"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return TrainParts(model=model, opt=opt, sched=CosineAnnealingLR(opt, T_max=cfg.epochs))


def train_loader(ds: Chips, cfg: TrainConfig) -> DataLoader:
    """Shuffled batches, drawn with a generator of their own seeded with ``cfg.seed``."""
    gen = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=gen,
        drop_last=len(ds) > cfg.batch_size,
    )


@dataclass
class TrainRecord:
    """How far a run has come; what resuming restores. Epochs are counted from 0.

    ``run`` says what the state belongs to (:func:`run_identity`); a resumed run must match.
    """

    start_epoch: int = 0
    best: float = -1.0
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)

    def add_epoch(
        self, epoch: int, loss: float, val_iou: float, model: nn.Module, state_dir: Path
    ) -> None:
        """Record an epoch; keep (and write) the weights when validation IoU improved."""
        self.history.append({"epoch": epoch + 1, "loss": loss, "val_iou": val_iou})
        if val_iou > self.best:
            self.best, self.best_epoch = val_iou, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            make_folder(state_dir)
            with atomic_path(state_dir / BEST_WEIGHTS) as tmp:
                save_file(self.best_state, str(tmp))

    def save(self, state_dir: Path, parts: TrainParts, epoch: int) -> None:
        """Write the resumable state after ``epoch``."""
        info = {
            "epoch": epoch,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "scheduler": parts.sched.state_dict(),
            "run": self.run,
        }
        _save_state(state_dir, parts.model, parts.opt, info)

    @classmethod
    def resume(cls, state_dir: Path, parts: TrainParts) -> TrainRecord:
        """Restore weights, optimizer, schedule and RNG from ``state_dir`` (written by
        :meth:`save`); a fresh record when there is nothing to resume.

        Raises:
            CheckpointError: when the state does not load.
        """
        from safetensors import SafetensorError

        if not (state_dir / STATE_FILE).exists():
            return cls()
        try:
            info = _load_state(state_dir, parts.model, parts.opt)
            parts.sched.load_state_dict(info["scheduler"])
            record = cls(
                start_epoch=info["epoch"] + 1,
                best=info["best"],
                best_epoch=info["best_epoch"],
                history=info["history"],
            )
            if (state_dir / BEST_WEIGHTS).exists():
                record.best_state = load_file(str(state_dir / BEST_WEIGHTS))
        except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(
                f"{state_dir}: the state to resume does not load ({first}); pass --overwrite "
                "to start over"
            ) from err
        log.info(
            "resuming after epoch %d (best val IoU %.3f at epoch %d)",
            record.start_epoch,
            record.best,
            record.best_epoch + 1,
        )
        return record


def run_identity(cfg: TrainConfig, roots: list[Path]) -> dict[str, Any]:
    """What a resumable state belongs to: the architecture and the training (and held-out)
    data's fingerprint (plain JSON, as stored in the state)."""
    model = {k: v for k, v in cfg.model.__dict__.items() if k != "encoder_weights"}
    identity = {"model": model, "data_fingerprint": data_fingerprint(roots)}
    return json.loads(json.dumps(identity))


def _state_epoch(state_dir: Path) -> int | None:
    """The last finished epoch (from 1) recorded in ``state_dir``, if it can be read."""
    try:
        return int(json.loads((state_dir / STATE_FILE).read_text())["epoch"]) + 1
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def check_resumable(state_dir: Path, identity: dict[str, Any]) -> None:
    """Refuse, before any work, a state that cannot be resumed: unreadable, incomplete, or of
    another model or other chips (``identity``, see :func:`run_identity`).

    Raises:
        CheckpointError: when the state is unreadable or incomplete.
        InputError: when it belongs to another model or other chips.
    """
    path = state_dir / STATE_FILE
    fix = "pass --overwrite to start over"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        int(info["epoch"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path}: the state to resume is unreadable ({first}); {fix}"
        ) from err
    if not (state_dir / STATE_WEIGHTS).is_file():
        raise CheckpointError(f"{state_dir / STATE_WEIGHTS}: missing from the state; {fix}")
    run = info.get("run") or {}
    if "model" in run and run["model"] != identity["model"]:
        was = run["model"]
        raise InputError(
            f"{path}: the run to resume trained encoder {was.get('encoder')} with decoder "
            f"{','.join(map(str, was.get('decoder_channels', [])))}; give the same --encoder "
            f"and --decoder-channels, or {fix}"
        )
    if "data_fingerprint" in run and run["data_fingerprint"] != identity["data_fingerprint"]:
        raise InputError(
            f"{path}: the run to resume trained on other chips; give its --chips, or {fix}"
        )


def run_epoch(parts: TrainParts, loader: DataLoader, cfg: TrainConfig) -> tuple[float, int]:
    """One pass over the training batches, then one step of the schedule.

    Returns:
        ``(mean loss, images seen)``.
    """
    parts.model.train()
    losses = []
    seen = 0
    for x, y, v in loader:
        parts.opt.zero_grad(set_to_none=True)
        loss = masked_bce_dice(parts.model(x), y, v, dice_weight=cfg.dice_weight)
        loss.backward()
        parts.opt.step()
        losses.append(float(loss.detach()))
        seen += len(x)
    parts.sched.step()
    return float(np.mean(losses)), seen


def validate(model: nn.Module, ds: Chips, *, batch_size: int) -> float:
    """Validation IoU at the threshold that is best for it (the early-stopping score)."""
    hist, _ = score(model, ds, batch_size=batch_size)
    return hist.best(metric="iou")[1]["iou"]


class _Clock:
    """Elapsed time of a run and its ETA against ``cfg.epochs`` and ``cfg.max_minutes``."""

    def __init__(self, cfg: TrainConfig, start_epoch: int) -> None:
        self.cfg, self.start_epoch = cfg, start_epoch
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def eta(self, epoch: int, elapsed: float) -> tuple[float, bool]:
        """Seconds left after ``epoch`` at the mean epoch time so far, capped by the time
        budget; and whether the budget is what ends the run."""
        per_epoch = elapsed / (epoch + 1 - self.start_epoch)
        left = per_epoch * (self.cfg.epochs - epoch - 1)
        if self.cfg.max_minutes is not None:
            budget_left = max(0.0, self.cfg.max_minutes * 60 - elapsed)
            if budget_left < left:
                return budget_left, True
        return left, False


def _clock_time(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def log_epoch(epoch: int, loss: float, val_iou: float, clock: _Clock) -> float:
    """Log one line for a finished epoch; returns the elapsed seconds."""
    elapsed = clock.elapsed()
    eta, by_budget = clock.eta(epoch, elapsed)
    log.info(
        "epoch %d/%d: loss %.4f, val IoU %.4f, %s elapsed, ETA %s%s",
        epoch + 1, clock.cfg.epochs, loss, val_iou, _clock_time(elapsed), _clock_time(eta),
        " (time budget)" if by_budget else "",
    )  # fmt: skip
    return elapsed


def should_stop(epoch: int, record: TrainRecord, cfg: TrainConfig, elapsed: float) -> bool:
    """Early stopping (no validation gain for ``cfg.patience`` epochs) or the time budget."""
    if epoch - record.best_epoch >= cfg.patience:
        log.info("early stop at epoch %d: no val IoU gain for %d epochs", epoch + 1, cfg.patience)
        return True
    if cfg.max_minutes is not None and elapsed / 60 >= cfg.max_minutes:
        log.info("time budget of %.1f min reached at epoch %d", cfg.max_minutes, epoch + 1)
        return True
    return False


def fit(
    parts: TrainParts, data: TrainData, record: TrainRecord, cfg: TrainConfig, state_dir: Path
) -> tuple[int, int, float]:
    """Train epoch by epoch from ``record.start_epoch`` until ``cfg.epochs``, early stopping or
    the time budget; the state is written after every epoch.

    Returns:
        ``(last epoch run, images seen, seconds)``; the last epoch is
        ``record.start_epoch - 1`` when no epoch was left to run.
    """
    loader = train_loader(data.train, cfg)
    clock = _Clock(cfg, record.start_epoch)
    seen, epoch = 0, record.start_epoch - 1
    with make_progress() as progress:
        task = progress.add_task("training", total=cfg.epochs, completed=record.start_epoch)
        for epoch in range(record.start_epoch, cfg.epochs):
            loss, n = run_epoch(parts, loader, cfg)
            seen += n
            val_iou = validate(parts.model, data.val, batch_size=cfg.batch_size * 2)
            record.add_epoch(epoch, loss, val_iou, parts.model, state_dir)
            record.save(state_dir, parts, epoch)
            progress.update(task, advance=1, description=f"loss {loss:.3f} val IoU {val_iou:.3f}")
            elapsed = log_epoch(epoch, loss, val_iou, clock)
            if should_stop(epoch, record, cfg, elapsed):
                break
    return epoch, seen, clock.elapsed()


def choose_threshold(
    model: nn.Module, ds: Chips, *, batch_size: int, allow_zero: bool = False
) -> float:
    """The threshold that maximises IoU on ``ds``.

    When that is 0 (calling every pixel solar scores best, as for a weak ranking of chips
    that are mostly solar), a U-Net is refused; with ``allow_zero`` (a spectral baseline,
    which must always give a floor to compare with) the best threshold above 0 is taken, with
    a warning.

    Raises:
        InputError: when the best threshold is 0 and ``allow_zero`` is not set.
    """
    hist, _ = score(model, ds, batch_size=batch_size)
    threshold = hist.best_threshold(metric="iou")
    if threshold > 0.0:
        return threshold
    if not allow_zero:
        raise InputError(
            "the best validation threshold is 0: the model calls every pixel solar; train "
            "longer (--resume with more --epochs) or check the labels"
        )
    iou = hist.curve()["iou"]
    k = 1 + int(np.argmax(iou[1:]))
    log.warning(
        "calling every validation pixel solar scores best (IoU %.3f); the threshold is the "
        "best above 0 instead, %.3f (IoU %.3f): this model barely ranks these pixels",
        iou[0], hist.thresholds[k], iou[k],
    )  # fmt: skip
    return float(hist.thresholds[k])


def measure(
    model: nn.Module, ds: Chips, *, threshold: float, batch_size: int
) -> dict[str, float] | None:
    """Pixel metrics of the model on ``ds`` at ``threshold`` (None for an empty split)."""
    if not len(ds):
        return None
    _, counts = score(model, ds, batch_size=batch_size, threshold=threshold)
    return counts.metrics() if counts else None


def save_trained(
    out: Path,
    model: nn.Module,
    data: TrainData,
    cfg: TrainConfig,
    record: TrainRecord,
    *,
    threshold: float,
    metrics: dict[str, Any],
    seconds: float,
    model_config: ModelConfig | None = None,
) -> Path:
    """Write the checkpoint with its metadata (see :func:`solarmap.model.save_checkpoint`);
    ``model_config`` is the fitted model's when it differs from ``cfg.model`` (a searched
    spectral index)."""
    model_config = model_config or cfg.model
    chips = [str(r.resolve()) for r in data.roots]
    meta = {
        "bands": list(BANDS),
        "normalisation": {"mean": data.stats["mean"], "std": data.stats["std"]},
        "model": dataclasses.asdict(model_config),
        "chip_size": data.chip_size,
        "threshold": threshold,
        "metrics": {**metrics, "best_epoch": record.best_epoch + 1},
        "training": {**cfg.to_dict(), "history": record.history, "seconds": round(seconds, 1)},
        OOD_STATS_KEY: {k: data.stats[k] for k in TRAINING_STATS_KEYS if k in data.stats},
        "data_fingerprint": data_fingerprint(data.roots + data.val_roots),
        "chips": chips[0] if len(chips) == 1 else chips,
        "val_chips": [str(r.resolve()) for r in data.val_roots],
    }
    return save_checkpoint(out, model.eval(), meta)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _check_encoder_weights(weights: str | None) -> None:
    local = weights is not None and Path(weights).suffix == ".safetensors"
    if local and weights is not None and not Path(weights).is_file():
        raise InputError(
            f"--encoder-weights {weights}: file not found; give a local .safetensors file "
            "of encoder weights, or leave the option out"
        )


def _folders(chips: str | Path | Sequence[str | Path], what: str) -> list[Path]:
    roots = [Path(chips)] if isinstance(chips, str | Path) else [Path(c) for c in chips]
    seen = [str(r.resolve()) for r in roots]
    if len(set(seen)) != len(seen):
        raise InputError(f"{what}: a folder is given twice; give each prepared folder once")
    for r in roots:
        read_stats(r)  # a folder `solarmap prepare` wrote, with its statistics and chip index
        read_chip_index(r)
    return roots


def train(
    chips: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    val_chips: Sequence[str | Path] = (),
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train on one or several prepared folders and write a checkpoint folder.

    The checkpoint folder is built atomically (:func:`solarmap.geo.output_dir`): an interrupted,
    killed or failed run leaves nothing under ``out``. While it trains, the state after every
    epoch is kept beside ``out`` in :func:`resume_dir`; ``resume`` continues from there (an
    interrupted run) or from ``out/last`` (a finished checkpoint trained further, e.g. with more
    epochs). A finished checkpoint keeps its last state in ``out/last``. Options, the chip
    folders and the state to resume are checked before any work. ``val_chips`` are held-out
    prepared folders, used whole for early stopping and the threshold.

    Torch's global state (threads, seed, deterministic algorithms) is as it was afterwards.

    Raises:
        InputError: on an unknown encoder, chip folders without train chips or of different
            chip sizes, both ``resume`` and ``overwrite``, ``resume`` with nothing to resume,
            with the state of another model or other chips, or of a spectral model.
        CheckpointError: when the state to resume is unreadable.
        OutputExistsError: when ``out`` exists, or an interrupted run's state waits beside it,
            and neither ``resume`` nor ``overwrite`` is set.
    """
    cfg = config or TrainConfig()
    out = Path(out)
    pending = resume_dir(out)
    if resume and overwrite:
        raise InputError(
            "--resume and --overwrite: pass one (--resume continues the last run, --overwrite "
            "starts over)"
        )
    if resume and cfg.model.kind == "spectral":
        raise InputError("--resume: a spectral model is fitted in one pass; train without it")
    if cfg.model.kind == "unet":
        check_encoder(cfg.model.encoder, what="--encoder")
        _check_encoder_weights(cfg.model.encoder_weights)
    roots = _folders(chips, "--chips")
    val_roots = _folders(val_chips, "--val-chips") if val_chips else []
    both = {str(r.resolve()) for r in roots} & {str(r.resolve()) for r in val_roots}
    if both:
        raise InputError(
            f"--val-chips {sorted(both)[0]}: also a --chips folder; hold out a folder the model "
            "does not train on"
        )
    if (writer := live_writer(out)) is not None:
        raise OutputExistsError(
            f"{out}: another solarmap run (process {writer}) is training into it; wait for it "
            "to finish, or stop it, before training there again"
        )
    if not (resume or overwrite):
        if os.path.lexists(out):
            raise OutputExistsError(
                f"{out}: exists; pass --overwrite to replace it, --resume to train it further, "
                "or choose another --out"
            )
        if (pending / STATE_FILE).exists():
            raise OutputExistsError(
                f"{out}: an interrupted run left its state after epoch {_state_epoch(pending)} "
                f"in {pending}; pass --resume to continue it or --overwrite to start over"
            )
    identity = run_identity(cfg, roots + val_roots)
    source: Path | None = None
    if resume:
        source = pending if (pending / STATE_FILE).exists() else out / STATE_DIR
        if not (source / STATE_FILE).exists():
            raise InputError(
                f"--resume: nothing to resume for {out} (no interrupted run beside it, no "
                "finished checkpoint in it); train without --resume"
            )
        check_resumable(source, identity)
    with (
        torch_settings(seed=cfg.seed, threads=cfg.threads),
        output_dir(out, overwrite=overwrite or resume, inputs=roots + val_roots) as tmp,
    ):
        if cfg.model.kind == "spectral":
            return _train_spectral(tmp, out, roots, val_roots, cfg)
        if pending.exists() and (overwrite or not (pending / STATE_FILE).exists()):
            shutil.rmtree(pending)  # starting over, or what a run killed in its first epoch left
        if source is not None and source != pending:
            shutil.copytree(source, pending)  # a finished checkpoint: continue from a copy
        data = build_data(roots, cfg, val_roots=val_roots)
        parts = build_parts(cfg, data.stats)
        if cfg.model.prior and not resume:  # a resumed run loads the fitted prior with its state
            fit_prior(parts.model, data, cfg)
        record = TrainRecord.resume(pending, parts) if resume else TrainRecord()
        record.run = identity
        try:
            epoch, seen, seconds = fit(parts, data, record, cfg, pending)
            model, batch = parts.model, cfg.batch_size * 2
            if record.best_state is not None:
                model.load_state_dict(record.best_state)
            # a U-Net on a spectral prior may, like the prior alone, best call every pixel solar
            threshold = choose_threshold(
                model, data.val, batch_size=batch, allow_zero=bool(cfg.model.prior)
            )
            val = measure(model, data.val, threshold=threshold, batch_size=batch) or {}
            test = measure(model, test_split(data), threshold=threshold, batch_size=batch)
            save_trained(
                tmp, model, data, cfg, record,
                threshold=threshold, metrics={"val": val, "test": test}, seconds=seconds,
            )  # fmt: skip
            if pending.exists():
                shutil.copytree(pending, tmp / STATE_DIR)
        except BaseException as err:
            # an error's own line says what to do; an interrupt is told where its work waits
            if not isinstance(err, SolarmapError) and (done := _state_epoch(pending)):
                log.warning(
                    "the state after epoch %d is kept in %s: train again with --resume to "
                    "continue",
                    done, pending,
                )  # fmt: skip
            raise
    shutil.rmtree(pending, ignore_errors=True)
    images_per_s = seen / seconds if seconds > 0 else 0.0
    log.info(
        "trained %d epochs in %.0f s (%.1f images/s); best epoch %d, val IoU %.3f at %.2f",
        epoch + 1 - record.start_epoch, seconds, images_per_s, record.best_epoch + 1,
        val.get("iou", float("nan")), threshold,
    )  # fmt: skip
    return TrainResult(
        checkpoint=out,
        best_epoch=record.best_epoch + 1,
        epochs_run=epoch + 1,
        threshold=threshold,
        val=val,
        test=test,
        seconds=seconds,
        images_per_s=images_per_s,
    )


# --------------------------------------------------------------------------------------------
# Spectral baselines
# --------------------------------------------------------------------------------------------

#: Training pixels a spectral model is fitted on at most (a seeded sample of the valid ones).
SPECTRAL_PIXELS = 400_000
#: L2 penalty of the spectral logistic regression (on standardised indices).
SPECTRAL_L2 = 1e-4


def pixel_sample(ds: Chips, *, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance ``float32[n, 10]`` and truth ``uint8[n]`` (0/1) of at most ``limit`` valid
    pixels of ``ds`` (no augmentation), a seeded uniform sample."""
    xs, ys = [], []
    for p in _parts(ds):
        for i in range(len(p)):
            x, y = p.raw(i)
            keep = (y != IGNORE_LABEL) & np.isfinite(x).all(axis=0)
            xs.append(x[:, keep].T)
            ys.append(y[keep])
    x_all = np.concatenate(xs) if xs else np.zeros((0, len(BANDS)), np.float32)
    y_all = np.concatenate(ys) if ys else np.zeros(0, np.uint8)
    if len(y_all) > limit:
        pick = np.random.default_rng(seed).choice(len(y_all), limit, replace=False)
        x_all, y_all = x_all[pick], y_all[pick]
    return x_all.astype(np.float32), y_all


def pixel_indices(reflectance: np.ndarray, names: Sequence[str]) -> torch.Tensor:
    """``Tensor[K, n]`` indices ``names`` of pixels' reflectance ``float32[n, 10]``."""
    return index_values(torch.from_numpy(reflectance.T[None, :, :, None]), names)[0, :, :, 0]


def best_index(reflectance: np.ndarray, truth: np.ndarray) -> tuple[str, float]:
    """The normalized difference that ranks ``truth`` best, by ROC-AUC, oriented so that higher
    is more solar (``nd:A:B`` or ``nd:B:A``), and its AUC."""
    names = all_normalized_differences()
    aucs = np.array([roc_auc(v, truth) for v in pixel_indices(reflectance, names).numpy()])
    k = int(np.nanargmax(np.abs(aucs - 0.5)))
    _, a, b = names[k].split(":")
    return (names[k], float(aucs[k])) if aucs[k] >= 0.5 else (f"nd:{b}:{a}", 1 - float(aucs[k]))


def fit_spectral(model: SpectralNet, reflectance: np.ndarray, truth: np.ndarray) -> None:
    """Fit the spectral model's logistic regression (its 1x1 ``head``) on pixels, in place:
    L-BFGS on the class-balanced binary cross-entropy of standardised indices, folded back
    into the head.

    Raises:
        InputError: without solar and background pixels to fit on.
    """
    if not (truth == 1).any() or not (truth == 0).any():
        raise InputError("the training chips need solar and background pixels for a spectral model")
    f = pixel_indices(reflectance, model.band_features.indices).T.double()  # [n, K]
    mu, sd = f.mean(0), f.std(0).clamp_min(1e-6)
    z, t = (f - mu) / sd, torch.from_numpy((truth == 1).astype(np.float64))
    # Balanced classes: solar pixels are a few percent of a region, and an unweighted fit puts
    # nearly every probability under the first threshold bin (0.001), where no threshold
    # can be chosen. The weights move the intercept, not the ranking.
    pos_weight = torch.tensor(float((truth == 0).sum()) / float((truth == 1).sum()))
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z @ w + b, t, pos_weight=pos_weight)
        loss = loss + SPECTRAL_L2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    weight = (w / sd).float().reshape(model.head.weight.shape)
    bias = (b - (w * mu / sd).sum()).float().reshape(1)
    model.head.load_state_dict({"weight": weight.detach(), "bias": bias.detach()})


def fit_prior(model: nn.Module, data: TrainData, cfg: TrainConfig) -> None:
    """Fit the spectral prior of a :class:`~solarmap.networks.PriorUnet` on the training
    pixels (as a spectral model is fitted, :func:`fit_spectral`), in place, before the U-Net
    trains on top of it."""
    t0 = time.perf_counter()
    x, y = pixel_sample(data.train, limit=SPECTRAL_PIXELS, seed=cfg.seed)
    fit_spectral(cast(PriorUnet, model).spectral_prior, x, y)
    log.info(
        "fitted the spectral prior on %s in %.1f s",
        ", ".join(cfg.model.prior), time.perf_counter() - t0,
    )  # fmt: skip


def _train_spectral(
    tmp: Path, out: Path, roots: list[Path], val_roots: list[Path], cfg: TrainConfig
) -> TrainResult:
    """Fit a spectral model (see :func:`fit_spectral`), choose its threshold on validation and
    write the checkpoint into ``tmp`` (the folder :func:`train` builds ``out`` in)."""
    t0 = time.perf_counter()
    plain = dataclasses.replace(cfg, augment=None)
    data = build_data(roots, plain, val_roots=val_roots)
    x, y = pixel_sample(data.train, limit=SPECTRAL_PIXELS, seed=cfg.seed)
    model_cfg = cfg.model
    if cfg.search_index:
        name, auc = best_index(x, y)
        log.info("best single index on the training pixels: %s (ROC-AUC %.3f)", name, auc)
        model_cfg = dataclasses.replace(cfg.model, indices=(name,))
    model = build_model(model_cfg, mean=data.stats["mean"], std=data.stats["std"])
    fit_spectral(cast(SpectralNet, model), x, y)
    batch = cfg.batch_size * 2
    threshold = choose_threshold(model, data.val, batch_size=batch, allow_zero=True)
    val = measure(model, data.val, threshold=threshold, batch_size=batch) or {}
    test = measure(model, test_split(data), threshold=threshold, batch_size=batch)
    seconds = time.perf_counter() - t0
    record = TrainRecord(best_epoch=0)
    save_trained(
        tmp, model, data, cfg, record, threshold=threshold,
        metrics={"val": val, "test": test}, seconds=seconds, model_config=model_cfg,
    )  # fmt: skip
    log.info(
        "fitted a spectral model on %s in %.1f s; val IoU %.3f at %.2f",
        ", ".join(model_cfg.indices), seconds, val.get("iou", float("nan")), threshold,
    )  # fmt: skip
    return TrainResult(
        checkpoint=out, best_epoch=1, epochs_run=1, threshold=threshold, val=val, test=test,
        seconds=seconds, images_per_s=0.0,
    )  # fmt: skip
