"""Bad input to `solarmap demo-data`: messages name the command's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.corpus.harness import Case, Inputs, ids


def _demo(*extra: str):  # type: ignore[no-untyped-def]
    def argv(i: Inputs, tmp: Path) -> list[str]:
        return ["-q", "demo-data", "--out", "OUT", *extra]

    return argv


def _taken(i: Inputs, tmp: Path) -> list[str]:
    (tmp / "region").mkdir()
    return ["-q", "demo-data", "--out", str(tmp / "region"), "--size", "64"]


CASES: list[Case] = [
    Case("demo-data-size-zero", _demo("--size", "0"), ("--size 0: choose 64 to 16384",)),
    Case("demo-data-size-negative", _demo("--size", "-64"), ("--size -64", "64 to 16384")),
    Case("demo-data-size-odd", _demo("--size", "65"), ("--size 65", "even")),
    Case("demo-data-size-huge", _demo("--size", "1000000"), ("--size 1000000", "16384")),
    Case("demo-data-seed-negative", _demo("--seed", "-1"), ("--seed -1", "choose 0")),
    Case(
        "demo-data-unmapped-above-one",
        _demo("--unmapped-fraction", "2"),
        ("--unmapped-fraction 2", "choose 0 to 1"),
    ),
    Case(
        "demo-data-unmapped-negative",
        _demo("--unmapped-fraction", "-0.1"),
        ("--unmapped-fraction -0.1",),
    ),
    Case("demo-data-unmapped-nan", _demo("--unmapped-fraction", "nan"), ("--unmapped-fraction",)),
    Case("demo-data-spurious", _demo("--spurious", "glitter"), ("--spurious", "none, pad or snow")),
    Case("demo-data-out-exists", _taken, ("region", "--overwrite")),
    Case(
        "demo-data-seed-huge",
        _demo("--seed", str(2**63)),
        ("--seed 9223372036854775808", "choose 0 to"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_demo_data_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    line = check_case(case)
    assert "RegionConfig" not in line
