"""Sanity checks of attribution maps: do they depend on what the model learnt?

Model-parameter randomization (MPRT, Adebayo et al. 2018), cascading: the model's layers are
re-initialised group by group from the segmentation head back through the decoder into the
encoder, in the reverse of the order the forward pass reaches them (found with hooks on a probe
pass), and after each step every method's map is computed again and compared with the trained
model's: Spearman rank correlation of the values and of their absolute values, and SSIM of the
maps scaled to [0, 1]. The reference band is the similarity between the maps of two fully
randomized models (other seeds): a map that has lost what the model learnt should fall into it.

Each layer is re-initialised with its own initializer (``reset_parameters``: Kaiming-uniform
convolutions as torch builds them). BatchNorm layers are reset too, weights to 1 and biases to
0 *and their running statistics to mean 0, variance 1*: the trained statistics describe the
activations of trained layers that no longer exist, and keeping them would rescale the random
layers' activations by the trained model's figures. The model is evaluated in eval mode.

Plain MPRT rewards uninformative maps (Hedström et al. 2024), so the suite also gives:

- **sMPRT**: each map averaged over ``noise_samples`` noisy copies of the input (Gaussian,
  ``noise_sigma`` in normalised units) before comparing, which removes the shattered-gradient
  noise that makes a trained model's gradient look unlike a random model's by chance;
- **eMPRT**: the change in map complexity, the Shannon entropy of the normalised absolute map,
  from the trained to the fully randomized model (a ratio above 1: the random model's map is
  more disordered, as it should be).

A control map that carries no information about the model (an edge detector on the input,
Binder et al. 2023) is run through the same suite and must fail it: its similarity stays 1
under any randomization.

Maps are compared over the target's pixels: the gradient of a region's score is large around
the region for any model, trained or not (over whole windows, two randomized demo U-Nets'
gradient maps had |Spearman| 0.83-0.87), and that shared footprint would hide what the model
learnt.

A method passes when, fully randomized, its Spearman correlation (absolute values) with the
trained map is below ``max_spearman`` (0.3), plain and noise-averaged, and inside the
random-versus-random band (no more than ``band_margin`` above it); see :func:`verdict`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from solarmap.errors import InputError

log = logging.getLogger(__name__)

#: The information-free control map's name in the tables.
CONTROL: Final = "edge_detector (control)"

#: ``(model, x) -> float[H, W]``: one method's map of one window on one model.
MapFn = Callable[[nn.Module, torch.Tensor], np.ndarray]


def randomization_groups(model: nn.Module, x: torch.Tensor, *, depth: int = 3) -> list[str]:
    """Names of the layer groups to re-initialise, the output end first (:func:`group_of`:
    blocks such as ``decoder.blocks.0``, ``encoder.model.blocks.3``), ordered by the last time
    the probe forward pass ``model(x)`` reached one of their parameterised layers, latest
    first. Only groups with parameters count.

    Raises:
        InputError: for a model without parameterised layers.
    """
    order: list[str] = []
    hooks = []
    for name, m in model.named_modules():
        if name and any(True for _ in m.parameters(recurse=False)):
            hooks.append(m.register_forward_hook(lambda mod, a, o, n=name: order.append(n)))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise InputError("the model has no parameterised layer to randomize")
    groups: list[str] = []
    for name in reversed(order):
        g = group_of(name, depth=depth)
        if g not in groups:
            groups.append(g)
    return groups


def group_of(name: str, *, depth: int = 3) -> str:
    """A layer's group: its name up to and including its first numbered part (a block:
    ``decoder.blocks.4``, ``encoder.model.blocks.5``, ``segmentation_head.0``), else its first
    ``depth`` parts (``encoder.model.conv_stem``)."""
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:depth])


def randomize(model: nn.Module, groups: Sequence[str], *, seed: int) -> nn.Module:
    """A copy of ``model`` with every layer under ``groups`` re-initialised (seeded; torch's
    global generator is left as it was), BatchNorm running statistics reset, in eval mode."""
    out = copy.deepcopy(model)
    prefixes = tuple(groups)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, m in out.named_modules():
            if not any(name == g or name.startswith(g + ".") for g in prefixes):
                continue
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()  # BatchNorm: affine to 1/0 and running statistics to 0/1 as well
    return out.eval()


def similarity(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Spearman of the values and of their absolute values over ``mask`` (every pixel when
    None), and SSIM of the absolute maps each scaled to [0, 1] (over the mask's bounding box).
    A constant map correlates with nothing (0)."""
    if mask is not None:
        rows, cols = np.nonzero(mask)
        box = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        a_in, b_in = a[mask], b[mask]
        a, b = a[box], b[box]
    else:
        a_in, b_in = a, b

    def rank(u: np.ndarray, v: np.ndarray) -> float:
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            return 0.0
        return float(spearmanr(u.ravel(), v.ravel()).statistic)

    def unit(u: np.ndarray) -> np.ndarray:
        u = np.abs(u).astype(np.float64)
        span = np.ptp(u)
        return (u - u.min()) / span if span > 0 else np.zeros_like(u)

    small = min(a.shape) < 7  # SSIM's 7 px window
    return {
        "spearman": rank(a_in, b_in),
        "spearman_abs": rank(np.abs(a_in), np.abs(b_in)),
        "ssim": float("nan")
        if small
        else float(structural_similarity(unit(a), unit(b), data_range=1.0)),
    }


def entropy(a: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Shannon entropy (nats) of ``|a|`` normalised to a distribution over the pixels of
    ``mask`` (all when None)."""
    p = np.abs(a if mask is None else a[mask]).astype(np.float64).ravel()
    total = p.sum()
    if total <= 0:
        return 0.0
    p = p[p > 0] / total
    return float(-(p * np.log(p)).sum())


def edge_map(x: torch.Tensor) -> np.ndarray:
    """The information-free control: Sobel edge magnitude of the band mean of the input."""
    from skimage.filters import sobel

    return sobel(x[0].mean(dim=0).detach().cpu().numpy().astype(np.float64)).astype(np.float32)


def noisy_mean(fn: MapFn, model: nn.Module, x: torch.Tensor, *, samples: int, sigma: float,
               seed: int) -> np.ndarray:  # fmt: skip
    """``fn`` averaged over ``samples`` copies of ``x`` with Gaussian noise (sMPRT)."""
    gen = torch.Generator().manual_seed(seed)
    maps = [fn(model, x + sigma * torch.randn(x.shape, generator=gen)) for _ in range(samples)]
    return np.mean(maps, axis=0)


@dataclass
class MethodResult:
    """One method's randomization curve and verdict, its figures averaged over the windows."""

    method: str
    steps: list[str]
    curve: dict[str, list[float]]
    random_band: dict[str, float]
    smooth_curve: dict[str, list[float]] = field(default_factory=dict)
    emprt: float = float("nan")
    passed: bool = False

    def row(self) -> dict[str, Any]:
        full = {k: v[-1] for k, v in self.curve.items()}
        return {
            "method": self.method,
            "spearman_abs_full": full["spearman_abs"],
            "spearman_full": full["spearman"],
            "ssim_full": full["ssim"],
            "random_band_spearman_abs": self.random_band["spearman_abs"],
            "smprt_spearman_abs_full": (self.smooth_curve.get("spearman_abs") or [float("nan")])[
                -1
            ],
            "emprt_ratio": self.emprt,
            "pass": self.passed,
        }


@dataclass(frozen=True)
class SanityConfig:
    """Options of :func:`run_sanity`."""

    seed: int = 0
    noise_samples: int = 4
    noise_sigma: float = 0.1
    max_spearman: float = 0.3
    band_margin: float = 0.15
    depth: int = 3

    def __post_init__(self) -> None:
        if not (isinstance(self.noise_samples, int) and 0 <= self.noise_samples <= 64):
            raise InputError(f"--noise-samples {self.noise_samples}: give 0 to 64")
        if not (0 <= self.noise_sigma <= 5):
            raise InputError(f"--noise-sigma {self.noise_sigma}: give 0 to 5 (normalised units)")
        if not (0 < self.max_spearman <= 1):
            raise InputError(f"--max-spearman {self.max_spearman}: give a correlation in (0, 1]")


def run_sanity(
    model: nn.Module,
    windows: Sequence[torch.Tensor],
    methods: dict[str, MapFn],
    *,
    masks: Sequence[np.ndarray | None] | None = None,
    config: SanityConfig | None = None,
) -> list[MethodResult]:
    """Cascading randomization of ``model`` for every map function of ``methods`` (and the
    control map) on every window of ``windows`` (``Tensor[1, 10, H, W]``, normalised).

    ``methods`` maps a name to ``(model, x) -> float[H, W]``; each is called with the trained
    model, with the model after each cascading step, and with two fully randomized models of
    other seeds (the reference band). ``masks`` (``bool[H, W]`` per window, or None) limit
    the comparison to the target's pixels.
    """
    cfg = config or SanityConfig()
    if not windows:
        raise InputError("no window to check the maps on")
    groups = randomization_groups(model, windows[0], depth=cfg.depth)
    log.info("randomizing %d layer groups, the output end first: %s", len(groups),
             ", ".join(groups))  # fmt: skip
    cascade = [randomize(model, groups[: k + 1], seed=cfg.seed) for k in range(len(groups))]
    rand_a, rand_b = (randomize(model, groups, seed=cfg.seed + s) for s in (101, 202))
    fns = dict(methods) | {CONTROL: lambda m, x: edge_map(x)}
    results = []
    for name, fn in fns.items():
        curve: dict[str, list[list[float]]] = {"spearman": [], "spearman_abs": [], "ssim": []}
        smooth: dict[str, list[list[float]]] = {"spearman": [], "spearman_abs": [], "ssim": []}
        band: dict[str, list[float]] = {"spearman": [], "spearman_abs": [], "ssim": []}
        ent = []
        for i, x in enumerate(windows):
            mask = masks[i] if masks is not None else None
            ref = fn(model, x)
            sims = [similarity(ref, fn(m, x), mask) for m in cascade]
            for k in curve:
                curve[k].append([s[k] for s in sims])
            rb = similarity(fn(rand_a, x), fn(rand_b, x), mask)
            for k in band:
                band[k].append(rb[k])
            ent.append(entropy(fn(cascade[-1], x), mask) / max(entropy(ref, mask), 1e-12))
            if cfg.noise_samples and name != CONTROL:
                n, sd = cfg.noise_samples, cfg.noise_sigma
                sref = noisy_mean(fn, model, x, samples=n, sigma=sd, seed=cfg.seed + i)
                srand = noisy_mean(fn, cascade[-1], x, samples=n, sigma=sd, seed=cfg.seed + i)
                ss = similarity(sref, srand, mask)
                for k in smooth:
                    smooth[k].append([ss[k]])
        mean_curve = {k: list(np.mean(v, axis=0)) for k, v in curve.items()}
        res = MethodResult(
            method=name,
            steps=groups,
            curve={k: [float(c) for c in v] for k, v in mean_curve.items()},
            random_band={k: float(np.mean(v)) for k, v in band.items()},
            smooth_curve={
                k: [float(c) for c in np.mean(v, axis=0)] for k, v in smooth.items() if v
            },
            emprt=float(np.mean(ent)),
        )
        res.passed = verdict(res, cfg)
        results.append(res)
    return results


def verdict(res: MethodResult, cfg: SanityConfig) -> bool:
    """Pass: fully randomized, the Spearman correlation of the absolute maps with the trained
    one (Adebayo et al.'s measure: a map that keeps the trained map's structure correlates
    positively; one anti-correlated by chance has not kept it) below ``max_spearman`` and
    within ``band_margin`` of the random-versus-random one, for the plain maps and (where computed)
    the noise-averaged ones (sMPRT). eMPRT is reported, not gated on: on the demo U-Net the
    complexity within the object barely moves under randomization (ratios 0.96-1.0) for
    every method, so it separates nothing there."""
    full = res.curve["spearman_abs"][-1]
    smooth = (res.smooth_curve.get("spearman_abs") or [0.0])[-1]
    return bool(
        full < cfg.max_spearman
        and full <= res.random_band["spearman_abs"] + cfg.band_margin
        and smooth < cfg.max_spearman
    )


def plot_curve(path: Any, res: MethodResult) -> None:
    """A PNG of one method's similarity to the trained map along the cascade, with the
    random-versus-random band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(res.steps)), 3.6), dpi=100)
    xs = np.arange(1, len(res.steps) + 1)
    for key, style in (("spearman_abs", "-"), ("spearman", "--"), ("ssim", ":")):
        ax.plot(xs, res.curve[key], style, marker="o", ms=3, label=key)
    ax.axhline(res.random_band["spearman_abs"], color="grey", lw=1)
    ax.axhspan(-1, res.random_band["spearman_abs"], color="grey", alpha=0.15,
               label="random vs random (|spearman|)")  # fmt: skip
    ax.set_xticks(xs, res.steps, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(-0.2, 1.05)
    ax.set_ylabel("similarity to the trained map")
    ax.set_title(f"{res.method}: {'pass' if res.passed else 'FAIL'} (eMPRT {res.emprt:.2f})")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


#: The methods the sanity suite checks by default: the gradient family and Grad-CAM.
DEFAULT_SANITY_METHODS: Final = ("saliency", "input_x_gradient", "integrated_gradients", "gradcam")
#: Integrated Gradients at a fixed step count here: a randomized model's gate would refine its
#: steps to the cap, and the maps are compared by rank, not checked for completeness.
IG_FIXED: Final = {"ig_steps": 12, "ig_max_steps": 12, "tolerance": 1e9}


def registry_maps(
    tw: Any, methods: Sequence[str], *, zero: torch.Tensor, explain_config: Any = None
) -> dict[str, MapFn]:
    """Map functions ``(model, x) -> float[H, W]`` of registered methods on a target window
    ``tw`` (:class:`attribute.targets.TargetWindow`): the method's signed ``sum`` map where it
    has one, else its first; the target is the window's region on the model given. ``zero``
    is the checkpoint's normalised zero reflectance (for a zero baseline)."""
    import dataclasses

    from attribute.explain import ExplainConfig, method_context
    from attribute.registry import REGISTRY
    from attribute.targets import RegionTarget

    base = explain_config or ExplainConfig(methods=tuple(methods))
    cfg = dataclasses.replace(base, methods=tuple(methods), options={**base.options, **IG_FIXED})
    region = tw.f.region_numpy()

    def make(name: str) -> MapFn:
        def fn(model: nn.Module, x: torch.Tensor) -> np.ndarray:
            f = RegionTarget(model, region, reduction=tw.f.reduction)
            ctx = method_context(tw, cfg, model, zero)
            a = REGISTRY[name].run(ctx, f, x)
            maps = a.maps
            if not maps and a.per_band is not None:
                maps = {f"{name}:sum": a.per_band.sum(axis=0)}
            key = f"{name}:sum" if f"{name}:sum" in maps else next(iter(maps))
            return np.asarray(maps[key], dtype=np.float32)

        return fn

    return {name: make(name) for name in methods}


def sanity_run(
    scene: Any,
    checkpoint: Any,
    targets: Sequence[Any],
    out: Any,
    *,
    methods: Sequence[str] = DEFAULT_SANITY_METHODS,
    config: SanityConfig | None = None,
    overwrite: bool = False,
) -> list[MethodResult]:
    """Run the suite on the windows of ``targets`` (as ``explain`` reads them) and write
    ``out/sanity.csv``, ``out/sanity.json`` and a curve PNG per method, atomically.

    Raises:
        InputError: for an unknown method, no target, or a target outside the scene.
    """
    import csv
    import dataclasses
    from pathlib import Path

    from attribute.registry import REGISTRY, methods_for
    from attribute.targets import read_target
    from solarmap.geo import output_dir, write_json

    cfg = config or SanityConfig()
    unknown = [m for m in methods if m not in REGISTRY]
    if unknown:
        raise InputError(f"--methods {unknown[0]}: not a method; choose from {', '.join(REGISTRY)}")
    if not targets:
        raise InputError("no target to check the maps on")
    checkpoint.check_bands(scene.info.bands)
    model = checkpoint.freeze()
    methods = methods_for(model, methods)
    tws = [read_target(scene, checkpoint, t.kind, t.geom) for t in targets]
    results_by_window = []
    for tw in tws:
        fns = registry_maps(tw, methods, zero=checkpoint.zero_reflectance())
        mask = tw.f.region_numpy()
        results_by_window.append(run_sanity(model, [tw.x], fns, masks=[mask], config=cfg))
    results = _average(results_by_window, cfg)
    rows = [r.row() for r in results]
    with output_dir(Path(out), overwrite=overwrite) as tmp:
        with (tmp / "sanity.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        write_json(
            tmp / "sanity.json",
            {"config": dataclasses.asdict(cfg), "windows": len(tws),
             "steps": results[0].steps, "methods": [vars(r) for r in results], "rows": rows},
        )  # fmt: skip
        for r in results:
            plot_curve(tmp / f"sanity_{r.method.split(' ')[0]}.png", r)
    return results


def _average(per_window: Sequence[Sequence[MethodResult]], cfg: SanityConfig) -> list[MethodResult]:
    """The methods' results averaged over windows (curves, band, eMPRT), verdicts made again."""
    out = []
    for rs in zip(*per_window, strict=True):
        first = rs[0]
        res = MethodResult(
            method=first.method,
            steps=first.steps,
            curve={k: list(np.mean([r.curve[k] for r in rs], axis=0)) for k in first.curve},
            random_band={
                k: float(np.mean([r.random_band[k] for r in rs])) for k in first.random_band
            },
            smooth_curve={
                k: list(np.mean([r.smooth_curve[k] for r in rs], axis=0))
                for k in first.smooth_curve
            },
            emprt=float(np.mean([r.emprt for r in rs])),
        )
        res.passed = verdict(res, cfg)
        out.append(res)
    return out
