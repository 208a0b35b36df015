"""Bad input to `solarmap explain`."""

from __future__ import annotations

import pytest

from tests.app.corpus.harness import Case, ids

INSIDE = "700555,1559595"  # a point inside the corpus scene (UTM 43N)


def _explain(*extra: str, target: str = INSIDE):  # type: ignore[no-untyped-def]
    def argv(i, tmp):  # type: ignore[no-untyped-def]
        return ["-q", "explain", "--scene", str(i.scene), "--checkpoint", str(i.checkpoint),
                "--target", target, "--out", "OUT", *extra]  # fmt: skip

    return argv


CASES: list[Case] = [
    Case("explain-unknown-method", _explain("--methods", "telepathy"), ("telepathy", "choose")),
    Case("explain-empty-methods", _explain("--methods", ","), ("no method",)),
    Case("explain-unknown-reduction", _explain("--reductions", "median"), ("median",)),
    Case("explain-unknown-baseline", _explain("--baseline", "noise"), ("noise", "zero")),
    Case("explain-bad-ig-baseline", _explain("--ig-baseline", "noise"), ("--ig-baseline",)),
    Case("explain-bad-ig-rule", _explain("--ig-rule", "simpson"), ("--ig-rule", "midpoint")),
    Case("explain-zero-batch", _explain("--batch-size", "0"), ("batch",)),
    Case("explain-negative-margin", _explain("--margin", "-1"), ("margin",)),
    Case("explain-zero-top", _explain("--top", "0"), ("--top",)),
    Case(
        "explain-shap-budget",
        _explain("--methods", "kernel_shap", "--shap-samples", "3"),
        ("--shap-samples", "n_segments + 2"),
    ),
    Case(
        "explain-one-superpixel",
        _explain("--methods", "kernel_shap", "--n-segments", "1"),
        ("--n-segments",),
    ),
    Case(
        "explain-zero-smoothgrad",
        _explain("--methods", "smoothgrad", "--smoothgrad-samples", "0"),
        ("--smoothgrad-samples",),
    ),
    Case(
        "explain-zero-occlusion-window",
        _explain("--methods", "occlusion", "--occlusion-window", "0"),
        ("--occlusion-window",),
    ),
    Case("explain-nan-tolerance", _explain("--tolerance", "nan"), ("--tolerance", "finite")),
    Case("explain-outside", _explain(target="0,0"), ("outside",)),
    Case("explain-missing-target-file", _explain(target="nope.gpkg"), ("nope.gpkg",)),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_explain_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
