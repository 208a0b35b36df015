"""Faithfulness of attribution maps: deletion and insertion curves (Petsiuk et al. 2018).

A faithful map orders pixels by how much the model needs them. *Deletion* removes pixels (or
superpixels) from the window in the map's order, most attributed first, and follows the target
score as they go; the area under that curve (AUC, fraction removed on the x axis) is small for a
faithful map. *Insertion* starts from the fully removed window and puts pixels back in the same
order; its AUC is large for a faithful map. Both are compared with random orders on the same
window, and summarised over objects with bootstrap intervals.

Removed pixels take band-aware values in all ten bands, never an RGB imputer: the per-band
scene median (``fill="median"``, a flat land spectrum) or the window blurred per band
(``fill="blur"``, :func:`attribute.base.make_baseline`). The score is the target object's mean
solar probability, divided by its value on the intact window, so curves of different objects
share a scale (1 at the start of deletion).

Captum has no deletion/insertion metric and Quantus's needs its own model wrappers around a
classifier; the curves are a few batched forward passes, written here on the target contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import torch

from attribute.base import make_baseline
from solarmap.errors import InputError

Fill = Literal["median", "blur"]
Unit = Literal["pixel", "superpixel"]
#: Points of a curve: the fractions 0, 1/steps, ..., 1 of the valid pixels removed.
STEPS: Final = 20


@dataclass
class Curves:
    """Deletion and insertion curves of one map on one object, and of random orders.

    Attributes:
        fractions: ``float[steps + 1]`` the share of valid pixels removed (deletion) or put back
            (insertion) at each point.
        deletion, insertion: ``float[steps + 1]`` the object's score relative to the intact
            window, the map's order.
        random_deletion, random_insertion: the same, averaged over the random orders.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    random_deletion: np.ndarray
    random_insertion: np.ndarray

    def aucs(self) -> dict[str, float]:
        """Areas under the four curves (trapezoid rule over the fractions)."""
        return {
            name: float(np.trapezoid(getattr(self, name), self.fractions))
            for name in ("deletion", "insertion", "random_deletion", "random_insertion")
        }


def fill_window(x: torch.Tensor, fill: Fill, *, median: torch.Tensor | None = None) -> torch.Tensor:
    """What removed pixels become, ``Tensor[1, 10, H, W]``: the per-band ``median``
    (``Tensor[10]``, normalised; the window's when not given) or the window blurred per band.

    Raises:
        InputError: for another fill.
    """
    if fill == "median":
        return make_baseline(x, "median", scene_median=median)
    if fill == "blur":
        return make_baseline(x, "blur")
    raise InputError(f"unknown fill {fill!r}; choose median or blur")


def _order(
    values: np.ndarray, valid: np.ndarray, *, unit: Unit, segments: np.ndarray | None
) -> list[np.ndarray]:
    """Flat pixel indices in removal order, grouped: one pixel per group, or one superpixel
    (ranked by its mean value) per group."""
    flat_valid = valid.ravel()
    v = np.nan_to_num(values.ravel().astype(np.float64), nan=-np.inf)
    if unit == "pixel":
        idx = np.flatnonzero(flat_valid)
        return [idx[np.argsort(-v[idx], kind="stable")]]
    if segments is None or segments.shape != values.shape:
        raise InputError("superpixel deletion needs the window's segments")
    seg = segments.ravel()
    labels = np.unique(seg[flat_valid])
    means = np.array([v[(seg == s) & flat_valid].mean() for s in labels])
    return [np.flatnonzero((seg == s) & flat_valid) for s in labels[np.argsort(-means)]]


def _steps(groups: list[np.ndarray], steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The pixels removed at each of ``steps + 1`` points and the fractions they make; with
    superpixels (several groups) each point ends after a whole superpixel, as near the even
    fractions as they allow."""
    order = np.concatenate(groups)
    n = order.size
    if len(groups) > 1:
        ends = np.cumsum([0] + [g.size for g in groups])
        cuts = [int(ends[np.abs(ends - n * k / steps).argmin()]) for k in range(steps + 1)]
    else:
        cuts = [round(n * k / steps) for k in range(steps + 1)]
    return np.array(cuts, dtype=np.float64) / max(n, 1), [order[:c] for c in cuts]


def _scores(
    model: torch.nn.Module,
    x: torch.Tensor,
    filled: torch.Tensor,
    removed: Sequence[np.ndarray],
    region: torch.Tensor,
    *,
    insert: bool,
    batch_size: int,
) -> np.ndarray:
    """Mean probability over ``region`` with each set of pixels removed (or, ``insert``, only
    those put back into the filled window)."""
    _, c, h, w = x.shape
    src, dst = (x, filled) if insert else (filled, x)
    out = []
    for i in range(0, len(removed), batch_size):
        chunk = removed[i : i + batch_size]
        batch = dst.expand(len(chunk), -1, -1, -1).clone().reshape(len(chunk), c, h * w)
        flat_src = src.reshape(c, h * w)
        for j, idx in enumerate(chunk):
            t = torch.from_numpy(idx)
            batch[j][:, t] = flat_src[:, t]
        with torch.no_grad():
            p = torch.sigmoid(model(batch.reshape(len(chunk), c, h, w))[:, 0])
        out.append(((p * region).sum(dim=(-2, -1)) / region.sum()).double().numpy())
    return np.concatenate(out)


def curves(
    model: torch.nn.Module,
    x: torch.Tensor,
    values: np.ndarray,
    region: np.ndarray,
    valid: np.ndarray,
    *,
    fill: Fill = "median",
    median: torch.Tensor | None = None,
    unit: Unit = "pixel",
    segments: np.ndarray | None = None,
    steps: int = STEPS,
    random_orders: int = 2,
    seed: int = 0,
    batch_size: int = 16,
) -> Curves:
    """Deletion and insertion curves of the map ``values`` (``float[H, W]``, higher = more
    solar evidence) for the object ``region`` (``bool[H, W]``) of the window ``x``
    (``Tensor[1, 10, H, W]``, normalised), and of ``random_orders`` seeded random orders.

    Raises:
        InputError: for shapes that do not fit, no valid pixel, an empty region, or a bad
            fill, unit or step count.
    """
    h, w = x.shape[-2:]
    if values.shape != (h, w) or region.shape != (h, w) or valid.shape != (h, w):
        raise InputError(f"map, region and valid mask must be {(h, w)}")
    if not valid.any() or not region.any():
        raise InputError("faithfulness needs valid pixels and a non-empty object region")
    if not (isinstance(steps, int) and 2 <= steps <= 200):
        raise InputError(f"steps {steps!r}: give 2 to 200")
    model = model.eval()
    filled = fill_window(x, fill, median=median)
    reg = torch.from_numpy(region).to(x.dtype)
    intact = [np.zeros(0, np.int64)]
    p0 = float(_scores(model, x, filled, intact, reg, insert=False, batch_size=1)[0])
    scale = max(p0, 1e-6)
    fractions, removed = _steps(_order(values, valid, unit=unit, segments=segments), steps)
    deletion = _scores(model, x, filled, removed, reg, insert=False, batch_size=batch_size)
    insertion = _scores(model, x, filled, removed, reg, insert=True, batch_size=batch_size)
    rng = np.random.default_rng(seed)
    rd, ri = [], []
    for _ in range(random_orders):
        noise = rng.random(values.shape)
        _, rand = _steps(_order(noise, valid, unit=unit, segments=segments), steps)
        rd.append(_scores(model, x, filled, rand, reg, insert=False, batch_size=batch_size))
        ri.append(_scores(model, x, filled, rand, reg, insert=True, batch_size=batch_size))
    return Curves(
        fractions=fractions,
        deletion=deletion / scale,
        insertion=insertion / scale,
        random_deletion=np.mean(rd, axis=0) / scale,
        random_insertion=np.mean(ri, axis=0) / scale,
    )


def bootstrap(
    values: Sequence[float], *, samples: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean of ``values`` over objects and its percentile bootstrap interval."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(samples, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": float(v.mean()), "low": float(lo), "high": float(hi), "n": int(v.size)}


def summarise(per_object: Mapping[str, Sequence[Curves]]) -> list[dict[str, Any]]:
    """One row per map: bootstrap means and intervals of the deletion and insertion AUCs over
    objects, of the random orders', and ``deletion_ratio``: the map's mean deletion AUC over
    the random order's (below 1 is better than random)."""
    rows = []
    for name, cs in per_object.items():
        aucs = [c.aucs() for c in cs]
        row: dict[str, Any] = {"map": name, "objects": len(cs)}
        for key in ("deletion", "insertion", "random_deletion", "random_insertion"):
            b = bootstrap([a[key] for a in aucs])
            row |= {f"{key}_auc": b["mean"], f"{key}_low": b["low"], f"{key}_high": b["high"]}
        rd = row["random_deletion_auc"]
        row["deletion_ratio"] = row["deletion_auc"] / rd if rd > 0 else float("nan")
        rows.append(row)
    return rows


def plot_curves(path: Any, name: str, cs: Sequence[Curves]) -> None:
    """A PNG of one map's mean deletion and insertion curves against random orders."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=100)
    f = cs[0].fractions
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        ax.plot(f, np.mean([getattr(c, kind) for c in cs], axis=0), label=name, lw=2)
        ax.plot(f, np.mean([getattr(c, f"random_{kind}") for c in cs], axis=0),
                label="random order", lw=1.5, ls="--", color="grey")  # fmt: skip
        ax.set_title(f"{kind} ({len(cs)} objects)")
        ax.set_xlabel("fraction of pixels " + ("removed" if kind == "deletion" else "restored"))
        ax.set_ylabel("object score / intact")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
