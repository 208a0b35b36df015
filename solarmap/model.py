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
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast, get_args, overload

import numpy as np

import solarmap
from solarmap.bands import BANDS
from solarmap.errors import CheckpointError, InputError, SolarmapError, first_line
from solarmap.geo import atomic_path, make_folder, write_json
from solarmap.indices import BandNorm, check_indices
from solarmap.ood import METADATA_KEY as OOD_STATS_KEY

if TYPE_CHECKING:  # torch is imported where it is used: the threshold check and the model
    import torch  # config are cheap to import (`solarmap evaluate` needs no torch)
    from torch import nn

log = logging.getLogger(__name__)

#: The general model shipped in the package, used by `solarmap predict` and `explain` when no
#: checkpoint is given; its model card (``MODEL_CARD.md``) lies beside the weights.
SHIPPED_MODEL: Final = Path(__file__).resolve().parent / "models" / "general"
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


#: Model kinds: the U-Net, or a spectral baseline (a per-pixel logistic regression on spectral
#: indices, :mod:`solarmap.indices`), the floor any U-Net must beat where it was not trained.
ModelKind = Literal["unet", "spectral"]


@dataclass(frozen=True)
class ModelConfig:
    """A solarmap model: a U-Net (segmentation-models-pytorch ``Unet``) or a spectral baseline.

    The default encoder was chosen by measurement on a 2-core CPU (``benchmarks/``): timm's
    MobileNetV3-small with a slim decoder trains several times faster than resnet18 at the same
    quality on the demo region.

    ``norm`` and ``indices`` choose the network's input channels (:mod:`solarmap.indices`):
    the bands as normalised with the training statistics (``dataset``), standardised per input
    window (``chip``) or left out (``none``), plus any spectral indices. Every model takes the
    same input, the ``in_channels`` contract bands normalised with the checkpoint's statistics.
    A spectral model uses ``indices`` only; its encoder fields are unused.
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
    kind: ModelKind = "unet"
    norm: BandNorm = "dataset"
    indices: tuple[str, ...] = ()
    #: Indices of a spectral prior under the U-Net (:class:`~solarmap.networks.PriorUnet`):
    #: a logistic regression on them is fitted first and frozen, the U-Net adds its logit.
    prior: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in get_args(ModelKind):
            raise InputError(f"model kind {self.kind!r}: choose {', '.join(get_args(ModelKind))}")
        if self.norm not in get_args(BandNorm):
            raise InputError(
                f"band normalisation {self.norm!r}: choose {', '.join(get_args(BandNorm))}"
            )
        if not isinstance(self.indices, tuple):
            raise InputError(f"indices {self.indices!r} are not a list of index names")
        if self.indices:
            check_indices(self.indices)
        if not isinstance(self.prior, tuple):
            raise InputError(f"prior {self.prior!r} is not a list of index names")
        if self.prior:
            check_indices(self.prior)
            if self.kind != "unet":
                raise InputError("a spectral prior goes under a U-Net (--model unet)")
        if self.kind == "spectral":
            if not self.indices:
                raise InputError("a spectral model needs at least one index")
            object.__setattr__(self, "norm", "none")  # it sees its indices only
        elif self.norm == "none" and not self.indices:
            raise InputError("band normalisation none leaves the U-Net no input; add --indices")
        if not isinstance(self.encoder, str) or not self.encoder:
            raise InputError(f"encoder {self.encoder!r} is not a name; use e.g. {ENCODER_EXAMPLE}")
        if not _is_int(self.encoder_depth) or not 1 <= self.encoder_depth <= 5:
            raise InputError(
                f"encoder depth {self.encoder_depth!r} is not 1 to 5; give 1 to 5 decoder widths"
            )
        if not all(_is_int(w) and w >= 1 for w in self.decoder_channels):
            raise InputError(
                f"decoder widths {', '.join(map(str, self.decoder_channels))} must be whole "
                "numbers >= 1; use e.g. 64,32,16,16,8"
            )
        if len(self.decoder_channels) != self.encoder_depth:
            raise InputError(
                f"decoder has {len(self.decoder_channels)} widths for encoder depth "
                f"{self.encoder_depth}; give one width per level"
            )
        if not _is_int(self.in_channels) or self.in_channels < 1 or self.classes != 1:
            raise InputError("the solar U-Net takes >= 1 input band and predicts one class")

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 1 if self.kind == "spectral" else int(2**self.encoder_depth)

    @property
    def net_channels(self) -> int:
        """Channels the network's first layer takes (bands as chosen by ``norm``, indices)."""
        if self.kind == "spectral":
            return len(self.indices)
        return (0 if self.norm == "none" else self.in_channels) + len(self.indices)

    @property
    def plain(self) -> bool:
        """A bare smp U-Net on the normalised bands: no front layer (the original layout)."""
        bare_input = self.norm == "dataset" and not self.indices
        return self.kind == "unet" and bare_input and not self.prior

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Rebuild from :func:`dataclasses.asdict` output (lists become tuples)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"unknown model config keys {sorted(unknown)}")
        kw = dict(d)
        channels = kw.get("decoder_channels", cls.decoder_channels)
        if not isinstance(channels, list | tuple):
            raise CheckpointError(f"decoder_channels {channels!r} is not a list of widths")
        kw["decoder_channels"] = tuple(channels)
        indices = kw.get("indices", ())
        if not isinstance(indices, list | tuple):
            raise CheckpointError(f"indices {indices!r} is not a list of index names")
        kw["indices"] = tuple(indices)
        prior = kw.get("prior", ())
        if not isinstance(prior, list | tuple):
            raise CheckpointError(f"prior {prior!r} is not a list of index names")
        kw["prior"] = tuple(prior)
        return cls(**kw)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: An encoder name to suggest in messages (the default).
ENCODER_EXAMPLE: Final = "tu-mobilenetv3_small_100"


def check_encoder(name: str, *, what: str = "encoder") -> str:
    """``name`` if segmentation-models-pytorch can build an encoder of that name: one of its
    own (``resnet18``...) or a timm model as ``tu-<timm name>``.

    Args:
        name: the encoder name.
        what: how to name it in the message (``"--encoder"``, ``"<file>: encoder"``).

    Raises:
        InputError: for any other name.
    """
    import timm
    from segmentation_models_pytorch.encoders import get_encoder_names

    known = name in get_encoder_names() or (
        name.startswith("tu-") and timm.is_model(name.removeprefix("tu-"))
    )
    if not known:
        raise InputError(
            f"{what} {name!r} is not an encoder segmentation-models-pytorch knows; use e.g. "
            f"{ENCODER_EXAMPLE}, resnet18 or tu-<timm model>"
        )
    return name


def build_model(
    config: ModelConfig | None = None,
    *,
    mean: list[float] | None = None,
    std: list[float] | None = None,
) -> nn.Module:
    """Build the model of ``config``: a U-Net, or the spectral baseline.

    ``encoder_weights`` may be ``None`` (random init, the default: nothing is downloaded),
    a name smp knows (``"imagenet"``: downloaded by smp/timm, needs network), or a path to a
    local ``.safetensors`` file holding encoder weights.

    ``mean`` and ``std`` are the per-band input normalisation (reflectance 0-1, the checkpoint's
    ``normalisation``); a model with a front layer (:mod:`solarmap.networks`) uses them to
    recover reflectance for its indices and per-chip standardisation. Without them the input
    is taken as reflectance.

    Raises:
        InputError: on an unknown encoder or weights that cannot be had.
    """
    from solarmap.networks import BandFeatures, PriorUnet, SpectralNet, attach_front

    cfg = config or ModelConfig()
    mean = list(mean) if mean is not None else [0.0] * cfg.in_channels
    std = list(std) if std is not None else [1.0] * cfg.in_channels
    if cfg.kind == "spectral":
        return SpectralNet(BandFeatures(mean, std, norm="none", indices=cfg.indices))
    if cfg.prior:
        unet = cast(PriorUnet, _build_unet(cfg, cls=PriorUnet))
        front = None
        if cfg.norm != "dataset" or cfg.indices:
            front = BandFeatures(mean, std, norm=cfg.norm, indices=cfg.indices)
        unet.set_prior(SpectralNet(BandFeatures(mean, std, norm="none", indices=cfg.prior)), front)
        return unet
    model = _build_unet(cfg)
    if not cfg.plain:
        attach_front(model, BandFeatures(mean, std, norm=cfg.norm, indices=cfg.indices))
    return model


def _build_unet(cfg: ModelConfig, *, cls: type[nn.Module] | None = None) -> nn.Module:
    import segmentation_models_pytorch as smp
    from torch import nn

    weights = cfg.encoder_weights
    local = weights is not None and Path(weights).suffix == ".safetensors"
    try:
        model = cast(smp.Unet, cls or smp.Unet)(
            encoder_name=cfg.encoder,
            encoder_depth=cfg.encoder_depth,
            encoder_weights=None if local else weights,
            decoder_channels=cfg.decoder_channels,
            in_channels=cfg.net_channels,
            classes=cfg.classes,
        )
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        first = str(err).strip("\"'").splitlines()[0][:200] if str(err) else type(err).__name__
        raise InputError(f"cannot build U-Net with encoder {cfg.encoder!r}: {first}") from err
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


class Deferred:
    """A model not built yet: :func:`load_checkpoint` with ``defer_model`` leaves one, and the
    first read of :attr:`Checkpoint.model` builds it (and runs the weight checks)."""

    def __init__(self, build: Callable[[], nn.Module]) -> None:
        self.build = build


class _ModelField:
    """:attr:`Checkpoint.model`: a module, or a :class:`Deferred` built on first read (so a
    prediction that runs a cached ONNX graph never imports torch)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    @overload
    def __get__(self, obj: None, objtype: Any = None) -> _ModelField: ...
    @overload
    def __get__(self, obj: object, objtype: Any = None) -> nn.Module: ...
    def __get__(self, obj: object | None, objtype: Any = None) -> nn.Module | _ModelField:
        if obj is None:
            raise AttributeError("model has no default")  # a required field of the dataclass
        value = obj.__dict__[self.slot]
        if isinstance(value, Deferred):
            value = value.build()
            obj.__dict__[self.slot] = value
        return cast("nn.Module", value)

    def __set__(self, obj: object, value: nn.Module | Deferred) -> None:
        obj.__dict__[self.slot] = value


@dataclass(kw_only=True)
class Checkpoint:
    """A loaded checkpoint: the model in eval mode and its metadata.

    ``weights`` is the ``model.safetensors`` it was read from (None for one made in memory);
    ``model`` may be built on first use (see :class:`Deferred`).
    """

    model: _ModelField = _ModelField()
    config: ModelConfig
    bands: tuple[str, ...]
    mean: list[float]
    std: list[float]
    threshold: float
    chip_size: int
    metadata: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None

    @property
    def model_built(self) -> bool:
        """Whether :attr:`model` exists yet (reading it builds a deferred one)."""
        return not isinstance(self.__dict__.get("_model"), Deferred)

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

    def normalise_array(self, x: np.ndarray) -> np.ndarray:
        """:meth:`normalise` for a float32 array ``[N, B, H, W]``, without torch."""
        mean = np.asarray(self.mean, dtype=np.float32)[None, :, None, None]
        std = np.asarray(self.std, dtype=np.float32)[None, :, None, None]
        return np.nan_to_num((x.astype(np.float32, copy=False) - mean) / std, nan=0.0)


def shipped_checkpoint() -> Path:
    """The folder of the shipped general model (:data:`SHIPPED_MODEL`).

    Raises:
        CheckpointError: when this installation does not hold it.
    """
    if not (SHIPPED_MODEL / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"{SHIPPED_MODEL}: this installation ships no model; give --checkpoint (a folder "
            "`solarmap train` wrote)"
        )
    return SHIPPED_MODEL


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
    folder = make_folder(path)
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
        model = build_model(cfg, mean=[mean] * len(BANDS), std=[std] * len(BANDS)).eval()
    meta = {
        "bands": list(BANDS),
        "normalisation": {"mean": [mean] * len(BANDS), "std": [std] * len(BANDS)},
        "model": dataclasses.asdict(cfg),
        "chip_size": chip_size,
        "threshold": threshold,
        # What the normalisation stands for: training pixels of that mean and std per band.
        OOD_STATS_KEY: {
            "bands": list(BANDS),
            "mean": [mean] * len(BANDS),
            "std": [std] * len(BANDS),
            "p02": [round(mean - 2 * std, 6)] * len(BANDS),
            "p98": [round(mean + 2 * std, 6)] * len(BANDS),
            "pixels": 0,
        },
    }
    return save_checkpoint(path, model, meta)


#: Limits on a checkpoint's metadata, checked before it is parsed: the real metadata is a few
#: kilobytes nesting 4 levels deep, so anything far beyond is not a solarmap checkpoint (and
#: JSON nested 200,000 levels deep would exhaust the parser's stack).
MAX_METADATA_BYTES: Final = 1024**2
MAX_METADATA_DEPTH: Final = 32
#: The most a safetensors header (tensor index + metadata) of a solarmap checkpoint may take.
MAX_HEADER_BYTES: Final = 16 * 1024**2
#: The metadata keys a checkpoint must hold.
REQUIRED_KEYS: Final = ("bands", "normalisation", "model", "chip_size", "threshold")

_FIX = "retrain, or give the folder `solarmap train` wrote"


def _weights_path(path: Path) -> Path:
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(
            f"{path}: checkpoint not found; give the folder `solarmap train` wrote"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file; {_FIX}")
    return path


def _check_not_pickle(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror}); {_FIX}") from err
    if len(head) == 9:
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and n <= path.stat().st_size:
            if n > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f"{path}: safetensors header of {n:,} bytes, more than the "
                    f"{MAX_HEADER_BYTES:,} a solarmap checkpoint takes; {_FIX}"
                )
            return  # a safetensors header: 8-byte length, then JSON
    is_zip = head.startswith(b"PK\x03\x04")  # torch.save's zip container
    is_pickle = head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5  # PROTO opcode
    if is_zip or is_pickle:
        raise CheckpointError(
            f"{path}: holds a pickle (torch.save) payload; solarmap never unpickles — "
            "save the weights with safetensors"
        )
    raise CheckpointError(f"{path}: not a safetensors file (corrupt or truncated)")


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _nesting(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets in strings aside)."""
    import numpy as np

    body = np.frombuffer(_JSON_STRING.sub('""', text).encode(), dtype=np.uint8)
    step = np.isin(body, (ord("["), ord("{"))).astype(np.int64)
    step -= np.isin(body, (ord("]"), ord("}")))
    return int(step.cumsum().max(initial=0))


def parse_metadata(text: str, *, source: str | Path, fix: str = _FIX) -> dict[str, Any]:
    """Checkpoint metadata from its JSON text, within :data:`MAX_METADATA_BYTES` and
    :data:`MAX_METADATA_DEPTH` (checked before parsing).

    Raises:
        CheckpointError: naming ``source`` when the text is too large, nests too deep, is not
            JSON or not a JSON object.
    """
    size = len(text.encode())
    if size > MAX_METADATA_BYTES:
        raise CheckpointError(
            f"{source}: metadata of {size:,} bytes, more than the {MAX_METADATA_BYTES:,} a "
            f"solarmap checkpoint holds; {fix}"
        )
    depth = _nesting(text)
    if depth > MAX_METADATA_DEPTH:
        raise CheckpointError(
            f"{source}: metadata nests {depth:,} levels deep, more than the "
            f"{MAX_METADATA_DEPTH} a solarmap checkpoint takes; {fix}"
        )
    try:
        meta = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"{source}: metadata is not JSON ({err}); {fix}") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: metadata is not a JSON object; {fix}")
    return meta


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _check_readable_copy(weights: Path, meta: dict[str, Any]) -> None:
    """``checkpoint.json`` beside the weights, if there is one, must be the metadata the weights
    carry: an edited copy would change nothing, so it is refused rather than ignored."""
    path = weights.parent / META_FILE
    if not path.is_file():
        return
    fix = f"it is only a copy of the metadata in {WEIGHTS_FILE}: restore it or delete it"
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise CheckpointError(f"{path}: larger than {MAX_METADATA_BYTES:,} bytes; {fix}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not readable as JSON ({err}); {fix}") from err
    copy = parse_metadata(text, source=path, fix=fix)
    if _canonical(copy) == _canonical(meta):
        return
    keys = sorted(set(copy) | set(meta))
    differ = [k for k in keys if _canonical(copy.get(k)) != _canonical(meta.get(k))]
    raise CheckpointError(
        f"{path}: differs from the metadata in {WEIGHTS_FILE} (key {differ[0]!r}), which is "
        f"what loading uses; {fix}"
    )


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _floats(values: Any, what: str) -> list[float]:
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise CheckpointError(f"{what} is not a list of numbers")
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise CheckpointError(f"{what} holds NaN or infinite values")
    return out


def _read_metadata(weights: Path, meta: dict[str, Any]) -> tuple[Any, ...]:
    """``(config, bands, mean, std, threshold, chip_size)`` from checkpoint metadata.

    Raises:
        CheckpointError: naming ``weights`` on any missing, mistyped or inconsistent entry.
    """
    version = meta.get("format_version", FORMAT_VERSION)
    if not _is_int(version) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{weights}: checkpoint format {_short(version)} is newer than this solarmap reads "
            f"({FORMAT_VERSION}); upgrade solarmap"
        )
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise CheckpointError(
            f"{weights}: metadata lacks {', '.join(missing)}, so it is no solarmap checkpoint; "
            f"{_FIX}"
        )
    bands = meta["bands"]
    if not isinstance(bands, list) or not all(isinstance(b, str) for b in bands) or not bands:
        raise CheckpointError(
            f"{weights}: bands {_short(bands)} are not a list of band names; {_FIX}"
        )
    unknown = [b for b in bands if b not in BANDS]
    if unknown or len(set(bands)) != len(bands):
        what = f"unknown band {unknown[0]!r}" if unknown else "a band listed twice"
        raise CheckpointError(
            f"{weights}: bands {', '.join(bands)} hold {what}; a checkpoint takes Sentinel-2 "
            f"bands of {', '.join(BANDS)}, each once; {_FIX}"
        )
    norm = meta["normalisation"]
    try:
        if not isinstance(norm, dict):
            raise CheckpointError("normalisation is not an object with mean and std")
        mean = _floats(norm.get("mean"), "normalisation mean")
        std = _floats(norm.get("std"), "normalisation std")
    except CheckpointError as err:
        raise CheckpointError(f"{weights}: {err}; {_FIX}") from err
    if len(mean) != len(bands) or len(std) != len(bands) or min(std) <= 0:
        raise CheckpointError(
            f"{weights}: normalisation does not match its {len(bands)} bands (one mean and "
            f"one std > 0 per band); {_FIX}"
        )
    threshold = check_threshold(
        meta["threshold"], what=f"{weights}: threshold", error=CheckpointError
    )
    chip_size = meta["chip_size"]
    if not _is_int(chip_size) or chip_size < 1:
        raise CheckpointError(
            f"{weights}: chip_size {_short(chip_size)} is not a whole number >= 1; {_FIX}"
        )
    if not isinstance(meta["model"], dict):
        raise CheckpointError(
            f"{weights}: model {_short(meta['model'])} is not a model config; {_FIX}"
        )
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (CheckpointError, InputError, TypeError) as err:
        raise CheckpointError(f"{weights}: model config: {err}; {_FIX}") from err
    if config.in_channels != len(bands):
        raise CheckpointError(
            f"{weights}: the model takes {config.in_channels} input channels but the metadata "
            f"lists {len(bands)} bands; {_FIX}"
        )
    return config, tuple(bands), mean, std, threshold, chip_size


def _check_checkpoint_encoder(weights: Path, config: ModelConfig) -> None:
    """The encoder check of a checkpoint, apart from :func:`_read_metadata`: it imports smp
    and timm (and torch), so a deferred model runs it only when it is built."""
    try:
        if config.kind == "unet":
            check_encoder(config.encoder, what=f"{weights}: encoder")
    except InputError as err:
        raise CheckpointError(str(err)) from err


def _misfit(want: dict[str, Any], got: dict[str, Any]) -> str:
    """The first way the tensors ``got`` differ from those a model has (``want``), or ``""``."""
    for name, tensor in want.items():
        if name not in got:
            return f"{name} is missing"
        if tuple(got[name].shape) != tuple(tensor.shape):
            return (
                f"{name} has shape {tuple(got[name].shape)}, the config's model "
                f"{tuple(tensor.shape)}"
            )
    extra = [name for name in got if name not in want]
    return f"{extra[0]} is not in the model" if extra else ""


def _first_conv_channels(model: nn.Module) -> int | None:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu", defer_model: bool = False
) -> Checkpoint:
    """Load a checkpoint folder (or its ``model.safetensors``) without unpickling anything.

    Everything is checked here, before any work: the file is safetensors (no pickle), its
    metadata within size and depth limits and complete, ``checkpoint.json`` (when present) the
    same metadata, the bands Sentinel-2 bands matching the model's input channels and the
    normalisation, the threshold a probability strictly between 0 and 1, the encoder one that
    can be built, and the weights fit the model and are finite.

    With ``defer_model`` the metadata checks run here and the model is built (and its weights
    checked) when :attr:`Checkpoint.model` is first read: a prediction that finds this exact
    weights file's ONNX graph in its cache (:mod:`solarmap.inference`) never needs torch.

    Raises:
        CheckpointError: when missing, a pickle, corrupt, truncated or inconsistent; the
            message names the file and what to do.
    """
    from safetensors import SafetensorError, safe_open

    weights = _weights_path(Path(path))
    _check_not_pickle(weights)
    try:
        with safe_open(str(weights), framework="numpy") as f:
            raw_meta = (f.metadata() or {}).get("solarmap")
    except (SafetensorError, OSError, ValueError) as err:
        raise _corrupt(weights, err) from err
    if raw_meta is None:
        raise CheckpointError(f"{weights}: no solarmap metadata; not a solarmap checkpoint")
    meta = parse_metadata(raw_meta, source=weights)
    _check_readable_copy(weights, meta)
    config, bands, mean, std, threshold, chip_size = _read_metadata(weights, meta)

    def build() -> nn.Module:
        _check_checkpoint_encoder(weights, config)
        return _build_checked(weights, config, mean, std, device)

    return Checkpoint(
        model=Deferred(build) if defer_model else build(),
        config=config,
        bands=bands,
        mean=mean,
        std=std,
        threshold=threshold,
        chip_size=chip_size,
        metadata={**meta, "path": str(weights.parent.resolve())},
        weights=weights.resolve(),
    )


def _corrupt(weights: Path, err: BaseException) -> CheckpointError:
    return CheckpointError(f"{weights}: corrupt or truncated checkpoint ({first_line(err)})")


def _build_checked(
    weights: Path,
    config: ModelConfig,
    mean: list[float],
    std: list[float],
    device: str | torch.device,
) -> nn.Module:
    """The model of ``config`` with the weights of ``weights``, checked to fit and be finite."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise _corrupt(weights, err) from err
    try:
        model = build_model(dataclasses.replace(config, encoder_weights=None), mean=mean, std=std)
    except InputError as err:
        raise CheckpointError(f"{weights}: {err}; {_FIX}") from err
    misfit = _misfit(model.state_dict(), state)
    if misfit:
        raise CheckpointError(f"{weights}: weights do not fit the model config ({misfit}); {_FIX}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{weights}: weights do not fit the model config ({first})") from err
    channels = _first_conv_channels(model)
    if channels is not None and channels != config.net_channels:
        raise CheckpointError(
            f"{weights}: the weights take {channels} input channels but the model config "
            f"gives {config.net_channels}; {_FIX}"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{weights}: weights {bad[0]} hold NaN or infinite values; {_FIX}")
    return model.to(device).eval()
