"""Band and band-group ablation: how much the target drops when a band is replaced by a baseline.

Each band (or each group of :data:`solarmap.bands.BAND_GROUPS`: visible, red-edge, NIR, SWIR) is
replaced over the whole window by the caller's baseline (normalised zero reflectance, the scene
median...) and the drop ``f(x) - f(x_ablated)`` is recorded. The sweep is Captum's
:class:`~captum.attr.FeatureAblation` with a feature mask over channels; this module only shapes
the inputs and the result table.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from captum.attr import FeatureAblation

from attribute.base import (
    Attribution,
    Baseline,
    Cost,
    CountingFn,
    Method,
    ScalarFn,
    baseline_tensor,
    check_batch_size,
    check_window,
)
from solarmap.bands import BAND_GROUPS, BANDS

log = logging.getLogger(__name__)


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


def _declare(groups: bool) -> Method:
    name = "group_ablation" if groups else "band_ablation"
    n = len(BAND_GROUPS) if groups else len(BANDS)
    what = "each band group (visible, red-edge, NIR, SWIR)" if groups else "each band"
    return Method(
        name=name,
        family="perturbation",
        summary=f"{what} replaced by the baseline over the window; {1 + n} forward passes",
        cost=lambda ctx: cost_band_ablation(groups=groups),
        run=lambda ctx, f, x: band_ablation(
            f, x, baseline=ctx.baseline, groups=groups, batch_size=ctx.settings.batch_size
        ),
    )


#: The methods this module gives the registry.
METHODS: tuple[Method, ...] = (_declare(groups=False), _declare(groups=True))
