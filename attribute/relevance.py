"""Gradient-weighted attention relevance of a transformer encoder (Chefer et al., CVPR 2021).

For a U-Net whose encoder is segmentation-models-pytorch's Mix Transformer (``mit_b0``, the
``--encoder mit_b0`` of ``solarmap train``), forward hooks keep every attention block's
probabilities ``A`` (``[heads, N queries, M keys]``, the output of its ``attn_drop``) and their
gradients for the scalar target (the region's summed logit). Per block
``Ā = mean_heads(clamp(∇A ⊙ A, 0))``, and within a stage, from the identity,
``R ← R + Ā · R`` block by block (the paper's rule 6 for self-attention).

How Mix Transformer is mapped back to the pixel grid:

- **Reduced keys.** Its efficient self-attention attends from every token to keys pooled by a
  strided convolution (``sr_ratio`` ``r``: one key per ``r × r`` patch of tokens). ``Ā`` is made
  square by spreading each key's column evenly over the ``r²`` tokens of its patch (``Ā[:, j]
  / r²``), so a row keeps its sum and ``R`` stays token-to-token.
- **Four token grids.** The stages see the window at 1/4, 1/8, 1/16 and 1/32, joined by
  overlapping patch embeddings that have no attention to propagate through. Each stage gives a
  map: the target region's tokens (the region averaged onto the stage's grid, weights summing
  to 1) times ``R − I`` (what the region's tokens draw on, the identity's self-relevance left
  out), upsampled bilinearly to the window and scaled to sum 1; the method's map is the mean of
  the four.
- Only the row vector ``q·R`` is needed, so it is built from the last block back
  (``v ← v + (v·Ā)``), never the ``N × N`` matrix: a 256 px window's first stage has 4,096
  tokens.

Written here: Captum has no attention-relevance method, and the rule needs the attention
probabilities that only these hooks see.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from attribute.base import Attribution, Cost, CountingFn, Method, ScalarFn, check_window
from solarmap.errors import InputError

log = logging.getLogger(__name__)

_BLOCK = re.compile(r"(?:^|\.)block(\d+)\.(\d+)\.attn$")


def attention_blocks(model: nn.Module) -> list[tuple[int, str, nn.Module]]:
    """``(stage, name, module)`` of every Mix Transformer attention block, in forward order."""
    found = []
    for name, module in model.named_modules():
        m = _BLOCK.search(name)
        if m and hasattr(module, "attn_drop") and hasattr(module, "sr_ratio"):
            found.append((int(m.group(1)), int(m.group(2)), name, module))
    found.sort(key=lambda t: (t[0], t[1]))
    return [(stage, name, module) for stage, _, name, module in found]


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` has a transformer encoder this module explains."""
    return bool(attention_blocks(model))


def _need_attention(model: nn.Module) -> list[tuple[int, str, nn.Module]]:
    blocks = attention_blocks(model)
    if not blocks:
        raise InputError(
            "attention relevance needs a transformer encoder; train one with "
            "`solarmap train --encoder mit_b0`, or choose another method"
        )
    return blocks


def _dropout_of(module: nn.Module) -> nn.Module:
    """The module whose output is the block's attention probabilities (its ``attn_drop``)."""
    drop = module.attn_drop
    if not isinstance(drop, nn.Module):
        raise InputError(f"{type(module).__name__}: attn_drop is not a module; cannot hook it")
    return drop


def cost_relevance() -> Cost:
    """Passes :func:`attention_relevance` spends: one forward and one backward."""
    return Cost(forward=1, backward=1)


def _stage_map(
    a_bars: list[tuple[torch.Tensor, int]], grid: tuple[int, int], q: torch.Tensor
) -> torch.Tensor:
    """``q · (R − I)`` of one stage (``Tensor[h, w]``), ``R`` from its blocks' ``(Ā, r)``."""
    h, w = grid
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    v = q.clone()
    for a_bar, r in reversed(a_bars):
        keys_w = -(-w // r)
        key_of = (rows // r) * keys_w + cols // r  # the key each token's patch became
        vk = v @ a_bar  # [M]: relevance arriving at each key
        v = v + vk[key_of] / (r * r)  # spread over the r x r tokens of the key's patch
    return (v - q).reshape(h, w)


def attention_relevance(
    model: nn.Module, f: ScalarFn, x: torch.Tensor, *, region: np.ndarray | None = None
) -> Attribution:
    """Attention relevance of ``f`` for a window (see the module's docstring).

    Args:
        model: the U-Net ``f`` calls, with a Mix Transformer encoder, in eval mode.
        f: the explained function, ``Tensor[1, 10, H, W]`` → ``Tensor[1]``.
        x: the normalised window.
        region: ``bool[H, W]`` the target region whose tokens are followed (default: all).

    Returns:
        :class:`Attribution` ``"attention_relevance"``, ``maps["attention_relevance"]``
        ``float32[H, W] >= 0`` summing to 1; ``extra``: ``stages`` (token grids) and
        ``blocks``.

    Raises:
        InputError: for a model without a transformer encoder, or a bad window.
    """
    h, w = check_window(x)
    blocks = _need_attention(model)
    kept: list[tuple[int, nn.Module, torch.Tensor]] = []

    def keep(stage: int, module: nn.Module) -> Any:
        def hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            out.retain_grad()
            kept.append((stage, module, out))

        return hook

    handles = [_dropout_of(m).register_forward_hook(keep(s, m)) for s, _, m in blocks]
    fn = CountingFn(f)
    try:
        inputs = x.detach().clone().requires_grad_(True)  # a graph through frozen weights
        fn(inputs).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    weights = torch.ones(h, w) if region is None else torch.from_numpy(np.asarray(region, bool))
    by_stage: dict[int, list[tuple[torch.Tensor, int]]] = {}
    grids: dict[int, tuple[int, int]] = {}
    for stage, module, attn in kept:
        grad = attn.grad if attn.grad is not None else torch.zeros_like(attn)
        a_bar = (grad * attn).clamp(min=0).mean(dim=1)[0].detach().float()  # [N, M]
        stride = 2 ** (stage + 1)  # Mix Transformer's stages: 1/4, 1/8, 1/16, 1/32
        grids[stage] = (-(-h // stride), -(-w // stride))
        if grids[stage][0] * grids[stage][1] != a_bar.shape[0]:
            raise InputError(
                f"attention block of stage {stage} has {a_bar.shape[0]} tokens, not the "
                f"{grids[stage][0]}x{grids[stage][1]} of a {h}x{w} window at 1/{stride}"
            )
        by_stage.setdefault(stage, []).append((a_bar, int(getattr(module, "sr_ratio", 1))))
    maps = []
    for stage, a_bars in sorted(by_stage.items()):
        gh, gw = grids[stage]
        q = functional.adaptive_avg_pool2d(weights.float()[None, None], (gh, gw))[0, 0].flatten()
        q = q / q.sum().clamp_min(1e-12)
        m = _stage_map(a_bars, (gh, gw), q).clamp(min=0)
        up = functional.interpolate(m[None, None], size=(h, w), mode="bilinear",
                                    align_corners=False)[0, 0].clamp(min=0)  # fmt: skip
        total = up.sum()
        if total > 0:
            maps.append(up / total)
    heat = torch.stack(maps).mean(0) if maps else torch.zeros(h, w)
    log.debug("attention relevance over %d blocks in %d stages", len(kept), len(by_stage))
    return Attribution(
        method="attention_relevance",
        maps={"attention_relevance": heat.numpy().astype(np.float32)},
        cost=Cost(forward=fn.forward, backward=1),
        extra={
            "stages": {str(s): list(g) for s, g in sorted(grids.items())},
            "blocks": len(kept),
        },
    )


#: The methods this module gives the registry.
METHODS: tuple[Method, ...] = (
    Method(
        name="attention_relevance",
        family="gradient",
        summary="transformer attention relevance (Chefer et al. 2021), Mix Transformer encoders "
        "only; 1 forward + 1 backward pass",
        cost=lambda ctx: cost_relevance(),
        run=lambda ctx, f, x: attention_relevance(ctx.model, f, x, region=ctx.region),
        applies=has_attention,
    ),
)
