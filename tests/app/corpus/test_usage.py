"""Usage mistakes every command shares (click finds them): still one line and exit 2."""

from __future__ import annotations

import pytest

from tests.app.corpus.harness import Case, ids


def _argv(*args: str):  # type: ignore[no-untyped-def]
    return lambda i, tmp: ["-q", *args]


CASES: list[Case] = [
    Case("usage-unknown-command", _argv("bogus"), ("bogus", "solarmap --help")),
    Case("usage-prepare-no-scene", _argv("prepare", "--out", "OUT"), ("--scene", "prepare --help")),
    Case("usage-prepare-unknown-option", _argv("prepare", "--colour", "red"), ("--colour",)),
    Case(
        "usage-prepare-chip-size-text",
        lambda i, tmp: [
            "-q",
            "prepare",
            "--scene",
            str(i.scene),
            "--labels",
            str(i.labels),
            "--out",
            "OUT",
            "--chip-size",
            "big",
        ],
        ("--chip-size", "integer"),
    ),
    Case("usage-train-no-chips", _argv("train", "--out", "OUT"), ("--chips",)),
    Case(
        "usage-train-lr-text",
        lambda i, tmp: ["-q", "train", "--chips", str(i.chips), "--out", "OUT", "--lr", "fast"],
        ("--lr",),
    ),
    Case(
        "usage-train-epochs-float",
        lambda i, tmp: ["-q", "train", "--chips", str(i.chips), "--out", "OUT", "--epochs", "2.5"],
        ("--epochs",),
    ),
    Case(  # without --checkpoint the shipped model is used: the scene is what is missing
        "usage-predict-no-checkpoint-missing-scene",
        _argv("predict", "--scene", "s.tif", "--out", "OUT"),
        ("s.tif", "not found"),
    ),
    Case(
        "usage-predict-batch-text",
        lambda i, tmp: [
            "-q",
            "predict",
            "--scene",
            str(i.scene),
            "--checkpoint",
            str(i.checkpoint),
            "--out",
            "OUT",
            "--batch-size",
            "abc",
        ],
        ("--batch-size", "integer", "predict --help"),
    ),
    Case("usage-predict-option-without-value", _argv("predict", "--scene"), ("--scene",)),
    Case("usage-evaluate-no-truth", _argv("evaluate", "--prediction", "p"), ("--truth",)),
    Case(
        "usage-explain-no-target",
        _argv("explain", "--scene", "s", "--checkpoint", "c", "--out", "OUT"),
        ("--target",),
    ),
    Case(
        "usage-explain-shap-samples-text",
        lambda i, tmp: [
            "-q",
            "explain",
            "--scene",
            str(i.scene),
            "--checkpoint",
            str(i.checkpoint),
            "--target",
            "700555,1559595",
            "--out",
            "OUT",
            "--shap-samples",
            "many",
        ],
        ("--shap-samples",),
    ),
    Case(
        "usage-demo-data-size-text",
        _argv("demo-data", "--out", "OUT", "--size", "huge"),
        ("--size",),
    ),
    Case("usage-demo-unknown-option", _argv("demo", "--fast"), ("--fast",)),
    Case("usage-verbose-takes-no-value", _argv("--verbose=3", "demo"), ("--verbose",)),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_usage_mistake(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
