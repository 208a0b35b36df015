"""What every attribution method takes and returns.

A method explains one scalar per input: ``f(x) -> Tensor[N]`` where ``x`` is the normalised
model input ``Tensor[N, 10, H, W]`` (see :mod:`attribute.targets`, which builds ``f`` from the
U-Net and a target region). Methods return an :class:`Attribution`: per-band maps
``[10, H, W]`` when the method has them, 2-D maps by name, the cost actually spent, and
method-specific extras (completeness error, band tables...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from solarmap.errors import InputError

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
