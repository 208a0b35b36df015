"""Superpixel SHAP: model evaluations needed to match a 10,000-evaluation reference.

Explains one detected object (by default from `solarmap demo`) on the window `solarmap
explain` reads (object plus context), with about 64 SLIC superpixels as players and the zero
reflectance baseline. The reference is antithetic Shapley value sampling with about 10,000
evaluations, made of two independent halves whose agreement is printed as the reference's own
noise. Every estimator then runs at growing budgets, with a few seeds; against the reference it
reports, over the superpixels holding >= 1 % of the total |attribution|: Spearman and Pearson
correlation, and top-10 overlap over all superpixels (by |value|). The last table gives the
evaluations from which the median Spearman stays >= 0.95 at every larger budget tried.

    python benchmarks/bench_shap.py [--checkpoint DIR --scene TIF --predictions GPKG --rank 0]
        [--budgets 128,256,512,1024,2048] [--seeds 3] [--reference 10000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from explain_window import add_window_arguments, load_window
from scipy.stats import pearsonr, spearmanr

from attribute import shapley
from attribute.base import Attribution
from attribute.superpixels import slic_segments

Estimator = Callable[[int, int], Attribution]  # (budget, seed) -> attribution


def scores(est: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """Spearman and Pearson over the superpixels with >= 1 % of Σ|ref|, top-10 overlap."""
    keep = np.abs(ref) >= 0.01 * np.abs(ref).sum()
    rho = float(spearmanr(est[keep], ref[keep]).statistic)
    r = float(pearsonr(est[keep], ref[keep]).statistic)
    top = min(10, ref.size)
    a = set(np.argsort(-np.abs(est))[:top].tolist())
    b = set(np.argsort(-np.abs(ref))[:top].tolist())
    return rho, r, len(a & b) / top


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_window_arguments(ap)
    ap.add_argument("--size", type=int, default=None, help="square window; default: explain's")
    ap.add_argument("--budgets", default="128,256,512,1024,2048")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reference", type=int, default=10_000)
    ap.add_argument("--segments", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    w = load_window(args.checkpoint, args.scene, args.predictions, size=args.size, rank=args.rank)
    x, f, zero, bs = w.x, w.f, w.zero, args.batch
    seg = slic_segments(np.nan_to_num(w.reflectance), n_segments=args.segments)
    k = int(seg.max()) + 1
    print(f"window {tuple(x.shape[-2:])}, object {w.area_ha:.1f} ha, {k} superpixels")

    t = time.perf_counter()
    half = max(1, args.reference // (4 * k))  # antithetic pairs per half: 2·half·k evaluations
    ref_a = shapley.shapley_sampling(f, x, seg, baseline=zero, n_permutations=half,
                                     batch_size=bs, seed=10_001)  # fmt: skip
    ref_b = shapley.shapley_sampling(f, x, seg, baseline=zero, n_permutations=half,
                                     batch_size=bs, seed=10_002)  # fmt: skip
    a_vals = np.array(ref_a.extra["values"])
    b_vals = np.array(ref_b.extra["values"])
    ref = (a_vals + b_vals) / 2
    n_ref = ref_a.cost.forward + ref_b.cost.forward
    t_ref = time.perf_counter() - t
    keep = np.abs(ref) >= 0.01 * np.abs(ref).sum()
    share = np.abs(ref[keep]).sum() / np.abs(ref).sum()
    print(
        f"reference: {n_ref} evaluations in {t_ref:.0f} s ({t_ref / n_ref * 1e3:.1f} ms each); "
        f"{int(keep.sum())} superpixels hold >= 1 % of Σ|φ| ({share:.0%} of it); "
        f"Σφ = {ref.sum():.2f}"
    )
    rho, r, top = scores(a_vals, b_vals)
    print(f"reference halves agree: Spearman {rho:.3f}, Pearson {r:.3f}, top-10 {top:.1f}")

    def perms(budget: int, antithetic: bool) -> int:
        """Permutations (antithetic: pairs) that spend about ``budget`` evaluations."""
        return max(1, budget // (2 * k if antithetic else k))

    estimators: dict[str, Estimator] = {
        "kernel SHAP, independent samples (Captum's sampler)": lambda n, s: shapley.kernel_shap(
            f, x, seg, baseline=zero, n_samples=max(n, k + 2), batch_size=bs, seed=s, paired=False
        ),
        "kernel SHAP, paired samples": lambda n, s: shapley.kernel_shap(
            f, x, seg, baseline=zero, n_samples=max(n, k + 2), batch_size=bs, seed=s, paired=True
        ),
        "Shapley sampling (Captum's)": lambda n, s: shapley.shapley_sampling(
            f, x, seg, baseline=zero, n_permutations=perms(n, False), batch_size=bs, seed=s,
            antithetic=False,
        ),
        "Shapley sampling, antithetic": lambda n, s: shapley.shapley_sampling(
            f, x, seg, baseline=zero, n_permutations=perms(n, True), batch_size=bs, seed=s,
            antithetic=True,
        ),
    }  # fmt: skip
    print()
    print("| estimator | evaluations | Spearman (median) | Pearson | top-10 | s |")
    print("|---|---|---|---|---|---|")
    reached: dict[str, str] = {}
    for name, run in estimators.items():
        for budget in budgets:
            t = time.perf_counter()
            res = [run(budget, seed) for seed in range(args.seeds)]
            sec = (time.perf_counter() - t) / args.seeds
            sc = np.array([scores(np.array(a.extra["values"]), ref) for a in res])
            med = np.median(sc, axis=0)
            evals = res[0].cost.forward
            print(f"| {name} | {evals} | {med[0]:.3f} | {med[1]:.3f} | {med[2]:.1f} | {sec:.1f} |")
            # the smallest budget from which the median stays >= 0.95 at every larger one
            if med[0] < 0.95:
                reached.pop(name, None)
            elif name not in reached:
                reached[name] = str(evals)
    for name, local in (("L-Shapley", shapley.l_shapley), ("C-Shapley", shapley.c_shapley)):
        for radius in (0, 1):
            t = time.perf_counter()
            a = local(f, x, seg, baseline=zero, k=radius, batch_size=bs)
            sec = time.perf_counter() - t
            rho, r, top = scores(np.array(a.extra["values"]), ref)
            label = f"{name} k={radius}"
            print(f"| {label} | {a.cost.forward} | {rho:.3f} | {r:.3f} | {top:.1f} | {sec:.1f} |")
            if rho >= 0.95 and label not in reached:
                reached[label] = str(a.cost.forward)
    print()
    print("evaluations from which the median Spearman stays >= 0.95:")
    for name in [*estimators, "L-Shapley k=0", "L-Shapley k=1", "C-Shapley k=0", "C-Shapley k=1"]:
        print(f"  {name}: {reached.get(name, 'not within the budgets tried')}")


if __name__ == "__main__":
    main()
