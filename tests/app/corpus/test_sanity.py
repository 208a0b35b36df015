"""Bad input to `solarmap sanity`."""

from __future__ import annotations

import pytest

from tests.app.corpus.harness import Case, ids


def _sanity(*extra: str, target: bool = True):  # type: ignore[no-untyped-def]
    def argv(i, tmp):  # type: ignore[no-untyped-def]
        what = ["--target", str(i.labels)] if target else []
        return ["-q", "sanity", "--scene", str(i.scene), "--checkpoint", str(i.checkpoint),
                *what, "--out", "OUT", *extra]  # fmt: skip

    return argv


CASES: list[Case] = [
    Case("sanity-unknown-method", _sanity("--methods", "telepathy"), ("--methods telepathy",)),
    Case("sanity-no-method", _sanity("--methods", ","), ("--methods", "at least one")),
    Case("sanity-zero-top", _sanity("--top", "0"), ("--top 0",)),
    Case("sanity-zero-spearman", _sanity("--max-spearman", "0"), ("--max-spearman 0",)),
    Case("sanity-negative-noise", _sanity("--noise-samples", "-1"), ("--noise-samples -1",)),
    Case("sanity-missing-target", _sanity("--target", "nope.gpkg", target=False), ("nope.gpkg",)),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_sanity_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
