"""The method registry: a method is one declaration, and explain, the CLI and budgets follow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import typer
from shapely.geometry import box
from typer.testing import CliRunner

from attribute import registry
from attribute.base import Attribution, Cost, CountingFn, Method, MethodContext, Option
from attribute.explain import ExplainConfig, explain_scene
from attribute.registry import REGISTRY, register, resolve_methods
from attribute.targets import Target
from data_prep.sentinel2 import open_scene
from solarmap.errors import InputError
from tests.attribute.conftest import linear_checkpoint
from tests.conftest import ORIGIN

README = Path(__file__).resolve().parents[2] / "README.md"


def _run_toy(ctx: MethodContext, f, x: torch.Tensor) -> Attribution:  # type: ignore[no-untyped-def]
    fn = CountingFn(f)
    with torch.no_grad():
        fn(x)
    per_band = (ctx.settings["toy_scale"] * x[0]).numpy()
    return Attribution(method="toy", per_band=per_band, cost=fn.cost, extra={"seen": ctx.shape})


TOY = Method(
    name="toy",
    family="perturbation",
    summary="the input scaled, a test of the registry; 1 forward pass",
    cost=lambda ctx: Cost(forward=1),
    run=_run_toy,
    options=("toy_scale",),
)
TOY_OPTION = Option("toy_scale", 2.0, "Toy: scale of the input.", least=0)


@pytest.fixture
def toy() -> Iterator[Method]:
    saved = dict(REGISTRY), dict(registry.OPTIONS)
    register(TOY, [TOY_OPTION])
    yield TOY
    for table, old in zip((REGISTRY, registry.OPTIONS), saved, strict=True):
        table.clear()
        table.update(old)


def test_a_toy_method_runs_through_explain_from_its_declaration_alone(
    toy: Method,
    bright_scene,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    path, _ = bright_scene
    x0, y0 = ORIGIN
    target = Target(3, "polygon", box(x0 + 500, y0 - 800, x0 + 1100, y0 - 400))
    cfg = ExplainConfig(methods="toy,saliency", reductions=("max_abs",), options={"toy_scale": 3})
    assert cfg.methods == ("toy", "saliency") and cfg.options["toy_scale"] == 3.0
    caplog.set_level(logging.INFO, logger="attribute.explain")
    with open_scene(path) as scene:
        res = explain_scene(scene, linear_checkpoint(), [target], tmp_path / "ex", config=cfg)
    assert "toy costs 1 forward + 0 backward passes" in caplog.text
    assert "saliency costs 1 forward + 1 backward passes" in caplog.text
    assert res.targets[0]["costs"]["toy"] == {"forward": 1, "backward": 0}
    with rasterio.open(tmp_path / "ex" / "target_3" / "attribution.tif") as src:
        assert src.descriptions == ("toy:max_abs", "saliency:max_abs")
        toy_map, shape = src.read(1), (src.height, src.width)
    assert res.targets[0]["extra"]["toy"]["seen"] == list(shape)
    with open_scene(path) as scene:
        from attribute.targets import read_target

        tw = read_target(scene, linear_checkpoint(), "polygon", target.geom, window=None)
    want = 3 * np.abs(tw.x[0].numpy()).max(axis=0)
    np.testing.assert_allclose(toy_map, want, rtol=1e-5)
    with pytest.raises(InputError, match="--toy-scale"):
        ExplainConfig(methods=("toy",), options={"toy_scale": -1})
    assert "toy" in resolve_methods("perturbation") and "toy" in resolve_methods("all")


def test_the_cli_offers_a_new_methods_options_and_lists_it(toy: Method) -> None:
    from solarmap.app.cli import _explain_command

    app = typer.Typer()
    app.command("explain")(_explain_command())
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["explain", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--toy-scale" in result.output and "toy (perturbation)" in result.output
    for name, method in REGISTRY.items():
        assert f"{name} ({method.family})" in result.output


def test_methods_resolve_from_names_families_and_all() -> None:
    assert resolve_methods("gradient") == registry.method_names("gradient")
    assert resolve_methods(["saliency", "gradient"])[0] == "saliency"
    assert len(resolve_methods("all")) == len(REGISTRY)
    both = resolve_methods("superpixel,kernel_shap")
    assert both.count("kernel_shap") == 1 and set(registry.method_names("superpixel")) == set(both)
    for families in ("gradient", "perturbation", "superpixel"):
        assert registry.method_names(families)
    with pytest.raises(InputError, match="telepathy"):
        resolve_methods("saliency,telepathy")
    with pytest.raises(InputError, match="no method"):
        resolve_methods(" , ")


def test_registration_refuses_clashes() -> None:
    with pytest.raises(InputError, match="taken"):
        register(REGISTRY["saliency"])
    with pytest.raises(InputError, match="taken"):
        register(Method("gradient", "gradient", "", TOY.cost, TOY.run))
    with pytest.raises(InputError, match="undeclared"):
        register(Method("needs_option", "gradient", "", TOY.cost, TOY.run, options=("nope",)))
    assert "needs_option" not in REGISTRY


def test_every_method_is_in_the_readme() -> None:
    text = README.read_text()
    for name in REGISTRY:
        assert f"`{name}`" in text, name
    for option in registry.OPTIONS.values():
        assert option.flag in text, option.flag
