"""The scheduler's recovery decision, row by row: what becomes of a unit whose pool broke."""

from __future__ import annotations

import pytest

from ocrlab.scheduler import recovery_action

# pages, hung, watchdog, restartable, alone_again -> action
TABLE = [
    (3, False, False, True, False, "split"),  # a bundle in a crash: each page alone
    (3, True, True, True, False, "split"),  # a bundle past its deadline: still split
    (3, False, False, False, False, "split"),
    (1, True, True, True, False, "timed_out"),  # the page the watchdog found hung
    (1, True, True, False, False, "timed_out"),
    (1, False, True, True, False, "requeue"),  # its neighbour: run again as it was
    (1, False, True, False, False, "culprit"),  # no fresh pool to run it again in
    (1, False, False, True, True, "culprit"),  # killed its worker a second time, alone
    (1, False, False, False, False, "culprit"),  # in-process / cluster: no restart
    (1, False, False, True, False, "suspect"),  # first death: re-run alone to tell
]


@pytest.mark.parametrize(("pages", "hung", "watchdog", "restartable", "alone", "expected"), TABLE)
def test_recovery_table(
    pages: int, hung: bool, watchdog: bool, restartable: bool, alone: bool, expected: str
) -> None:
    got = recovery_action(
        pages=pages, hung=hung, watchdog=watchdog, restartable=restartable, alone_again=alone
    )
    assert got == expected
