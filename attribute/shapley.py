"""Superpixel Shapley values (and LIME): the superpixels are the players.

A coalition ``S`` of superpixels is evaluated as ``v(S) = f(x_S)``, where ``x_S`` keeps the
pixels of the superpixels in ``S`` and puts every other pixel at the baseline (all ten bands).

What comes from where:

- :func:`kernel_shap` wraps Captum's :class:`~captum.attr.KernelShap` (its kernel, batching and
  interpretable-to-input transform). Two parts are swapped: Captum's sampler draws from the
  global torch RNG and has no paired option, so a subclass overrides its sampler with a seeded
  one drawing coalition sizes from the same Shapley kernel, optionally in antithetic pairs
  ``(z, 1 - z)``; and Captum fits the regression with scikit-learn, which solarmap does not
  depend on, so the fit is a closed-form weighted least squares in float64 behind Captum's own
  :class:`~captum._utils.models.linear_model.LinearModel` interface.
- :func:`shapley_sampling` is Captum's :class:`~captum.attr.ShapleyValueSampling` with a seeded
  permutation generator plugged into it; ``antithetic=True`` also runs each permutation
  reversed (Captum's evaluation loop unchanged).
- :func:`lime` is Captum's :class:`~captum.attr.Lime` with the superpixel feature mask, a seeded
  sampler and the same least-squares fit (Captum's default Lasso needs scikit-learn). It lives
  here because it shares the superpixel players and the fit.
- :func:`l_shapley`, :func:`c_shapley` (Chen, Song, Wainwright & Jordan, "L-Shapley and
  C-Shapley: efficient model interpretation for structured data", ICLR 2019) and
  :func:`exact_shapley` exist in no library: they are written here, as exact enumeration with
  batched evaluations shared between superpixels (each distinct coalition is evaluated once).

L-Shapley, as in the paper: the graph is superpixel adjacency, ``N_k(i)`` the superpixels within
``k`` hops of ``i``, and ``phi_i`` is the Shapley value of ``i`` in the game restricted to the
players ``N_k(i)``::

    phi_i = sum_{S ⊆ N_k(i) minus i} [v(S ∪ {i}) - v(S)] / (|N_k(i)| · C(|N_k(i)| - 1, |S|))

where ``v(S)`` keeps only ``S`` (and ``i``) present: every superpixel outside ``S ∪ {i}``,
including those outside the neighbourhood, is at the baseline (the paper's ``x_S``: only the
features of ``S`` are kept). With ``k`` covering the whole graph it is the exact Shapley value.

C-Shapley sums over the *connected* subsets ``U ⊆ N_k(i)`` that contain ``i`` only::

    phi_i = sum_U w(U) [v(U) - v(U minus i)]

The paper's weight ``2 / ((|U|+2)(|U|+1)|U|)`` is derived on a chain (sequences), where every
interior ``U`` has two boundary nodes. On a general graph (superpixels) the same derivation gives
``w(U) = (|U|-1)! b! / (|U|+b)!`` with ``b`` the number of nodes of ``N_k(i)`` adjacent to ``U``
but outside it: the chance, in a random order of ``N_k(i)``, that ``U minus i`` all come before
``i`` and its boundary all after. These weights sum to one, so C-Shapley is exact whenever a
superpixel's marginal contribution depends only on its connected component (e.g. any additive
model), for any ``k``; on a chain interior they equal the paper's. ``weights="paper"`` uses the
paper's formula verbatim. At ``k = 1`` every subset of ``N_1(i)`` holding ``i`` is connected and
``b = |N_1(i)| - |U|``, so C-Shapley equals L-Shapley there; it saves evaluations from ``k = 2``
on, where on a superpixel graph the connected subsets still grow fast (64 SLIC superpixels:
about 4,800 evaluations at ``k = 1``, over a million at ``k = 2``), hence the caps.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
from captum._utils.models.linear_model import LinearModel
from captum.attr import KernelShap, Lime, ShapleyValueSampling
from torch.utils.data import DataLoader

from attribute.base import (
    Attribution,
    Baseline,
    Cost,
    CountingFn,
    Method,
    MethodContext,
    Option,
    ScalarFn,
    Settings,
    baseline_tensor,
    check_batch_size,
    check_window,
)
from attribute.superpixels import adjacency, check_segments, paint
from solarmap.errors import InputError

log = logging.getLogger(__name__)

#: Most superpixels :func:`exact_shapley` enumerates (``2**K`` evaluations).
EXACT_MAX_SEGMENTS = 12
#: Default cap on the evaluations of L-/C-Shapley.
MAX_EVALUATIONS = 16384

CWeights = Literal["boundary", "paper"]


# --------------------------------------------------------------------------- shared machinery


class _SegmentGame:
    """``v(S)`` for coalitions of superpixels, evaluated in batches of ``batch_size``."""

    def __init__(
        self,
        f: ScalarFn,
        x: torch.Tensor,
        segments: np.ndarray,
        baseline: Baseline,
        batch_size: int,
    ) -> None:
        h, w = check_window(x)
        self.k = check_segments(segments, (h, w))
        self.batch = check_batch_size(batch_size)
        self.fn = CountingFn(f)
        self.x = x.detach()
        self.base = baseline_tensor(baseline, self.x)
        self.seg = torch.as_tensor(np.asarray(segments), dtype=torch.long, device=x.device)

    def values(self, present: np.ndarray) -> np.ndarray:
        """``bool[M, K]`` coalitions → ``float64[M]`` values."""
        out = []
        with torch.no_grad():
            for start in range(0, present.shape[0], self.batch):
                z = torch.as_tensor(present[start : start + self.batch], device=self.x.device)
                keep = z[:, self.seg][:, None]  # [b, 1, H, W]
                out.append(self.fn(torch.where(keep, self.x, self.base)).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def feature_mask(self) -> torch.Tensor:
        """The labels as Captum's feature mask ``[1, 1, H, W]``."""
        return self.seg[None, None]


def _result(
    method: str, segments: np.ndarray, values: np.ndarray, game: _SegmentGame, **extra: Any
) -> Attribution:
    vals = np.asarray(values, dtype=np.float64).ravel()
    return Attribution(
        method=method,
        maps={method: paint(segments, vals)},
        cost=Cost(forward=game.fn.forward),
        extra={"values": [float(v) for v in vals], "segments": int(vals.size), **extra},
    )


def _popcount(a: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a.astype(np.uint64)).astype(np.int64)


def _shapley_weights(n: int) -> np.ndarray:
    """``w[s] = s! (n-1-s)! / n!``: weight of a coalition of size ``s`` not holding the player."""
    return np.array([1.0 / (n * math.comb(n - 1, s)) for s in range(n)])


def _shapley_from_table(v: np.ndarray, n: int, players: Sequence[int]) -> np.ndarray:
    """Exact Shapley values of ``players`` from ``v[mask]`` over all ``2**n`` bit masks."""
    masks = np.arange(2**n, dtype=np.int64)
    weights = _shapley_weights(n)[_popcount(masks).clip(max=n - 1)]
    phi = np.empty(len(players))
    for t, p in enumerate(players):
        without = masks[((masks >> p) & 1) == 0]
        phi[t] = float(np.sum(weights[without] * (v[without | (1 << p)] - v[without])))
    return phi


def _local_rows(n: int) -> np.ndarray:
    """All ``2**n`` subsets of ``n`` local players as ``bool[2**n, n]`` (row ``m`` = bit mask)."""
    return ((np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n)) & 1).astype(bool)


def _ints_to_rows(masks: Sequence[int], n: int) -> np.ndarray:
    """Python-int bit masks over ``n`` local players → ``bool[len(masks), n]``."""
    nbytes = max(1, (n + 7) // 8)
    raw = b"".join(m.to_bytes(nbytes, "little") for m in masks)
    bits = np.unpackbits(
        np.frombuffer(raw, dtype=np.uint8).reshape(len(masks), nbytes), axis=1, bitorder="little"
    )
    return bits[:, :n].astype(bool)


def _neighbourhoods(adj: list[set[int]], k: int) -> list[np.ndarray]:
    """Superpixels within ``k`` hops of each superpixel (itself included), sorted."""
    n = len(adj)
    a = np.zeros((n, n), dtype=bool)
    for i, nbrs in enumerate(adj):
        a[i, list(nbrs)] = True
    reach = np.eye(n, dtype=bool)
    for _ in range(k):
        grown = reach | ((reach.astype(np.int32) @ a.astype(np.int32)) > 0)
        if np.array_equal(grown, reach):
            break
        reach = grown
    return [np.flatnonzero(row) for row in reach]


class _Plan:
    """Distinct coalitions to evaluate and how each superpixel's value is read from them."""

    def __init__(self, k_segments: int) -> None:
        self.k = k_segments
        self.packed: list[np.ndarray] = []
        self.items: list[tuple[int, int, int, np.ndarray]] = []  # (i, start, stop, payload)
        self.rows = 0

    def add(self, i: int, nb: np.ndarray, local: np.ndarray, payload: np.ndarray) -> None:
        full = np.zeros((local.shape[0], self.k), dtype=bool)
        full[:, nb] = local
        self.packed.append(np.packbits(full, axis=1))
        self.items.append((i, self.rows, self.rows + local.shape[0], payload))
        self.rows += local.shape[0]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Unique coalitions ``bool[U, K]`` and, per planned row, its index into them."""
        packed = np.concatenate(self.packed)
        uniq, inverse = np.unique(packed, axis=0, return_inverse=True)
        rows = np.unpackbits(uniq, axis=1, count=self.k).astype(bool)
        return rows, inverse.ravel()


def _check_k(k: int) -> int:
    if int(k) < 0:
        raise InputError(f"neighbourhood radius k={k} < 0; give k >= 0 hops")
    return int(k)


def _too_many(method: str, what: str, n: int, cap: int) -> InputError:
    return InputError(
        f"{method} needs {n:,} evaluations for {what}, more than max_evaluations={cap:,}; "
        "use a smaller k, fewer superpixels, or raise max_evaluations"
    )


# --------------------------------------------------------------------------- L- and C-Shapley


def _plan_l_shapley(segments: np.ndarray, k: int, max_evaluations: int) -> _Plan:
    k = _check_k(k)
    n_seg = check_segments(segments)
    hoods = _neighbourhoods(adjacency(segments), k)
    plan = _Plan(n_seg)
    for i, nb in enumerate(hoods):
        if 2 ** len(nb) > max_evaluations:
            raise _too_many(
                "L-Shapley",
                f"superpixel {i}'s {len(nb)}-superpixel neighbourhood",
                2 ** len(nb),
                max_evaluations,
            )
        plan.add(i, nb, _local_rows(len(nb)), nb)
    return plan


def _connected_sets(adj: list[int], root: int, limit: int) -> list[tuple[int, int]]:
    """Connected vertex sets containing ``root`` as ``(bit mask, boundary size)`` pairs.

    ``adj[j]`` is the neighbour bit mask of local vertex ``j``. Each set is produced once: the
    search grows a set by one frontier vertex at a time and, after exploring a vertex, forbids it
    to the later branches. Raises ``OverflowError`` past ``limit`` sets.
    """
    out: list[tuple[int, int]] = []

    def grow(sub: int, reach: int, frontier: int, excluded: int) -> None:
        out.append((sub, (reach & ~sub).bit_count()))
        if len(out) > limit:
            raise OverflowError
        while frontier:
            low = frontier & -frontier
            frontier ^= low
            j = low.bit_length() - 1
            new_sub = sub | low
            grow(new_sub, reach | adj[j], (frontier | adj[j]) & ~new_sub & ~excluded, excluded)
            excluded |= low

    start = 1 << root
    grow(start, adj[root], adj[root] & ~start, start)
    return out


def _c_weight(size: int, boundary: int, weights: CWeights) -> float:
    if weights == "paper":
        return 2.0 / ((size + 2) * (size + 1) * size)
    return 1.0 / (size * math.comb(size + boundary, size))


def _plan_c_shapley(segments: np.ndarray, k: int, max_evaluations: int, weights: CWeights) -> _Plan:
    if weights not in ("boundary", "paper"):
        raise InputError(f"unknown C-Shapley weights {weights!r}; choose boundary or paper")
    k = _check_k(k)
    n_seg = check_segments(segments)
    adj = adjacency(segments)
    hoods = _neighbourhoods(adj, k)
    plan = _Plan(n_seg)
    for i, nb in enumerate(hoods):
        pos = {int(s): t for t, s in enumerate(nb)}
        local_adj = [sum(1 << pos[j] for j in adj[int(s)] if j in pos) for s in nb]
        root = pos[i]
        try:
            sets = _connected_sets(local_adj, root, max_evaluations // 2)
        except OverflowError:
            raise InputError(
                f"C-Shapley needs more than max_evaluations={max_evaluations:,} evaluations for "
                f"superpixel {i}'s connected subsets (k={k}); use a smaller k, fewer "
                "superpixels, or raise max_evaluations"
            ) from None
        masks = [m for m, _ in sets] + [m & ~(1 << root) for m, _ in sets]
        w = np.array([_c_weight(m.bit_count(), b, weights) for m, b in sets])
        plan.add(i, nb, _ints_to_rows(masks, len(nb)), w)
    return plan


def _check_total(method: str, rows: np.ndarray, max_evaluations: int) -> None:
    if rows.shape[0] > max_evaluations:
        raise _too_many(method, "all superpixels", rows.shape[0], max_evaluations)


def cost_l_shapley(
    segments: np.ndarray, *, k: int = 1, max_evaluations: int = MAX_EVALUATIONS
) -> Cost:
    """Passes :func:`l_shapley` spends: the distinct coalitions of all neighbourhoods.

    Raises:
        InputError: as :func:`l_shapley`.
    """
    rows, _ = _plan_l_shapley(segments, k, max_evaluations).finish()
    _check_total("L-Shapley", rows, max_evaluations)
    return Cost(forward=rows.shape[0])


def l_shapley(
    f: ScalarFn,
    x: torch.Tensor,
    segments: np.ndarray,
    *,
    baseline: Baseline = 0.0,
    k: int = 1,
    batch_size: int = 16,
    max_evaluations: int = MAX_EVALUATIONS,
) -> Attribution:
    """L-Shapley: each superpixel's exact Shapley value within its ``k``-hop neighbourhood.

    Args:
        f: explained function, ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: normalised window ``Tensor[1, 10, H, W]``.
        segments: ``int[H, W]`` superpixel labels ``0..K-1`` (:func:`slic_segments`).
        baseline: what absent superpixels become (see :data:`attribute.ablation.Baseline`).
        k: neighbourhood radius in adjacency hops (0 = the superpixel alone).
        batch_size: inputs per forward pass.
        max_evaluations: cap on the evaluations of one neighbourhood and of the whole run.

    Returns:
        :class:`Attribution` ``"l_shapley"``: ``maps["l_shapley"]`` the values painted on the
        superpixels; ``extra``: ``values`` (one per superpixel), ``segments``, ``k``.

    Raises:
        InputError: for wrong inputs, or when a neighbourhood (``2**|N_k(i)|`` subsets) or
            the whole run needs more than ``max_evaluations`` evaluations.
    """
    game = _SegmentGame(f, x, segments, baseline, batch_size)
    plan = _plan_l_shapley(segments, k, max_evaluations)
    rows, inverse = plan.finish()
    _check_total("L-Shapley", rows, max_evaluations)
    v = game.values(rows)
    phi = np.zeros(game.k)
    for i, start, stop, nb in plan.items:
        phi[i] = _shapley_from_table(
            v[inverse[start:stop]], len(nb), [int(np.searchsorted(nb, i))]
        )[0]
    return _result("l_shapley", segments, phi, game, k=int(k))


def cost_c_shapley(
    segments: np.ndarray,
    *,
    k: int = 1,
    max_evaluations: int = MAX_EVALUATIONS,
    weights: CWeights = "boundary",
) -> Cost:
    """Passes :func:`c_shapley` spends: the distinct coalitions ``U`` and ``U minus i``.

    Raises:
        InputError: as :func:`c_shapley`.
    """
    rows, _ = _plan_c_shapley(segments, k, max_evaluations, weights).finish()
    _check_total("C-Shapley", rows, max_evaluations)
    return Cost(forward=rows.shape[0])


def c_shapley(
    f: ScalarFn,
    x: torch.Tensor,
    segments: np.ndarray,
    *,
    baseline: Baseline = 0.0,
    k: int = 1,
    batch_size: int = 16,
    max_evaluations: int = MAX_EVALUATIONS,
    weights: CWeights = "boundary",
) -> Attribution:
    """C-Shapley: marginal contributions to the connected superpixel sets around each one.

    Args:
        f: explained function, ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: normalised window ``Tensor[1, 10, H, W]``.
        segments: ``int[H, W]`` superpixel labels ``0..K-1``.
        baseline: what absent superpixels become.
        k: neighbourhood radius in adjacency hops.
        batch_size: inputs per forward pass.
        max_evaluations: cap on the evaluations of one neighbourhood and of the whole run.
        weights: ``"boundary"`` (default; the paper's derivation on the superpixel graph, see
            the module docstring) or ``"paper"`` (``2 / ((|U|+2)(|U|+1)|U|)``, chain graphs).

    Returns:
        :class:`Attribution` ``"c_shapley"`` with the painted values; ``extra``: ``values``,
        ``segments``, ``k``, ``weights``.

    Raises:
        InputError: for wrong inputs or unknown weights, or when the connected subsets exceed
            ``max_evaluations``.
    """
    game = _SegmentGame(f, x, segments, baseline, batch_size)
    plan = _plan_c_shapley(segments, k, max_evaluations, weights)
    rows, inverse = plan.finish()
    _check_total("C-Shapley", rows, max_evaluations)
    v = game.values(rows)
    phi = np.zeros(game.k)
    for i, start, stop, w in plan.items:
        vals = v[inverse[start:stop]]
        with_i, without_i = vals[: w.size], vals[w.size :]
        phi[i] = float(np.sum(w * (with_i - without_i)))
    return _result("c_shapley", segments, phi, game, k=int(k), weights=weights)


# --------------------------------------------------------------------------- exact Shapley


def cost_exact_shapley(n_segments: int) -> Cost:
    """Passes :func:`exact_shapley` spends: ``2**K``.

    Raises:
        InputError: for more than :data:`EXACT_MAX_SEGMENTS` superpixels.
    """
    if n_segments > EXACT_MAX_SEGMENTS:
        raise InputError(
            f"exact Shapley over {n_segments} superpixels needs 2**{n_segments} evaluations; "
            f"use at most {EXACT_MAX_SEGMENTS} superpixels or a sampling method"
        )
    return Cost(forward=2**n_segments)


def exact_shapley(
    f: ScalarFn,
    x: torch.Tensor,
    segments: np.ndarray,
    *,
    baseline: Baseline = 0.0,
    batch_size: int = 16,
) -> Attribution:
    """Exact superpixel Shapley values by enumerating all ``2**K`` coalitions (references, tests).

    Returns:
        :class:`Attribution` ``"exact_shapley"``; ``extra``: ``values``, ``segments``,
        ``f_x`` (all present), ``f_baseline`` (all absent).

    Raises:
        InputError: for wrong inputs or more than :data:`EXACT_MAX_SEGMENTS` superpixels.
    """
    game = _SegmentGame(f, x, segments, baseline, batch_size)
    cost_exact_shapley(game.k)
    v = game.values(_local_rows(game.k))
    phi = _shapley_from_table(v, game.k, range(game.k))
    return _result("exact_shapley", segments, phi, game, f_x=float(v[-1]), f_baseline=float(v[0]))


# --------------------------------------------------------------------------- Captum wrappers


def _fit_weighted_least_squares(
    model: LinearModel, dataloader: DataLoader, construct_kwargs: dict[str, Any], **kwargs: Any
) -> dict[str, float]:
    """Captum ``train_fn``: closed-form weighted least squares with intercept, in float64.

    Written here because Captum's exact fits call scikit-learn (not a solarmap dependency) and its
    torch fits are SGD (approximate). Rank-deficient designs get the minimum-norm solution.
    """
    xs, ys, ws = [], [], []
    for batch in dataloader:
        xs.append(batch[0])
        ys.append(batch[1])
        ws.append(batch[2] if len(batch) > 2 else torch.ones(len(batch[0])))
    X = torch.cat(xs).double().cpu()
    y = torch.cat(ys).double().cpu().reshape(-1, 1)
    sw = torch.cat(ws).double().cpu().reshape(-1, 1).clamp(min=0).sqrt()
    design = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1) * sw
    sol = torch.linalg.lstsq(design, y * sw, driver="gelsd").solution[:, 0]
    model._construct_model_params(
        norm_type=None,
        weight_values=sol[:-1].float().reshape(1, -1),
        bias_value=sol[-1:].float(),
    )
    residual = (design @ sol.reshape(-1, 1) - y * sw).square().sum()
    return {"weighted_sse": float(residual)}


def _linear_model() -> LinearModel:
    return LinearModel(train_fn=_fit_weighted_least_squares)


class _SeededKernelShap(KernelShap):
    """Captum KernelShap with a seeded sampler (same kernel), optionally antithetic pairs."""

    def __init__(self, forward_func: Callable[..., torch.Tensor], *, seed: int, paired: bool):
        super().__init__(forward_func)
        self.interpretable_model = _linear_model()
        self._rng = np.random.default_rng(seed)
        self._paired = paired

    def kernel_shap_perturb_generator(
        self, original_inp: Any, **kwargs: Any
    ) -> Iterator[torch.Tensor]:
        m = int(kwargs["num_interp_features"])
        device = original_inp.device if isinstance(original_inp, torch.Tensor) else "cpu"
        yield torch.ones(1, m, device=device, dtype=torch.long)
        yield torch.zeros(1, m, device=device, dtype=torch.long)
        sizes = np.arange(1, m)
        p = (m - 1) / (sizes * (m - sizes))  # Shapley kernel over coalition sizes (as Captum)
        p = p / p.sum()
        while True:
            z = np.zeros(m, dtype=np.int64)
            z[self._rng.permutation(m)[: self._rng.choice(sizes, p=p)]] = 1
            yield torch.as_tensor(z, device=device)[None]
            if self._paired:
                yield torch.as_tensor(1 - z, device=device)[None]


def _fit_surrogate(explainer: KernelShap | Lime, game: _SegmentGame, n_samples: int) -> np.ndarray:
    """Run a Captum surrogate explainer over the superpixels; its coefficients ``float64[K]``."""
    # fork_rng: Captum fits through a DataLoader, whose iterator draws from the global RNG.
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        coefs = explainer.attribute(
            game.x,
            baselines=game.base,
            feature_mask=game.feature_mask(),
            n_samples=int(n_samples),
            perturbations_per_eval=game.batch,
            return_input_shape=False,
        )
    return coefs.detach().double().cpu().numpy().ravel()


def cost_kernel_shap(n_samples: int) -> Cost:
    """Passes :func:`kernel_shap` spends: ``n_samples`` (the all-present and all-absent
    coalitions included)."""
    return Cost(forward=int(n_samples))


def kernel_shap(
    f: ScalarFn,
    x: torch.Tensor,
    segments: np.ndarray,
    *,
    baseline: Baseline = 0.0,
    n_samples: int = 256,
    batch_size: int = 16,
    seed: int = 0,
    paired: bool = True,
) -> Attribution:
    """Kernel SHAP over superpixels (Captum KernelShap, seeded and optionally paired sampling).

    Args:
        f: explained function, ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: normalised window ``Tensor[1, 10, H, W]``.
        segments: ``int[H, W]`` superpixel labels ``0..K-1``.
        baseline: what absent superpixels become.
        n_samples: coalitions evaluated (the first two are all-present and all-absent).
        batch_size: inputs per forward pass.
        seed: sampler seed (the global torch RNG is not touched).
        paired: draw coalitions in antithetic pairs ``(z, 1 - z)``.

    Returns:
        :class:`Attribution` ``"kernel_shap"``; ``extra``: ``values``, ``segments``,
        ``n_samples``, ``paired``.

    Raises:
        InputError: for wrong inputs, fewer than 2 superpixels, or ``n_samples < K + 2``.
    """
    game = _SegmentGame(f, x, segments, baseline, batch_size)
    if game.k < 2:
        raise InputError("Kernel SHAP needs at least 2 superpixels; ask SLIC for more")
    if n_samples < game.k + 2:
        raise InputError(
            f"Kernel SHAP with {game.k} superpixels needs n_samples >= {game.k + 2}, "
            f"got {n_samples}; raise n_samples"
        )
    explainer = _SeededKernelShap(game.fn, seed=seed, paired=paired)
    phi = _fit_surrogate(explainer, game, n_samples)
    return _result("kernel_shap", segments, phi, game, n_samples=int(n_samples), paired=paired)


def _permutation_generator(
    seed: int, antithetic: bool
) -> Callable[[int, int], Iterator[list[int]]]:
    gen = torch.Generator().manual_seed(int(seed))

    def permutations(num_features: int, num_samples: int) -> Iterator[list[int]]:
        done = 0
        while done < num_samples:
            perm = torch.randperm(num_features, generator=gen).tolist()
            yield perm
            done += 1
            if antithetic and done < num_samples:
                yield perm[::-1]
                done += 1

    return permutations


def cost_shapley_sampling(n_segments: int, n_permutations: int, *, antithetic: bool = True) -> Cost:
    """Passes :func:`shapley_sampling` spends: ``1 + permutations × K`` (reversed ones count)."""
    total = int(n_permutations) * (2 if antithetic else 1)
    return Cost(forward=1 + total * int(n_segments))


def shapley_sampling(
    f: ScalarFn,
    x: torch.Tensor,
    segments: np.ndarray,
    *,
    baseline: Baseline = 0.0,
    n_permutations: int = 16,
    batch_size: int = 16,
    seed: int = 0,
    antithetic: bool = True,
) -> Attribution:
    """Permutation-sampling Shapley values over superpixels (Captum ShapleyValueSampling).

    Args:
        f: explained function, ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: normalised window ``Tensor[1, 10, H, W]``.
        segments: ``int[H, W]`` superpixel labels ``0..K-1``.
        baseline: what absent superpixels become.
        n_permutations: random permutations drawn.
        batch_size: inputs per forward pass (batches do not span permutations).
        seed: permutation seed (the global torch RNG is not touched).
        antithetic: also run each permutation reversed (doubles the cost; every superpixel is
            then seen both early and late in the order).

    Returns:
        :class:`Attribution` ``"shapley_sampling"``; ``extra``: ``values``, ``segments``,
        ``permutations`` (total, reversed included), ``antithetic``.

    Raises:
        InputError: for wrong inputs or ``n_permutations < 1``.
    """
    game = _SegmentGame(f, x, segments, baseline, batch_size)
    if n_permutations < 1:
        raise InputError(f"n_permutations {n_permutations} < 1; draw at least one permutation")
    total = int(n_permutations) * (2 if antithetic else 1)
    explainer = ShapleyValueSampling(game.fn)
    explainer.permutation_generator = _permutation_generator(seed, antithetic)
    with torch.no_grad():
        attr = explainer.attribute(
            game.x,
            baselines=game.base,
            feature_mask=game.feature_mask(),
            n_samples=total,
            perturbations_per_eval=game.batch,
        )
    per_pixel = attr[0, 0].double().cpu().numpy()
    seg = np.asarray(segments)
    # Every pixel of a superpixel carries its value; read one pixel per superpixel.
    first = np.unique(seg.ravel(), return_index=True)[1]
    phi = per_pixel.ravel()[first]
    return _result(
        "shapley_sampling", segments, phi, game, permutations=total, antithetic=antithetic
    )


def cost_lime(n_samples: int) -> Cost:
    """Passes :func:`lime` spends: ``n_samples``."""
    return Cost(forward=int(n_samples))


def lime(
    f: ScalarFn,
    x: torch.Tensor,
    segments: np.ndarray,
    *,
    baseline: Baseline = 0.0,
    n_samples: int = 256,
    batch_size: int = 16,
    seed: int = 0,
) -> Attribution:
    """LIME over superpixels (Captum Lime: its cosine exponential kernel, uniform coalitions).

    The surrogate is a weighted linear regression (exact least squares, no Lasso: see the module
    docstring), so for an additive ``f`` its coefficients are the Shapley values.

    Args:
        f: explained function, ``Tensor[N, 10, H, W]`` → ``Tensor[N]``.
        x: normalised window ``Tensor[1, 10, H, W]``.
        segments: ``int[H, W]`` superpixel labels ``0..K-1``.
        baseline: what absent superpixels become.
        n_samples: coalitions evaluated, each superpixel present with probability 1/2.
        batch_size: inputs per forward pass.
        seed: sampler seed.

    Returns:
        :class:`Attribution` ``"lime"``; ``extra``: ``values``, ``segments``, ``n_samples``.

    Raises:
        InputError: for wrong inputs or ``n_samples < K + 1``.
    """
    game = _SegmentGame(f, x, segments, baseline, batch_size)
    if n_samples < game.k + 1:
        raise InputError(
            f"LIME with {game.k} superpixels needs n_samples >= {game.k + 1}, got {n_samples}; "
            "raise n_samples"
        )
    rng = np.random.default_rng(seed)

    def coalitions(original_inp: Any, **kwargs: Any) -> Iterator[torch.Tensor]:
        m = int(kwargs["num_interp_features"])
        while True:
            yield torch.as_tensor(rng.integers(0, 2, size=(1, m)), device=game.x.device)

    explainer = Lime(game.fn, interpretable_model=_linear_model(), perturb_func=coalitions)
    phi = _fit_surrogate(explainer, game, n_samples)
    return _result("lime", segments, phi, game, n_samples=int(n_samples))


#: The options this module owns.
OPTIONS: tuple[Option, ...] = (
    Option("n_segments", 64, "Superpixel methods: SLIC superpixels per window.", least=2),
    Option("shap_samples", 512, "KernelSHAP / LIME: coalitions evaluated.", least=1),
    # antithetic pairs: 8 x 2 x 64 superpixels ~ 1,000 evaluations, where the ranking of the
    # superpixels that matter settled (Spearman >= 0.95) in benchmarks/bench_shap.py
    Option("shapley_permutations", 8, "Shapley sampling: antithetic permutation pairs.", least=1),
    Option("l_shapley_k", 1, "L-/C-Shapley: neighbourhood radius in superpixels.", least=0),
)


def _check_sampled(settings: Settings) -> None:
    if settings["shap_samples"] < settings["n_segments"] + 2:
        raise InputError(
            f"--shap-samples {settings['shap_samples']} is too small for "
            f"{settings['n_segments']} superpixels: KernelSHAP and LIME need at least "
            "n_segments + 2 evaluations"
        )


def _sampled(name: str, summary: str) -> Method:
    fit = kernel_shap if name == "kernel_shap" else lime
    cost = cost_kernel_shap if name == "kernel_shap" else cost_lime
    return Method(
        name=name,
        family="superpixel",
        summary=summary,
        cost=lambda ctx: cost(ctx.settings["shap_samples"]),
        run=lambda ctx, f, x: fit(
            f,
            x,
            ctx.segments(),
            baseline=ctx.baseline,
            n_samples=ctx.settings["shap_samples"],
            batch_size=ctx.settings.batch_size,
            seed=ctx.settings.seed,
        ),
        options=("n_segments", "shap_samples"),
        check=_check_sampled,
    )


def _local(name: str, summary: str) -> Method:
    fn = l_shapley if name == "l_shapley" else c_shapley
    cost = cost_l_shapley if name == "l_shapley" else cost_c_shapley
    return Method(
        name=name,
        family="superpixel",
        summary=summary,
        cost=lambda ctx: cost(ctx.segments(), k=ctx.settings["l_shapley_k"]),
        run=lambda ctx, f, x: fn(
            f,
            x,
            ctx.segments(),
            baseline=ctx.baseline,
            k=ctx.settings["l_shapley_k"],
            batch_size=ctx.settings.batch_size,
        ),
        options=("n_segments", "l_shapley_k"),
    )


def _shapley_sampling(ctx: MethodContext, f: ScalarFn, x: torch.Tensor) -> Attribution:
    return shapley_sampling(
        f,
        x,
        ctx.segments(),
        baseline=ctx.baseline,
        n_permutations=ctx.settings["shapley_permutations"],
        batch_size=ctx.settings.batch_size,
        seed=ctx.settings.seed,
    )


#: The methods this module gives the registry.
METHODS: tuple[Method, ...] = (
    _sampled(
        "kernel_shap",
        "KernelSHAP over superpixels, paired coalitions; shap_samples forward passes (512)",
    ),
    Method(
        name="shapley_sampling",
        family="superpixel",
        summary="Shapley values by antithetic permutations; 1 + 2 x permutations x superpixels "
        "forward passes (about 1,000)",
        cost=lambda ctx: cost_shapley_sampling(
            int(ctx.segments().max()) + 1, ctx.settings["shapley_permutations"]
        ),
        run=_shapley_sampling,
        options=("n_segments", "shapley_permutations"),
    ),
    _local(
        "l_shapley",
        "L-Shapley, exact within each superpixel's neighbourhood; 4,000-10,000 forward passes",
    ),
    _local(
        "c_shapley",
        "C-Shapley over connected coalitions; 4,000-10,000 forward passes",
    ),
    _sampled("lime", "LIME over superpixels, weighted linear fit; shap_samples forward passes"),
)
