"""Writes that land whole: one file (atomic_writer), and a pair that an interrupt must not split."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from ocrlab.output.atomic import atomic_write_bytes, deferred_interrupts


def test_an_interrupt_waits_for_the_end_of_the_block(tmp_path: Path) -> None:
    """Ctrl-C between an artifact and its record is raised after both are written."""
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        atomic_write_bytes(tmp_path / "artifact.txt", b"text")
        os.kill(os.getpid(), signal.SIGINT)  # delivered here, held
        for _ in range(1000):  # bytecodes at which Python would have raised it
            pass
        atomic_write_bytes(tmp_path / "record.json", b"{}")
    assert (tmp_path / "artifact.txt").read_bytes() == b"text"
    assert (tmp_path / "record.json").read_bytes() == b"{}"
    assert signal.getsignal(signal.SIGINT) is before


def test_no_interrupt_no_effect_and_handlers_restored() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with deferred_interrupts():
        pass
    assert {s: signal.getsignal(s) for s in before} == before


def test_outside_the_main_thread_the_block_runs_as_it_is() -> None:
    seen: list[object] = []

    def body() -> None:
        with deferred_interrupts():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]
