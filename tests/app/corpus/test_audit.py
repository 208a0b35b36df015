"""Bad input to `solarmap audit`."""

from __future__ import annotations

import pytest

from tests.app.corpus.harness import Case, ids


def _audit(*extra: str, target: bool = True):  # type: ignore[no-untyped-def]
    def argv(i, tmp):  # type: ignore[no-untyped-def]
        what = ["--target", str(i.labels)] if target else []
        return ["-q", "audit", "--scene", str(i.scene), "--checkpoint", str(i.checkpoint),
                *what, "--out", "OUT", *extra]  # fmt: skip

    return argv


def _empty_run(i, tmp):  # type: ignore[no-untyped-def]
    (tmp / "run").mkdir()
    return _audit("--explanation", str(tmp / "run"), target=False)(i, tmp)


CASES: list[Case] = [
    Case("audit-neither-run-nor-target", _audit(target=False), ("--explanation", "--target")),
    Case("audit-no-explain-run", _empty_run, ("no explain run", "solarmap explain")),
    Case("audit-ring-wider-than-window", _audit("--ring-m", "100000"), ("--ring-m", "wider")),
    Case("audit-zero-ring", _audit("--ring-m", "0"), ("--ring-m 0", "> 0")),
    Case("audit-reliance-above-one", _audit("--context-reliance", "1.5"), ("--context-reliance",)),
    Case("audit-nan-bands", _audit("--implausible-bands", "nan"), ("--implausible-bands",)),
    Case("audit-negative-faithful", _audit("--unfaithful-map", "-1"), ("--unfaithful-map",)),
    Case("audit-ids-without-run", _audit("--ids", "1"), ("--ids", "--explanation")),
    Case("audit-threshold-above-one", _audit("--threshold", "1.5"), ("--threshold 1.5",)),
    Case("audit-bad-ids", _audit("--ids", "one"), ("--ids",)),
    Case("audit-missing-target", _audit("--target", "nope.gpkg", target=False), ("nope.gpkg",)),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_audit_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
