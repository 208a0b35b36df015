"""Time per attribution method on one 256×256 window, against Captum on the same window.

Reads one detected object of a prediction with its trained checkpoint (by default the outputs
of `solarmap demo`), builds the object target (sum of logits over the object) on a 256×256
window centred on it, and times every method of `solarmap explain` with its defaults next to
the nearest Captum call with Captum's defaults, on the same model, input and batch size.
Prints seconds, model passes and, where it applies, the difference of the two results.

    python benchmarks/bench_methods.py [--checkpoint DIR --scene TIF --predictions GPKG]
        [--size 256] [--skip-captum-occlusion]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from captum.attr import (
    FeatureAblation,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    LayerAttribution,
    LayerGradCam,
    Lime,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)
from explain_window import add_window_arguments, load_window

from attribute import ablation, gradcam, gradients, integrated_gradients, occlusion, shapley
from attribute.base import CountingFn, make_baseline
from attribute.explain import ExplainConfig
from attribute.gradients import band_noise_std
from attribute.shapley import _linear_model
from attribute.superpixels import slic_segments


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``‖a − b‖ / ‖b‖``."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_window_arguments(ap)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--skip-captum-occlusion", action="store_true")
    args = ap.parse_args()
    w = load_window(args.checkpoint, args.scene, args.predictions, size=args.size, rank=args.rank)
    cfg = ExplainConfig()
    bs = cfg.batch_size
    opt = cfg.options
    x, f, zero = w.x, w.f, w.zero
    base_zero = zero[None, :, None, None].expand_as(x).contiguous()
    blur = make_baseline(x, "blur")
    print(
        f"window {tuple(x.shape[-2:])}, object {w.area_ha:.1f} ha, bbox {w.bbox}, "
        f"{torch.get_num_threads()} threads, batch {bs}"
    )
    with torch.no_grad():
        _, t_fwd = timed(lambda: f(x.expand(bs, -1, -1, -1)))
    print(f"one forward pass over a batch of {bs}: {t_fwd:.2f} s ({t_fwd / bs * 1e3:.0f} ms/input)")
    segments, t_seg = timed(lambda: slic_segments(np.nan_to_num(w.reflectance), n_segments=64))
    k = int(segments.max()) + 1
    print(f"SLIC: {k} superpixels in {t_seg:.2f} s")
    mask = torch.as_tensor(segments)[None, None]
    band_mask = torch.arange(10)[None, :, None, None].expand_as(x)

    rows: list[tuple[str, str, float, str, float | None, str, str]] = []

    def captum(run: Callable[[CountingFn], torch.Tensor]) -> tuple[np.ndarray, float, int]:
        """Run a Captum call on ``f`` (counted): its result, seconds and forward passes."""
        counter = CountingFn(f)
        out, sec = timed(lambda: run(counter))
        return out.detach().double().cpu().numpy(), sec, counter.cost.forward

    def add(name: str, ours: Any, t_ours: float, cap: str, cap_res: Any, note: str = "") -> None:
        if cap_res is None:
            rows.append((name, ours.cost.describe(), t_ours, "-", None, "-", note))
            return
        _, sec, passes = cap_res
        rows.append((name, ours.cost.describe(), t_ours, cap, sec, f"{passes}", note))
        print(rows[-1])

    # gradients ------------------------------------------------------------------------------
    a, t = timed(lambda: gradients.saliency(f, x))
    c = captum(lambda g: Saliency(g).attribute(x, abs=False))
    add("saliency", a, t, "Saliency", c, f"diff {rel_diff(a.per_band, c[0][0]):.1e}")
    a, t = timed(lambda: gradients.input_x_gradient(f, x))
    c = captum(lambda g: InputXGradient(g).attribute(x))
    add("input_x_gradient", a, t, "InputXGradient", c, f"diff {rel_diff(a.per_band, c[0][0]):.1e}")
    a, t = timed(
        lambda: gradients.smoothgrad(
            f, x, n_samples=opt["smoothgrad_samples"], sigma=opt["smoothgrad_sigma"], batch_size=bs
        )
    )
    sd = float(band_noise_std(x, opt["smoothgrad_sigma"]).mean())
    c = captum(
        lambda g: NoiseTunnel(Saliency(g)).attribute(
            x, nt_type="smoothgrad", nt_samples=opt["smoothgrad_samples"],
            nt_samples_batch_size=bs, stdevs=sd, abs=False,
        )
    )  # fmt: skip
    add("smoothgrad (n=50)", a, t, "NoiseTunnel(Saliency) n=50", c, "random: no diff")

    # integrated gradients -------------------------------------------------------------------
    a, t = timed(
        lambda: integrated_gradients.integrated_gradients(
            f, x, baseline="blur", batch_size=2 * bs, max_steps=opt["ig_max_steps"]
        )
    )
    ex = a.extra
    holder: dict[str, float] = {}

    def captum_ig(g: Any) -> torch.Tensor:
        attr, delta = IntegratedGradients(g).attribute(
            x, baselines=blur, internal_batch_size=2 * bs, return_convergence_delta=True
        )
        holder["delta"] = float(delta.abs().sum())
        return attr

    c = captum(captum_ig)
    gap = ex["f_x"] - ex["f_baseline"]
    add(
        "integrated_gradients (blur, gate)",
        a,
        t,
        "IntegratedGradients (50 Gauss-Legendre)",
        c,
        f"ours {ex['steps']} steps err {ex['completeness_error']:.2%}; "
        f"Captum err {holder['delta'] / abs(gap):.2%}; diff {rel_diff(a.per_band, c[0][0]):.1e}",
    )
    a, t = timed(
        lambda: integrated_gradients.integrated_gradients(
            f, x, baseline=base_zero, batch_size=2 * bs, max_steps=opt["ig_max_steps"]
        )
    )
    c = captum(
        lambda g: IntegratedGradients(g).attribute(
            x, baselines=base_zero, internal_batch_size=2 * bs
        )
    )
    add(
        "integrated_gradients (zero, gate)",
        a,
        t,
        "IntegratedGradients (50 Gauss-Legendre)",
        c,
        f"ours {a.extra['steps']} steps err {a.extra['completeness_error']:.2%}",
    )

    # perturbation ---------------------------------------------------------------------------
    a, t = timed(
        lambda: occlusion.occlusion(
            f,
            x,
            window=opt["occlusion_window"],
            baseline=zero,
            batch_size=2 * bs,
            region_bbox=w.bbox,
        )
    )
    c = None
    if not args.skip_captum_occlusion:
        c = captum(
            lambda g: Occlusion(g).attribute(
                x, sliding_window_shapes=(10, 8, 8), strides=(10, 8, 8), baselines=base_zero,
                perturbations_per_eval=2 * bs,
            )
        )  # fmt: skip
    r0, c0, r1, c1 = a.extra["swept_bbox"]
    note = f"ours sweeps {r1 - r0}×{c1 - c0} px of the window"
    if c is not None:
        sub = c[0][0, 0, r0:r1, c0:c1]
        inner = a.maps["occlusion"][r0 + 8 : r1 - 8, c0 + 8 : c1 - 8]
        note += f"; diff inside {rel_diff(inner, sub[8:-8, 8:-8]):.1e}"
    add("occlusion 8×8", a, t, "Occlusion 8×8 (whole window)", c, note)
    a, t = timed(lambda: ablation.band_ablation(f, x, baseline=zero, batch_size=bs))
    c = captum(
        lambda g: FeatureAblation(g).attribute(
            x, baselines=base_zero, feature_mask=band_mask, perturbations_per_eval=bs
        )
    )
    ours_bands = np.array([r["delta"] for r in a.extra["table"]])
    add("band_ablation", a, t, "FeatureAblation (bands)", c,
        f"diff {rel_diff(ours_bands, c[0][0, :, 0, 0]):.1e}")  # fmt: skip

    # superpixels ----------------------------------------------------------------------------
    n = opt["shap_samples"]
    # Warm-up: the first masked batches run slower (allocator, kernel caches), which would
    # otherwise be charged to whichever side runs first.
    shapley.kernel_shap(f, x, segments, baseline=zero, n_samples=k + 2, batch_size=bs)
    a, t = timed(
        lambda: shapley.kernel_shap(f, x, segments, baseline=zero, n_samples=n, batch_size=bs)
    )

    def captum_kernel_shap(g: Any) -> torch.Tensor:
        ks = KernelShap(g)
        ks.interpretable_model = _linear_model()  # Captum's default fit needs scikit-learn
        return ks.attribute(
            x, baselines=base_zero, feature_mask=mask, n_samples=n, perturbations_per_eval=bs
        )

    c = captum(captum_kernel_shap)
    add(f"kernel_shap (paired, {n})", a, t, f"KernelShap ({n}, same fit)", c, "")
    p = opt["shapley_permutations"]
    a, t = timed(
        lambda: shapley.shapley_sampling(
            f, x, segments, baseline=zero, n_permutations=p, batch_size=bs
        )
    )
    c = captum(
        lambda g: ShapleyValueSampling(g).attribute(
            x, baselines=base_zero, feature_mask=mask, n_samples=2 * p, perturbations_per_eval=bs
        )
    )
    add(f"shapley_sampling ({p}×2 antithetic)", a, t, f"ShapleyValueSampling ({2 * p})", c, "")
    a, t = timed(lambda: shapley.l_shapley(f, x, segments, baseline=zero, k=1, batch_size=bs))
    add("l_shapley k=1", a, t, "-", None, "not in Captum")
    a, t = timed(lambda: shapley.c_shapley(f, x, segments, baseline=zero, k=1, batch_size=bs))
    add("c_shapley k=1", a, t, "-", None, "not in Captum")
    a, t = timed(lambda: shapley.lime(f, x, segments, baseline=zero, n_samples=n, batch_size=bs))

    def captum_lime(g: Any) -> torch.Tensor:
        return Lime(g, interpretable_model=_linear_model()).attribute(
            x, baselines=base_zero, feature_mask=mask, n_samples=n, perturbations_per_eval=bs
        )

    c = captum(captum_lime)
    add(f"lime ({n})", a, t, f"Lime ({n}, same fit)", c, "")

    # Grad-CAM -------------------------------------------------------------------------------
    model = w.checkpoint.model
    layer = "decoder.blocks.0"
    a, t = timed(lambda: gradcam.gradcam(model, f, x, layer=layer))

    def captum_cam(g: Any) -> torch.Tensor:
        cam = LayerGradCam(g, gradcam.resolve_layer(model, layer)).attribute(
            x, relu_attributions=True
        )
        return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")

    c = captum(captum_cam)
    add("gradcam " + layer, a, t, "LayerGradCam", c,
        f"diff {rel_diff(a.maps[next(iter(a.maps))], c[0][0, 0]):.1e}")  # fmt: skip

    print()
    print("| method | ours: passes | ours: s | Captum | Captum: s | Captum: forwards | notes |")
    print("|---|---|---|---|---|---|---|")
    for name, cost, t_o, cap, t_c, passes, note in rows:
        tc = "-" if t_c is None else f"{t_c:.1f}"
        print(f"| {name} | {cost} | {t_o:.1f} | {cap} | {tc} | {passes} | {note} |")


if __name__ == "__main__":
    main()
