"""The method contract: what every attribution method takes, checks and returns.

A method explains one scalar per input: ``f(x) -> Tensor[N]`` where ``x`` is the normalised
model input ``Tensor[N, 10, H, W]`` (see :mod:`attribute.targets`, which builds ``f`` from the
U-Net and a target region). Methods return an :class:`Attribution`: per-band maps
``[10, H, W]`` when the method has them, 2-D maps by name, the cost actually spent, and
method-specific extras (completeness error, band tables...).

This module also holds what every method shares: the input, window and batch checks, the
baselines (:data:`BaselineName`, :func:`make_baseline`, :func:`baseline_tensor`), the pass
counter :class:`CountingFn`, and the declaration a method module gives the registry
(:class:`Method`, :class:`Option`, run with a :class:`MethodContext`; see
:mod:`attribute.registry`). It imports no other module of this package.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from solarmap.bands import BANDS
from solarmap.errors import InputError

log = logging.getLogger(__name__)

#: The explained function: normalised input ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
ScalarFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Cost:
    """Model passes of a method: forward passes over single inputs, and backward passes."""

    forward: int = 0
    backward: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.forward + other.forward, self.backward + other.backward)

    def describe(self) -> str:
        """Human-readable cost, e.g. ``"64 forward + 64 backward passes"``."""
        return f"{self.forward} forward + {self.backward} backward passes"


@dataclass
class Attribution:
    """The result of one method on one window.

    Attributes:
        method: method name (``"saliency"``, ``"integrated_gradients"``...).
        per_band: ``float32[10, H, W]`` band-resolved attribution, or ``None``.
        maps: 2-D ``float32[H, W]`` maps by band description (``"saliency:max_abs"``).
        cost: passes actually spent.
        extra: method-specific results (JSON-serialisable).
    """

    method: str
    per_band: np.ndarray | None = None
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)
    extra: dict[str, Any] = field(default_factory=dict)


class CountingFn:
    """Wraps ``f`` and counts the model passes spent through it.

    A forward call on ``Tensor[N, ...]`` counts ``N`` forward passes; a backward pass that
    reaches the output counts ``N`` backward passes (a hook on the output tensor).

    Raises:
        InputError: (when called) if ``f`` does not return ``Tensor[N]``.
    """

    def __init__(self, f: ScalarFn) -> None:
        self.f = f
        self.cost = Cost()

    def _count_backward(self, n: int) -> Callable[[torch.Tensor], None]:
        def hook(_grad: torch.Tensor) -> None:
            self.cost.backward += n

        return hook

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        out = self.f(x)
        self.cost.forward += n
        if out.ndim != 1 or out.shape[0] != n:
            raise InputError(
                f"explained function returned shape {tuple(out.shape)} for {n} inputs; "
                "it must return one scalar per input, Tensor[N]"
            )
        if out.requires_grad:
            out.register_hook(self._count_backward(n))
        return out

    @property
    def forward(self) -> int:
        """Forward passes so far (over single inputs)."""
        return self.cost.forward


# --------------------------------------------------------------------------- input checks


def check_input(x: torch.Tensor) -> torch.Tensor:
    """Validate one window ``Tensor[1, B, H, W]`` and return it detached.

    Raises:
        InputError: unless ``x`` is a 4-D floating tensor holding one window.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"input has shape {shape}; give one window as Tensor[1, bands, H, W]")
    if not x.is_floating_point():
        raise InputError(f"input has dtype {x.dtype}; give the normalised float input")
    return x.detach()


def check_window(x: torch.Tensor) -> tuple[int, int]:
    """Check that ``x`` is one normalised window ``Tensor[1, 10, H, W]``; return ``(H, W)``.

    Raises:
        InputError: for any other shape.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[:2] != (1, len(BANDS)):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(
            f"attribution input has shape {shape}; give one window Tensor[1, {len(BANDS)}, H, W]"
        )
    return int(x.shape[2]), int(x.shape[3])


def check_batch_size(batch_size: int) -> int:
    """Validate a batch budget (perturbations per forward pass).

    Raises:
        InputError: unless ``batch_size >= 1``.
    """
    if int(batch_size) < 1:
        raise InputError(f"batch_size {batch_size} < 1; give at least one input per pass")
    return int(batch_size)


# --------------------------------------------------------------------------- baselines

#: Named baselines: normalised zero reflectance, the median, a Gaussian blur of the window, and
#: the context reference (the object replaced by the land cover around it, :func:`context_fill`).
BaselineName = Literal["zero", "median", "blur", "context"]
BASELINES: tuple[str, ...] = ("zero", "median", "blur", "context")
#: The context reference: pixels within this distance of the target region are the object
#: (its blurred edge, fence and the strip OSM maps around the panels), the ring beyond it, this
#: wide, is the land cover the object is replaced by.
CONTEXT_GAP_PX: float = 2.0
CONTEXT_RING_PX: float = 6.0

#: A baseline: one value for every band, one value per band (``Tensor[10]``), or a full window
#: (``Tensor[10, H, W]`` or ``Tensor[1, 10, H, W]``), all in normalised model-input units.
Baseline = float | torch.Tensor | np.ndarray


def check_baseline_name(name: str) -> BaselineName:
    """Validate a baseline name.

    Raises:
        InputError: unless it is one of :data:`BASELINES`.
    """
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; choose {', '.join(BASELINES)}")
    return name  # type: ignore[return-value]  # checked against BASELINES above


def baseline_tensor(baseline: Baseline, x: torch.Tensor) -> torch.Tensor:
    """The baseline as a full window ``Tensor[1, 10, H, W]`` on ``x``'s device and dtype.

    Args:
        baseline: a number, ``[10]`` per-band values, or a ``[10, H, W]`` / ``[1, 10, H, W]``
            window.
        x: the window ``Tensor[1, 10, H, W]``.

    Raises:
        InputError: when the baseline's shape fits none of these.
    """
    check_window(x)
    b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    n_bands, h, w = x.shape[1:]
    if b.ndim == 0:
        b = b.reshape(1, 1, 1, 1)
    elif b.ndim == 1 and b.shape[0] == n_bands:
        b = b.reshape(1, n_bands, 1, 1)
    elif b.ndim == 3 and tuple(b.shape) == (n_bands, h, w):
        b = b[None]
    elif not (b.ndim == 4 and tuple(b.shape) == tuple(x.shape)):
        raise InputError(
            f"baseline has shape {tuple(b.shape)}; give a number, {n_bands} per-band values or "
            f"a window of shape {tuple(x.shape[1:])}"
        )
    if not torch.isfinite(b).all():
        raise InputError("baseline holds NaN or infinite values; give finite normalised values")
    return b.expand_as(x).contiguous()


def _per_band(v: torch.Tensor | Sequence[float], x: torch.Tensor, what: str) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=x.dtype, device=x.device).flatten()
    if t.numel() != x.shape[1]:
        raise InputError(f"{what} has {t.numel()} values for {x.shape[1]} bands")
    return t[None, :, None, None].expand_as(x)


def make_baseline(
    x: torch.Tensor,
    baseline: BaselineName | torch.Tensor,
    *,
    zero_reflectance: torch.Tensor | None = None,
    scene_median: torch.Tensor | None = None,
    blur_sigma: float = 5.0,
    region: np.ndarray | None = None,
) -> torch.Tensor:
    """The baseline image ``x′`` for a window, ``Tensor[1, B, H, W]``.

    ``"zero"`` is zero reflectance (``zero_reflectance``, ``−mean/std`` per band; the training
    mean when not given), ``"median"`` the per-band median (of the scene when given, else of the
    window), ``"blur"`` a Gaussian blur of the window (keeps each band's local level, removes
    the texture), ``"context"`` the window with the target ``region`` replaced by the land
    cover around it (:func:`context_fill`).

    Args:
        x: ``Tensor[1, B, H, W]`` normalised window.
        baseline: ``"zero"``, ``"median"``, ``"blur"`` or a tensor ``[B]``, ``[B, H, W]`` or
            ``[1, B, H, W]``.
        zero_reflectance: ``Tensor[B]`` normalised value of reflectance 0 (``−mean/std``).
        scene_median: ``Tensor[B]`` normalised per-band median of the scene.
        blur_sigma: Gaussian standard deviation in pixels for ``"blur"``.
        region: ``bool[H, W]`` target region, for ``"context"``.

    Raises:
        InputError: for an unknown name or a tensor of the wrong shape, or ``"context"``
            without a region or without land around it.
    """
    x = check_input(x)
    if isinstance(baseline, torch.Tensor):
        b = baseline.detach().to(dtype=x.dtype, device=x.device)
        if not torch.isfinite(b).all():
            raise InputError("baseline holds NaN or infinite values; give finite normalised values")
        if b.ndim == 1:
            return _per_band(b, x, "baseline")
        try:
            return torch.broadcast_to(b, x.shape).clone()
        except RuntimeError as err:
            raise InputError(
                f"baseline of shape {tuple(b.shape)} does not fit the input {tuple(x.shape)}"
            ) from err
    if baseline == "zero":
        if zero_reflectance is None:
            log.info("no zero_reflectance given: the zero baseline is the training mean")
            return torch.zeros_like(x)
        return _per_band(zero_reflectance, x, "zero_reflectance").clone()
    if baseline == "median":
        if scene_median is None:
            median = x[0].flatten(1).median(dim=1).values  # lower median of even counts
            return _per_band(median, x, "window median").clone()
        return _per_band(scene_median, x, "scene_median").clone()
    if baseline == "blur":
        from torchvision.transforms.functional import gaussian_blur

        if blur_sigma <= 0:
            raise InputError(f"blur_sigma must be > 0 pixels, got {blur_sigma}")
        # Kernel to ±3σ, but reflect padding needs the half-width below the window size.
        half = min(math.ceil(3 * blur_sigma), min(x.shape[-2:]) - 1)
        k = 2 * max(half, 0) + 1
        return gaussian_blur(x, kernel_size=[k, k], sigma=[blur_sigma, blur_sigma])
    if baseline == "context":
        if region is None:
            raise InputError("the context baseline needs the target region")
        return context_fill(x, region)
    raise InputError(f"unknown baseline {baseline!r}; choose zero, median, blur or give a tensor")


def context_fill(
    x: torch.Tensor,
    region: np.ndarray,
    *,
    gap_px: float = CONTEXT_GAP_PX,
    ring_px: float = CONTEXT_RING_PX,
) -> torch.Tensor:
    """``x`` with the object removed: every pixel within ``gap_px`` of ``region`` set to the
    per-band median of the valid pixels in the ring ``gap_px < d <= gap_px + ring_px`` around
    it (the land cover the object stands on), the rest of the window as it is.

    A counterfactual "the same place without the farm": the reference a context-reliance audit
    compares with. A flat fill rather than pixels sampled from the ring, so the reference adds
    no texture of its own.

    Raises:
        InputError: for a region of the wrong shape or an empty one, or no valid pixel around
            the object to take the land cover from (the window is all object: widen the margin).
    """
    from scipy.ndimage import distance_transform_edt

    x = check_input(x)
    mask = np.asarray(region, dtype=bool)
    if mask.shape != tuple(x.shape[-2:]) or not mask.any():
        raise InputError(
            f"context baseline: region of shape {mask.shape} for a window of "
            f"{tuple(x.shape[-2:])}; give the target's non-empty region"
        )
    dist = distance_transform_edt(~mask)
    obj = dist <= gap_px
    valid = (x[0] != 0).any(dim=0).cpu().numpy()  # no-data reaches the model as 0 in every band
    ring = (dist > gap_px) & (dist <= gap_px + ring_px) & valid
    if not ring.any():
        ring = ~obj & valid  # a thin window: whatever land the window holds
    if not ring.any():
        raise InputError(
            "context baseline: no land around the target to replace it with; explain with a "
            "wider --margin"
        )
    flat = x[0].reshape(x.shape[1], -1)
    fill = flat[:, torch.from_numpy(ring.ravel())].median(dim=1).values
    out = x.clone()
    where = torch.from_numpy(obj).to(x.device)
    out[0][:, where] = fill[:, None].to(x.dtype)
    return out


@dataclass(frozen=True)
class Reference:
    """What a baseline means to the model for one target: ``f(x)``, ``f(x′)`` and the share of
    the score the explanation can account for, ``(f(x) − f(x′)) / |f(x)|``.

    A reference is *non-solar* when the region under it scores clearly below the decision
    threshold: its mean logit at most ``threshold_logit − margin``. Otherwise the explanation
    only accounts for the difference between two solar-looking inputs (a blurred farm still
    looks like a farm), and its sign may even flip.
    """

    f_x: float
    f_reference: float
    share: float
    non_solar: bool
    mean_logit: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "f_x": self.f_x,
            "f_reference": self.f_reference,
            "share": self.share,
            "non_solar": self.non_solar,
            "mean_logit": self.mean_logit,
        }


#: How far below the threshold logit a non-solar reference's mean logit lies, at least.
REFERENCE_MARGIN: float = 1.0


def reference_check(
    f_x: float,
    f_reference: float,
    *,
    n_pixels: int,
    reduction: str,
    threshold_logit: float,
    margin: float = REFERENCE_MARGIN,
) -> Reference:
    """Judge a reference from the two values of ``f`` (no model pass: callers have them).

    ``f`` sums (``reduction="sum"``) or averages the logits over ``n_pixels``.
    """
    mean = f_reference / n_pixels if reduction == "sum" else f_reference
    share = (f_x - f_reference) / max(abs(f_x), 1e-12)
    return Reference(
        f_x=float(f_x),
        f_reference=float(f_reference),
        share=float(share),
        non_solar=bool(mean <= threshold_logit - margin),
        mean_logit=float(mean),
    )


def perturbation_baseline(
    x: torch.Tensor,
    name: BaselineName,
    *,
    zero_reflectance: torch.Tensor,
    region: np.ndarray | None = None,
) -> torch.Tensor:
    """What perturbation methods replace removed pixels with: ``Tensor[10]`` per-band values
    (zero reflectance, or the window's NaN-skipping median) or a full window
    ``Tensor[1, 10, H, W]`` (blurred, or the context reference on the target ``region``).

    Raises:
        InputError: for an unknown name, or ``"context"`` without a usable region.
    """
    name = check_baseline_name(name)
    if name == "context":
        if region is None:
            raise InputError("the context baseline needs the target region")
        return context_fill(x, region)
    if name == "median":
        return torch.nanmedian(x[0].reshape(x.shape[1], -1), dim=1).values
    if name == "blur":
        return make_baseline(x, "blur", zero_reflectance=zero_reflectance)
    return zero_reflectance


# --------------------------------------------------------------------------- the method contract

#: Method families, from the cheapest (one gradient) to the costliest (coalitions of superpixels).
Family = Literal["gradient", "perturbation", "superpixel"]
FAMILIES: tuple[Family, ...] = ("gradient", "perturbation", "superpixel")


def check_ranges(checks: Sequence[tuple[str, Any, bool, str]]) -> None:
    """Raise for the first ``(flag, value, ok, hint)`` that is not ok: the one-line message
    ``"<flag> <value>: <hint>"`` a configuration object gives for a value out of range.

    Raises:
        InputError: for the first failed check.
    """
    for flag, value, ok, hint in checks:
        if not ok:
            raise InputError(f"{flag} {value}: {hint}")


@dataclass(frozen=True)
class Option:
    """An option a method reads, declared once by the module that owns it.

    The command line offers it as ``--<name with dashes>``; :class:`Method` names the options
    it reads, and only the options of the chosen methods are checked.

    Attributes:
        name: Python name (``"shap_samples"``).
        default: default value; its type (int, float, str, or ``None`` for an optional str)
            is the option's type.
        help: one line for ``--help``.
        least: the smallest allowed value of a number.
        choices: the allowed values of a string.
    """

    name: str
    default: Any
    help: str
    least: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        """The command-line flag, ``--shap-samples``."""
        return "--" + self.name.replace("_", "-")

    @property
    def type(self) -> type:
        """int, float or str."""
        return str if self.default is None else type(self.default)

    def check(self, value: Any, *, methods: Sequence[str] = ()) -> Any:
        """``value`` checked and converted to the option's type.

        Raises:
            InputError: for a value of the wrong type, below :attr:`least` or not a choice.
        """
        who = f" ({', '.join(methods)})" if methods else ""
        if value is None and self.default is None:
            return None
        try:
            v = self.type(value)
        except (TypeError, ValueError) as err:
            raise InputError(f"{self.flag} {value!r}{who}: give a {self.type.__name__}") from err
        if self.type in (int, float) and not math.isfinite(v):
            raise InputError(f"{self.flag} {value!r}{who}: give a finite number")
        if self.least is not None and v < self.least:
            raise InputError(f"{self.flag} {value}{who}: must be >= {self.least:g}")
        if self.choices is not None and v not in self.choices:
            raise InputError(f"{self.flag} {value!r}{who}: choose {', '.join(self.choices)}")
        return v


@dataclass(frozen=True)
class Settings:
    """What a method may read of the configuration: the shared settings and its options."""

    reductions: tuple[str, ...] = ("max_abs", "sum")
    batch_size: int = 8
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.options[name]


@dataclass
class MethodContext:
    """Everything a method's cost and run functions get for one target window.

    Attributes:
        settings: the shared settings and every option value.
        model: the frozen U-Net (for layer methods such as Grad-CAM).
        baseline: the perturbation baseline (see :func:`perturbation_baseline`).
        zero: ``Tensor[10]`` normalised zero reflectance.
        segments: the window's superpixels ``int[H, W]``, computed once on first call.
        region_bbox: ``(row0, col0, row1, col1)`` of the target region in window pixels.
        shape: ``(H, W)`` of the window.
        region: the target region itself.
    """

    settings: Settings
    model: torch.nn.Module
    baseline: torch.Tensor
    zero: torch.Tensor
    segments: Callable[[], np.ndarray]
    region_bbox: tuple[int, int, int, int]
    shape: tuple[int, int]
    #: ``bool[H, W]`` the target region (for the context baseline), when there is one.
    region: np.ndarray | None = None


@dataclass(frozen=True)
class Method:
    """A method as the registry knows it: ``explain`` runs it by name through this record.

    Attributes:
        name: the method's name (``--methods``, band descriptions, tables).
        family: ``"gradient"``, ``"perturbation"`` or ``"superpixel"``; superpixel methods
            also get their values written as polygons.
        summary: one line on what it computes and costs, for ``--help``.
        cost: the passes it will spend on a window, stated before it runs.
        run: ``(context, f, x) -> Attribution``.
        options: names of the :class:`Option` s it reads.
        check: optional budget check on the settings, run before any method runs.
        bounded: the stated cost is the most the method can spend (a gate may stop early).
        applies: optional test of the model: a method that does not apply to it (attention
            relevance on a convolutional encoder) is left out of a run that asked for its
            family or ``all``.
    """

    name: str
    family: Family
    summary: str
    cost: Callable[[MethodContext], Cost]
    run: Callable[[MethodContext, ScalarFn, torch.Tensor], Attribution]
    options: tuple[str, ...] = ()
    check: Callable[[Settings], None] | None = None
    bounded: bool = False
    applies: Callable[[torch.nn.Module], bool] | None = None
