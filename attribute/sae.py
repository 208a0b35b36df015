"""A sparse autoencoder on a U-Net layer's activations, and how nameable its features are.

An overcomplete sparse autoencoder is trained on the activation vectors of one layer at every
position of the probe tiles, standardised per channel:

    z = ReLU(W_e (a − b_d) + b_e),   â = W_d z + b_d,   loss ‖a − â‖² + λ‖z‖₁

(or, with ``k`` > 0, top-k codes without the penalty: Makhzani & Frey 2013; Gao et al. 2024),
with unit-norm decoder columns (renormalised after each step) and the encoder started as the
decoder's transpose. ``solarmap concepts --sae`` trains it on the layer it names (the last
decoder block but one by default); the bottleneck is ``decoder.center`` (:data:`BOTTLENECK`).
Its codes are a :class:`~attribute.concepts.FeatureSpace`, so concept naming
(:mod:`attribute.concepts`) names them as it names channels.

:func:`concept_probes` asks whether the codes are cleaner than the channels: every position of
the layer gets the concepts covering at least ``min_cover`` of its cell as labels; a feature's
probe for a concept is the feature's value itself (a one-dimensional linear probe, positive
direction: the feature firing means the concept is there) scored by ROC-AUC on held-out
positions; and per concept a logistic probe on all features at once (codes against channels).

Written here: no maintained library trains sparse autoencoders on convolutional activations
with this interface; torch does the optimisation.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attribute.base import check_ranges
from attribute.concepts import ProbeSet, check_layer, layer_activations
from solarmap.errors import InputError

log = logging.getLogger(__name__)

#: The layer an SAE is trained on when none is given: the encoder's deepest output, as the
#: decoder's centre receives it.
BOTTLENECK = "decoder.center"


@dataclass(frozen=True)
class SaeConfig:
    """How the autoencoder is trained (written beside it).

    Attributes:
        expansion: features per input channel (overcompleteness).
        k: features active per position (top-k); ``0``: no top-k, an L1 penalty instead.
        l1: the L1 penalty's weight on the codes (with ``k`` 0).
        steps: optimiser steps.
        batch_size: positions per step.
        lr: Adam's learning rate.
        held_out: share of positions kept out of training, to measure on.
        seed: of the initialisation, the split and the batches.
    """

    expansion: int = 4
    k: int = 0
    l1: float = 0.1
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    held_out: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (
            ("--sae-expansion", self.expansion, 1 <= self.expansion <= 64, "give 1 to 64"),
            ("--sae-k", self.k, 0 <= self.k <= 4096, "give 0 (L1) to 4096 active features"),
            ("--sae-l1", self.l1, 0 <= self.l1 < 100, "give a weight of 0 or more"),
            ("--sae-steps", self.steps, 1 <= self.steps <= 10**6, "give 1 to 1000000"),
            ("--sae-batch-size", self.batch_size, self.batch_size >= 1, "give 1 or more"),
            ("--sae-lr", self.lr, 0 < self.lr < 1, "give a learning rate in (0, 1)"),
            ("--sae-held-out", self.held_out, 0 < self.held_out < 1, "give a share in (0, 1)"),
        )
        check_ranges(checks)


class SparseAutoencoder(nn.Module):
    """Top-k sparse autoencoder over ``C``-channel activations, ``F`` features.

    ``mean``/``std`` standardise the channels (buffers, saved with the weights).
    """

    name = "sae feature"

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int, features: int, k: int) -> None:
        super().__init__()
        self.k = min(k, features)  # 0: every positive code (an L1-trained autoencoder)
        self.encoder = nn.Linear(channels, features)
        self.decoder = nn.Linear(features, channels)
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        with torch.no_grad():
            w = torch.randn(channels, features)
            self.decoder.weight.copy_(w / w.norm(dim=0, keepdim=True))
            self.encoder.weight.copy_(self.decoder.weight.t())
            self.encoder.bias.zero_()
            self.decoder.bias.zero_()

    @property
    def n_features(self) -> int:
        return int(self.encoder.out_features)

    def standardise(self, a: torch.Tensor) -> torch.Tensor:
        """Activation vectors ``Tensor[P, C]`` in standard units."""
        return (a - self.mean) / self.std

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """Standardised ``Tensor[P, C]`` → codes ``Tensor[P, F]`` (at most ``k`` non-zero)."""
        pre = torch.relu(self.encoder(v - self.decoder.bias))
        if not self.k:
            return pre
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(v)
        return self.decoder(z), z

    def maps(self, a: torch.Tensor) -> torch.Tensor:
        """A layer's ``Tensor[N, C, h, w]`` → code maps ``Tensor[N, F, h, w]`` (the
        :class:`~attribute.concepts.FeatureSpace` of the codes)."""
        n, c, h, w = a.shape
        v = self.standardise(a.permute(0, 2, 3, 1).reshape(-1, c))
        return self.encode(v).reshape(n, h, w, -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def renormalise(self) -> None:
        """Decoder columns back to unit norm (the codes carry the scale)."""
        w = self.decoder.weight
        w /= w.norm(dim=0, keepdim=True).clamp_min(1e-8)


def vectors(acts: torch.Tensor) -> torch.Tensor:
    """``Tensor[N, C, h, w]`` → ``Tensor[N·h·w, C]`` (tile, row, column order)."""
    return acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1])


@dataclass
class SaeResult:
    """A trained autoencoder and how it reconstructs held-out positions.

    Attributes:
        sae: the autoencoder (eval mode).
        layer: the layer it reads.
        fvu: fraction of variance unexplained on held-out positions (standardised units).
        l0: mean number of active features per held-out position.
        dead: share of features never active on any position.
        positions: training and held-out positions.
        held_out: indices of the held-out positions (of the layer's positions).
    """

    sae: SparseAutoencoder
    layer: str
    fvu: float
    l0: float
    dead: float
    positions: int
    held_out: np.ndarray

    def metrics(self) -> dict[str, Any]:
        return {"layer": self.layer, "fvu": self.fvu, "l0": self.l0, "dead": self.dead,
                "positions": self.positions, "features": self.sae.n_features}  # fmt: skip


def train_sae(
    model: nn.Module, probe: ProbeSet, *, layer: str = BOTTLENECK, config: SaeConfig | None = None
) -> SaeResult:
    """Train a sparse autoencoder on ``layer``'s activations over the probe tiles.

    Raises:
        InputError: for an unknown layer, or fewer positions than four per channel.
    """
    cfg = config or SaeConfig()
    module = check_layer(model, layer)
    acts = layer_activations(model, module, probe.x)
    v = vectors(acts)
    p, c = v.shape
    if p < 4 * c:
        raise InputError(
            f"the probe tiles give {p} positions at {layer} ({c} channels); a sparse autoencoder "
            f"needs at least {4 * c}: give more or larger probe scenes, or a finer --layer"
        )
    gen = torch.Generator().manual_seed(cfg.seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(cfg.seed)
    try:
        sae = SparseAutoencoder(c, cfg.expansion * c, cfg.k)
    finally:
        torch.random.set_rng_state(torch_state)
    perm = torch.randperm(p, generator=gen)
    n_test = max(1, round(cfg.held_out * p))
    test, train = perm[:n_test], perm[n_test:]
    with torch.no_grad():
        sae.mean.copy_(v[train].mean(0))
        sae.std.copy_(v[train].std(0).clamp_min(1e-6))
        sae.decoder.bias.copy_(sae.standardise(v[train]).median(0).values)
    data = sae.standardise(v)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    for _ in range(cfg.steps):
        idx = train[torch.randint(len(train), (min(cfg.batch_size, len(train)),), generator=gen)]
        batch = data[idx]
        recon, z = sae(batch)
        loss = ((recon - batch) ** 2).sum(-1).mean()
        if not cfg.k:
            loss = loss + cfg.l1 * z.sum(-1).mean()  # unit-norm decoder columns: a fair L1
        opt.zero_grad()
        loss.backward()
        opt.step()
        sae.renormalise()
    sae.eval()
    for q in sae.parameters():  # trained: attribution needs input gradients only
        q.requires_grad_(False)
    with torch.no_grad():
        recon, z = sae(data[test])
        err = ((recon - data[test]) ** 2).sum(-1).mean()
        var = ((data[test] - data[test].mean(0)) ** 2).sum(-1).mean()
        l0 = float((z > 0).float().sum(-1).mean())
        ever = torch.zeros(sae.n_features, dtype=torch.bool)
        for i in range(0, p, 4096):
            ever |= (sae.encode(data[i : i + 4096]) > 0).any(0)
    res = SaeResult(sae, layer, float(err / var), l0, float(1 - ever.float().mean()), p,
                    test.numpy())  # fmt: skip
    log.info("SAE on %s: %d features, FVU %.3f, L0 %.1f, dead %.0f %%", layer, sae.n_features,
             res.fvu, res.l0, 100 * res.dead)  # fmt: skip
    return res


# --- how well features predict concepts ---------------------------------------------------------


def cell_labels(probe: ProbeSet, cells: tuple[int, int], *, min_cover: float) -> np.ndarray:
    """``bool[N·h·w, K]``: per layer position (``cells`` = ``(h, w)`` per tile) the concepts
    covering at least ``min_cover`` of its valid pixels (none where it has none)."""
    n, k, t, _ = probe.concepts.shape
    h, w = cells
    if t % h or t % w:
        raise InputError(f"tiles of {t} px do not divide into the layer's {h}x{w} cells")
    bh, bw = t // h, t // w
    valid = probe.valid.reshape(n, h, bh, w, bw).sum(axis=(2, 4))
    inside = (probe.concepts & probe.valid[:, None]).reshape(n, k, h, bh, w, bw).sum(axis=(3, 5))
    share = inside / np.maximum(valid, 1)[:, None]
    labels = (share >= min_cover) & (valid[:, None] > 0)
    return labels.transpose(0, 2, 3, 1).reshape(-1, k)


def auc_matrix(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``float[F, K]``: ROC-AUC of each column of ``values`` (``[P, F]``, higher = concept)
    for each label column (``bool[P, K]``), ties counting one half (Mann-Whitney, as
    :func:`train.evaluate.roc_auc`, for all columns at once); NaN where a class is absent."""
    from scipy.stats import rankdata

    ranks = rankdata(values, axis=0)  # [P, F], average ranks for ties
    pos = labels.sum(axis=0).astype(np.float64)  # [K]
    neg = len(labels) - pos
    rank_sum = ranks.T @ labels.astype(np.float64)  # [F, K]
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
    auc[:, (pos == 0) | (neg == 0)] = np.nan
    return auc


def logistic_probe_auc(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    *, steps: int = 300, l2: float = 1e-3,
) -> float:  # fmt: skip
    """Held-out ROC-AUC of an L2-regularised logistic regression (standardised inputs, full
    batch LBFGS in torch)."""
    from train.evaluate import roc_auc

    if y_train.all() or not y_train.any() or y_test.all() or not y_test.any():
        return float("nan")
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.from_numpy(((x_train - mu) / sd).astype(np.float32))
    yt = torch.from_numpy(y_train.astype(np.float32))
    w = torch.zeros(xt.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        score = (torch.from_numpy(((x_test - mu) / sd).astype(np.float32)) @ w + b).numpy()
    return roc_auc(score, y_test.astype(np.uint8))


def concept_probes(
    model: nn.Module,
    probe: ProbeSet,
    result: SaeResult,
    *,
    min_cover: float = 0.25,
    good_auc: float = 0.9,
    min_positives: int = 10,
) -> dict[str, Any]:
    """Codes against channels as concept detectors, on the held-out positions.

    Returns:
        ``per_concept``: per concept the positives, the best single code's and the best single
        channel's ROC-AUC, and the logistic probes' on all codes and on all channels;
        ``sae_features_at_good``/``channels_at_good``: how many codes and channels have a best
        concept AUC of at least ``good_auc``; ``best``: per feature its best concept and AUC.
    """
    module = check_layer(model, result.layer)
    acts = layer_activations(model, module, probe.x)
    v = vectors(acts)
    with torch.no_grad():
        codes = result.sae.encode(result.sae.standardise(v)).numpy()
    channels = v.numpy()
    labels = cell_labels(probe, (int(acts.shape[2]), int(acts.shape[3])), min_cover=min_cover)
    test = np.zeros(len(v), dtype=bool)
    test[result.held_out] = True
    usable = [k for k in range(labels.shape[1])
              if labels[test, k].sum() >= min_positives and labels[~test, k].sum() >= 1
              and (~labels[test, k]).sum() >= min_positives]  # fmt: skip
    auc_codes = auc_matrix(codes[test], labels[test][:, usable])
    auc_chan = auc_matrix(channels[test], labels[test][:, usable])
    per_concept = []
    for j, k in enumerate(usable):
        y_tr, y_te = labels[~test, k], labels[test, k]
        per_concept.append({
            "concept": probe.names[k],
            "positives": int(y_te.sum()),
            "best_sae_feature": _argbest(auc_codes[:, j]),
            "best_sae_feature_auc": _best(auc_codes[:, j]),
            "best_channel": _argbest(auc_chan[:, j]),
            "best_channel_auc": _best(auc_chan[:, j]),
            "probe_sae_auc": logistic_probe_auc(codes[~test], y_tr, codes[test], y_te),
            "probe_channels_auc": logistic_probe_auc(channels[~test], y_tr, channels[test], y_te),
        })  # fmt: skip

    def count(auc: np.ndarray) -> tuple[int, list[dict[str, Any]]]:
        best = np.nanmax(np.where(np.isnan(auc), -np.inf, auc), axis=1) if auc.size else auc
        rows: list[dict[str, Any]] = []
        for f in range(auc.shape[0]):
            if auc.size and np.isfinite(best[f]):
                j = int(np.nanargmax(np.where(np.isnan(auc[f]), -np.inf, auc[f])))
                rows.append({"feature": f, "concept": probe.names[usable[j]],
                             "auc": float(best[f])})  # fmt: skip
        return sum(float(r["auc"]) >= good_auc for r in rows), rows

    n_codes, best_codes = count(auc_codes)
    n_chan, best_chan = count(auc_chan)
    return {
        "layer": result.layer,
        "min_cover": min_cover,
        "good_auc": good_auc,
        "held_out_positions": int(test.sum()),
        "concepts": [probe.names[k] for k in usable],
        "per_concept": per_concept,
        "sae_features": result.sae.n_features,
        "channels": int(channels.shape[1]),
        "sae_features_at_good": n_codes,
        "channels_at_good": n_chan,
        "best_sae": best_codes,
        "best_channels": best_chan,
    }


def _best(col: np.ndarray) -> float | None:
    finite = col[np.isfinite(col)]
    return float(finite.max()) if finite.size else None


def _argbest(col: np.ndarray) -> int | None:
    return int(np.nanargmax(np.where(np.isnan(col), -np.inf, col))) if np.isfinite(col).any() \
        else None  # fmt: skip


def save_sae(result: SaeResult, folder: Path, config: SaeConfig) -> Path:
    """``sae.safetensors`` and ``sae.json`` (configuration, layer, shape, metrics)."""
    from safetensors.torch import save_file

    from solarmap.geo import atomic_path, write_json

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "sae.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in result.sae.state_dict().items()}, str(tmp))
    write_json(folder / "sae.json", {
        "config": asdict(config), **result.metrics(),
        "channels": int(result.sae.encoder.in_features), "k": result.sae.k,
    })  # fmt: skip
    return folder


def load_sae(folder: Path) -> SparseAutoencoder:
    """The autoencoder :func:`save_sae` wrote.

    Raises:
        InputFileError: if the files are missing or unreadable.
    """
    import json

    from safetensors.torch import load_file

    from solarmap.geo import require_file

    meta = json.loads(require_file(folder / "sae.json", "SAE metadata").read_text())
    sae = SparseAutoencoder(int(meta["channels"]), int(meta["features"]), int(meta["k"]))
    sae.load_state_dict(load_file(str(require_file(folder / "sae.safetensors", "SAE weights"))))
    for q in sae.parameters():
        q.requires_grad_(False)
    return sae.eval()
