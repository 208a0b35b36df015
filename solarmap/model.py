"""The U-Net and its checkpoints.

A checkpoint is one ``model.safetensors`` file whose safetensors metadata carries the JSON
metadata (bands, normalisation, model config, chip size, threshold, metrics, training-data
fingerprint, package version), with a readable copy in ``checkpoint.json`` beside it. Loading
never unpickles: files that hold a pickle (``torch.save`` output) are refused.

Also the one check of a decision threshold (:func:`check_threshold`), which checkpoints,
prediction and evaluation share.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import solarmap
from solarmap.bands import BANDS
from solarmap.errors import CheckpointError, InputError, SolarmapError
from solarmap.geo import atomic_path, write_json

if TYPE_CHECKING:  # torch is imported where it is used: the threshold check and the model
    import torch  # config are cheap to import (`solarmap evaluate` needs no torch)
    from torch import nn

log = logging.getLogger(__name__)

WEIGHTS_FILE: Final = "model.safetensors"
META_FILE: Final = "checkpoint.json"
FORMAT_VERSION: Final = 1


def check_threshold(
    value: Any, *, what: str = "threshold", error: type[SolarmapError] = InputError
) -> float:
    """A decision threshold as a float: a probability strictly between 0 and 1.

    A pixel is solar when its probability is ``>=`` the threshold, so 0 would call every pixel
    solar and 1 (nearly) none; both, NaN and non-numbers are refused.

    Args:
        value: the threshold.
        what: how to name it in the message (e.g. ``"<file>: threshold"``).
        error: the error class to raise (:class:`~solarmap.errors.InputError` for options,
            :class:`~solarmap.errors.CheckpointError` for a checkpoint's metadata).

    Raises:
        ``error``: unless ``0 < value < 1``.
    """
    try:
        threshold = float(value)
    except (TypeError, ValueError) as err:
        raise error(f"{what} {value!r} is not a number; give a probability such as 0.5") from err
    if not 0.0 < threshold < 1.0:  # also refuses NaN
        raise error(
            f"{what} {value!r} is not a probability strictly between 0 and 1; give e.g. 0.5"
        )
    return threshold


@dataclass(frozen=True)
class ModelConfig:
    """U-Net architecture (segmentation-models-pytorch ``Unet``).

    The default encoder was chosen by measurement on a 2-core CPU (``benchmarks/``): timm's
    MobileNetV3-small with a slim decoder trains several times faster than resnet18 at the same
    quality on the demo region.
    """

    encoder: str = "tu-mobilenetv3_small_100"
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (64, 32, 16, 16, 8)
    encoder_weights: str | None = None
    in_channels: int = len(BANDS)
    classes: int = 1
    #: BatchNorm momentum for every BN layer. smp's EfficientNet encoders ship with 0.01, which
    #: leaves running statistics far from the data after short training (eval mode breaks).
    bn_momentum: float | None = 0.1

    def __post_init__(self) -> None:
        if len(self.decoder_channels) != self.encoder_depth:
            raise InputError(
                f"decoder has {len(self.decoder_channels)} widths for encoder depth "
                f"{self.encoder_depth}; give one width per level"
            )
        if self.in_channels < 1 or self.classes != 1:
            raise InputError("the solar U-Net takes >= 1 input band and predicts one class")

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return int(2**self.encoder_depth)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Rebuild from :func:`dataclasses.asdict` output (lists become tuples)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"unknown model config keys {sorted(unknown)}")
        kw = dict(d)
        kw["decoder_channels"] = tuple(kw.get("decoder_channels", cls.decoder_channels))
        return cls(**kw)


def build_model(config: ModelConfig | None = None) -> nn.Module:
    """Build the U-Net.

    ``encoder_weights`` may be ``None`` (random init, the default: nothing is downloaded),
    a name smp knows (``"imagenet"``: downloaded by smp/timm, needs network), or a path to a
    local ``.safetensors`` file holding encoder weights.

    Raises:
        InputError: on an unknown encoder or weights that cannot be had.
    """
    import segmentation_models_pytorch as smp
    from torch import nn

    cfg = config or ModelConfig()
    weights = cfg.encoder_weights
    local = weights is not None and Path(weights).suffix == ".safetensors"
    try:
        model = smp.Unet(
            encoder_name=cfg.encoder,
            encoder_depth=cfg.encoder_depth,
            encoder_weights=None if local else weights,
            decoder_channels=cfg.decoder_channels,
            in_channels=cfg.in_channels,
            classes=cfg.classes,
        )
    except (KeyError, ValueError, RuntimeError) as err:
        raise InputError(f"cannot build U-Net with encoder {cfg.encoder!r}: {err}") from err
    except OSError as err:  # weights download failed (offline)
        raise InputError(
            f"encoder weights {weights!r} could not be fetched ({err}); "
            "train without them or give a local .safetensors file"
        ) from err
    if local and weights is not None:
        from safetensors.torch import load_file

        path = Path(weights)
        if not path.exists():
            raise InputError(f"{path}: encoder weights file not found")
        state = load_file(path)
        missing, unexpected = model.encoder.load_state_dict(state, strict=False)
        log.info(
            "loaded encoder weights from %s (%d missing, %d unexpected keys)",
            path,
            len(missing),
            len(unexpected),
        )
    if cfg.bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = cfg.bn_momentum
    return model


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model in eval mode and its metadata."""

    model: nn.Module
    config: ModelConfig
    bands: tuple[str, ...]
    mean: list[float]
    std: list[float]
    threshold: float
    chip_size: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def check_bands(self, bands: tuple[str, ...] | list[str], *, source: str = "scene") -> None:
        """Raise :class:`CheckpointError` unless ``bands`` equal the checkpoint's, in order."""
        if tuple(bands) != self.bands:
            raise CheckpointError(
                f"{source} bands {', '.join(bands)} differ from the checkpoint's "
                f"{', '.join(self.bands)}; give a scene with the same bands in the same order"
            )

    def zero_reflectance(self) -> torch.Tensor:
        """``Tensor[B]``: reflectance 0 in normalised units, ``−mean/std`` per band."""
        import torch

        return -torch.tensor(self.mean) / torch.tensor(self.std)

    def freeze(self) -> nn.Module:
        """The model in eval mode with its weights out of autograd (attribution needs input
        gradients only); returns the model."""
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        return self.model

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[N, B, H, W]`` reflectance → normalised model input (NaN → 0 after scaling)."""
        import torch

        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)[None, :, None, None]
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)[None, :, None, None]
        return torch.nan_to_num((x - mean) / std, nan=0.0)


def save_checkpoint(path: str | Path, model: nn.Module, metadata: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` (weights + metadata) and ``checkpoint.json`` into ``path``.

    ``metadata`` must hold ``bands``, ``normalisation`` (``mean``, ``std``), ``model`` (a
    :class:`ModelConfig` as dict), ``chip_size`` and ``threshold``; anything else is kept.

    Raises:
        InputError: if a required key is missing or the threshold is not in (0, 1).
    """
    from safetensors.torch import save_file

    required = {"bands", "normalisation", "model", "chip_size", "threshold"}
    missing = required - set(metadata)
    if missing:
        raise InputError(f"checkpoint metadata lacks {sorted(missing)}")
    check_threshold(metadata["threshold"], what="checkpoint threshold")
    meta = {
        "format_version": FORMAT_VERSION,
        "solarmap_version": solarmap.__version__,
        **metadata,
    }
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"solarmap": json.dumps(meta)})
    write_json(folder / META_FILE, meta)
    return folder


def random_checkpoint(
    path: str | Path,
    config: ModelConfig | None = None,
    *,
    seed: int = 0,
    chip_size: int = 256,
    threshold: float = 0.5,
    mean: float = 0.15,
    std: float = 0.1,
) -> Path:
    """Save an untrained checkpoint: the U-Net with seeded random weights, for tests and
    benchmarks (its predictions are meaningless; its cost is that of a trained one).

    Torch's global random state is left as it was.

    Args:
        path: checkpoint folder to write.
        config: the architecture (default :class:`ModelConfig`).
        seed: seed of the weights; the same seed gives the same weights.
        chip_size: chip size recorded in the metadata.
        threshold: decision threshold recorded in the metadata.
        mean: normalisation mean of every band (reflectance 0-1).
        std: normalisation standard deviation of every band.

    Returns:
        ``path``.

    Raises:
        InputError: if the config does not take the contract bands, or ``threshold`` is not
            in (0, 1).
    """
    import torch

    cfg = config or ModelConfig()
    if cfg.in_channels != len(BANDS):
        raise InputError(
            f"a checkpoint takes the {len(BANDS)} contract bands, not {cfg.in_channels}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        model = build_model(cfg).eval()
    meta = {
        "bands": list(BANDS),
        "normalisation": {"mean": [mean] * len(BANDS), "std": [std] * len(BANDS)},
        "model": dataclasses.asdict(cfg),
        "chip_size": chip_size,
        "threshold": threshold,
    }
    return save_checkpoint(path, model, meta)


def _weights_path(path: Path) -> Path:
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(
            f"{path}: checkpoint not found; give the folder `solarmap train` wrote"
        )
    return path


def _check_not_pickle(path: Path) -> None:
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9:
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and n <= path.stat().st_size:
            return  # a safetensors header: 8-byte length, then JSON
    is_zip = head.startswith(b"PK\x03\x04")  # torch.save's zip container
    is_pickle = head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5  # PROTO opcode
    if is_zip or is_pickle:
        raise CheckpointError(
            f"{path}: holds a pickle (torch.save) payload; solarmap never unpickles — "
            "save the weights with safetensors"
        )
    raise CheckpointError(f"{path}: not a safetensors file (corrupt or truncated)")


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint folder (or its ``model.safetensors``) without unpickling anything.

    Raises:
        CheckpointError: when missing, a pickle, corrupt, truncated or inconsistent (a
            threshold that is not a probability strictly between 0 and 1 included).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = _weights_path(Path(path))
    _check_not_pickle(weights)
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get("solarmap")
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: corrupt or truncated checkpoint ({err})") from err
    if raw_meta is None:
        raise CheckpointError(f"{weights}: no solarmap metadata; not a solarmap checkpoint")
    try:
        meta = json.loads(raw_meta)
        config = ModelConfig.from_dict(meta["model"])
        bands = tuple(meta["bands"])
        mean = [float(v) for v in meta["normalisation"]["mean"]]
        std = [float(v) for v in meta["normalisation"]["std"]]
        raw_threshold = meta["threshold"]
        chip_size = int(meta["chip_size"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{weights}: metadata is incomplete ({err})") from err
    threshold = check_threshold(raw_threshold, what=f"{weights}: threshold", error=CheckpointError)
    if len(mean) != len(bands) or len(std) != len(bands) or min(std) <= 0:
        raise CheckpointError(f"{weights}: normalisation does not match its {len(bands)} bands")
    model = build_model(dataclasses.replace(config, encoder_weights=None))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{weights}: weights do not fit the model config ({first})") from err
    model.to(device).eval()
    return Checkpoint(
        model=model,
        config=config,
        bands=bands,
        mean=mean,
        std=std,
        threshold=threshold,
        chip_size=chip_size,
        metadata={**meta, "path": str(weights.parent.resolve())},
    )
