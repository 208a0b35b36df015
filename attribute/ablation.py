"""Band and band-group ablation: how much the target drops when a band is replaced by a baseline.

Each band (or each group of :data:`solarmap.bands.BAND_GROUPS`: visible, red-edge, NIR, SWIR) is
replaced over the whole window by the caller's baseline (normalised zero reflectance, the scene
median...) and the drop ``f(x) - f(x_ablated)`` is recorded. The sweep is Captum's
:class:`~captum.attr.FeatureAblation` with a feature mask over channels; this module only shapes
the inputs and the result table.

It also holds the small helpers every perturbation method here shares: checking the window,
expanding a baseline to the window, and counting the forward passes a method actually spends.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from captum.attr import FeatureAblation

from attribute.base import Attribution, Cost, CountingFn, ScalarFn
from solarmap.bands import BAND_GROUPS, BANDS
from solarmap.errors import InputError

log = logging.getLogger(__name__)

#: A baseline: one value for every band, one value per band (``Tensor[10]``), or a full window
#: (``Tensor[10, H, W]`` or ``Tensor[1, 10, H, W]``), all in normalised model-input units.
Baseline = float | torch.Tensor | np.ndarray


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


def check_batch_size(batch_size: int) -> int:
    """Validate a batch budget (perturbations per forward pass).

    Raises:
        InputError: unless ``batch_size >= 1``.
    """
    if int(batch_size) < 1:
        raise InputError(f"batch_size {batch_size} < 1; give at least one input per pass")
    return int(batch_size)


def _feature_ids(groups: bool) -> tuple[list[int], list[str]]:
    """Feature id per band (contract order) and the feature names."""
    if not groups:
        return list(range(len(BANDS))), list(BANDS)
    ids = [-1] * len(BANDS)
    names: list[str] = []
    for gi, (name, members) in enumerate(BAND_GROUPS.items()):
        names.append(name)
        for band in members:
            ids[BANDS.index(band)] = gi
    return ids, names


def cost_band_ablation(*, groups: bool = False) -> Cost:
    """Passes :func:`band_ablation` spends: ``f(x)`` once plus one pass per band or group."""
    return Cost(forward=1 + len(_feature_ids(groups)[1]))


def band_ablation(
    f: ScalarFn,
    x: torch.Tensor,
    *,
    baseline: Baseline = 0.0,
    groups: bool = False,
    batch_size: int = 16,
) -> Attribution:
    """Replace each band (or band group) by the baseline over the whole window.

    Args:
        f: explained function, ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: normalised window ``Tensor[1, 10, H, W]``.
        baseline: the "absent" band values (see :data:`Baseline`), e.g. normalised zero
            reflectance or the scene median.
        groups: ablate the four band groups of :data:`~solarmap.bands.BAND_GROUPS` instead of
            the ten bands.
        batch_size: ablated inputs per forward pass.

    Returns:
        :class:`Attribution` ``"band_ablation"`` (or ``"group_ablation"``) without maps;
        ``extra["table"]`` lists ``{"band" or "group", "delta", "share"}`` in contract order,
        with ``delta = f(x) - f(x_ablated)`` and ``share = |delta| / sum |delta|``
        (``extra["groups"]`` maps each group to its bands).

    Raises:
        InputError: for a wrong input or baseline shape or a batch size below one.
    """
    check_window(x)
    batch = check_batch_size(batch_size)
    base = baseline_tensor(baseline, x)
    ids, names = _feature_ids(groups)
    mask = torch.tensor(ids, device=x.device).reshape(1, len(BANDS), 1, 1)
    fn = CountingFn(f)
    with torch.no_grad():
        attr = FeatureAblation(fn).attribute(
            x.detach(), baselines=base, feature_mask=mask, perturbations_per_eval=batch
        )
    first_band = [ids.index(i) for i in range(len(names))]
    deltas = np.array([float(attr[0, b, 0, 0]) for b in first_band], dtype=np.float64)
    total = float(np.abs(deltas).sum())
    shares = np.abs(deltas) / total if total > 0 else np.zeros_like(deltas)
    key = "group" if groups else "band"
    table = [
        {key: name, "delta": float(d), "share": float(s)}
        for name, d, s in zip(names, deltas, shares, strict=True)
    ]
    extra: dict[str, object] = {"table": table}
    if groups:
        extra["groups"] = {name: list(members) for name, members in BAND_GROUPS.items()}
    log.debug("%s: %s", key, table)
    return Attribution(
        method="group_ablation" if groups else "band_ablation",
        cost=Cost(forward=fn.forward),
        extra=extra,
    )
