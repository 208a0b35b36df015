"""The method registry: every attribution method by name, with its family, options and cost.

Each method module declares ``METHODS`` (:class:`~attribute.base.Method` records) and, when it
has options of its own, ``OPTIONS`` (:class:`~attribute.base.Option`); this module collects
them from :data:`MODULES`. :func:`attribute.explain.explain_scene`, ``solarmap explain`` (its
flags, ``--methods`` and ``--help``) and the budget checks all read the registry, so a new
method is one module plus one entry in :data:`MODULES` (or one :func:`register` call).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

from attribute import (
    ablation,
    gradcam,
    gradients,
    integrated_gradients,
    occlusion,
    relevance,
    shapley,
)
from attribute.base import FAMILIES, Method, Option
from solarmap.errors import InputError

#: The modules that declare the built-in methods, cheapest family first.
MODULES: tuple[ModuleType, ...] = (
    gradients,
    integrated_gradients,
    gradcam,
    relevance,
    occlusion,
    ablation,
    shapley,
)

#: Every method by name, in the order ``--help`` lists them.
REGISTRY: dict[str, Method] = {}
#: Every method option by name.
OPTIONS: dict[str, Option] = {}

#: What ``solarmap explain`` runs when no method is named: the cheap, exact-ish gradient ones.
DEFAULT_METHODS: tuple[str, ...] = ("saliency", "input_x_gradient", "integrated_gradients")


def register(method: Method, options: Iterable[Option] = ()) -> Method:
    """Add a method (and the options it declares) to the registry.

    Raises:
        InputError: when the name is taken, the family is unknown, an option is declared twice
            or the method reads an option nobody declares.
    """
    if method.name in REGISTRY or method.name in FAMILIES or method.name == "all":
        raise InputError(f"method name {method.name!r} is taken; choose another")
    if method.family not in FAMILIES:
        raise InputError(f"method {method.name}: family {method.family!r} is not one of {FAMILIES}")
    for opt in options:
        if opt.name in OPTIONS and OPTIONS[opt.name] != opt:
            raise InputError(f"option {opt.name!r} is declared twice")
        OPTIONS[opt.name] = opt
    missing = [o for o in method.options if o not in OPTIONS]
    if missing:
        raise InputError(f"method {method.name} reads undeclared option(s) {', '.join(missing)}")
    REGISTRY[method.name] = method
    return method


def _register_modules(modules: Sequence[ModuleType]) -> None:
    for module in modules:
        options: tuple[Option, ...] = getattr(module, "OPTIONS", ())
        for method in module.METHODS:
            register(method, options)
            options = ()


_register_modules(MODULES)


def method_names(family: str | None = None) -> tuple[str, ...]:
    """Registered method names, of one family when given."""
    return tuple(n for n, m in REGISTRY.items() if family is None or m.family == family)


def resolve_methods(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Method names from ``--methods``: names, family names (``gradient``, ``perturbation``,
    ``superpixel``) and ``all``, comma-separated or as a sequence; order kept, no repeats.

    Raises:
        InputError: for an unknown name or an empty list.
    """
    words = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    unknown: list[str] = []
    for word in (w.strip() for w in words):
        if not word:
            continue
        if word == "all":
            found = method_names()
        elif word in FAMILIES:
            found = method_names(word)
        elif word in REGISTRY:
            found = (word,)
        else:
            unknown.append(word)
            continue
        names += [n for n in found if n not in names]
    choices = ", ".join(("all", *FAMILIES, *REGISTRY))
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}; choose from {choices}")
    if not names:
        raise InputError(f"no method given; choose from {choices}")
    return tuple(names)


def methods_for(model: Any, methods: Sequence[str]) -> tuple[str, ...]:
    """``methods`` less those that do not apply to ``model`` (their ``applies`` test fails).

    Raises:
        InputError: when none of them applies (naming why for the first).
    """

    def applies(name: str) -> bool:
        test = REGISTRY[name].applies
        return test is None or test(model)

    kept = tuple(n for n in methods if applies(n))
    left = [n for n in methods if n not in kept]
    if left and not kept:
        raise InputError(
            f"--methods {','.join(methods)}: {left[0]} does not apply to this model "
            f"({REGISTRY[left[0]].summary}); choose another method"
        )
    return kept


def describe_methods() -> str:
    """One line per method, ``name (family): summary``, for ``--help`` and the docs."""
    return "\n".join(f"{m.name} ({m.family}): {m.summary}" for m in REGISTRY.values())


def options_for(methods: Sequence[str]) -> dict[str, list[str]]:
    """The options the given methods read, each with the methods that read it."""
    users: dict[str, list[str]] = {}
    for name in methods:
        for opt in REGISTRY[name].options:
            users.setdefault(opt, []).append(name)
    return users


__all__ = [
    "DEFAULT_METHODS",
    "MODULES",
    "OPTIONS",
    "REGISTRY",
    "describe_methods",
    "method_names",
    "methods_for",
    "options_for",
    "register",
    "resolve_methods",
]
