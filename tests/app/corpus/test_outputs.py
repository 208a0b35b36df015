"""An --out that cannot be written, for every command that writes: a file where a folder is
expected (``some_file/sub``, the stand-in for a folder the user may not write, since the tests
run as root), or a file as the output folder. One line naming the file in the way, exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.app.corpus.harness import Case, Inputs, ids, text_file

INSIDE = "700555,1559595"  # a point inside the corpus scene (UTM 43N)

#: Each writing command with valid inputs; the case adds --out.
COMMANDS: dict[str, Callable[[Inputs], list[str]]] = {
    "demo-data": lambda i: ["demo-data", "--size", "64"],
    "prepare": lambda i: ["prepare", "--scene", str(i.scene), "--labels", str(i.labels)],
    "train": lambda i: ["train", "--chips", str(i.chips), "--epochs", "1"],
    "predict": lambda i: ["predict", "--scene", str(i.scene), "--checkpoint", str(i.checkpoint)],
    "explain": lambda i: [
        "explain",
        "--scene",
        str(i.scene),
        "--checkpoint",
        str(i.checkpoint),
        "--target",
        INSIDE,
        "--methods",
        "saliency",
    ],
    "evaluate": lambda i: ["evaluate", "--prediction", str(i.prediction), "--truth", str(i.truth)],
    "demo": lambda i: ["demo", "--size", "64"],
}


def _under_a_file(command: str) -> Callable[[Inputs, Path], list[str]]:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        text_file(tmp / "some_file")
        return ["-q", *COMMANDS[command](i), "--out", str(tmp / "some_file" / "sub")]

    return argv


def _a_file(command: str) -> Callable[[Inputs, Path], list[str]]:
    def argv(i: Inputs, tmp: Path) -> list[str]:
        text_file(tmp / "result.txt")
        return ["-q", *COMMANDS[command](i), "--out", str(tmp / "result.txt"), "--overwrite"]

    return argv


CASES: list[Case] = [
    Case(f"{command}-out-under-a-file", _under_a_file(command), ("some_file", "is a file"))
    for command in COMMANDS
    if command not in ("train", "predict")  # in their own files
] + [
    Case(f"{command}-out-is-a-file", _a_file(command), ("result.txt", "not an output folder"))
    for command in COMMANDS
    if command not in ("evaluate", "predict")  # evaluate writes files into an existing folder
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_out_cannot_be_written(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
