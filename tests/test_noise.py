"""How busy the machine was: the probe's accounting, the summary, and the warning under a
CPU hog the test starts itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ocrlab.lab.noise import (
    BUSY_SHARE,
    NoiseProbe,
    NoiseReading,
    measure_idle,
    noise_warning,
    summarize,
)
from tests.conftest import make_page, ocrlab_command

BUSY_LOOP = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


#: starts the busy loop in a session of its own and exits at once: the loop is re-parented
#: (to init or a subreaper), so it is no descendant of the test, only another process
LAUNCH = (
    "import subprocess, sys\n"
    "p = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
    "start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL)\n"
    "print(p.pid)\n"
)


@pytest.fixture
def hog() -> Iterator[psutil.Process]:
    """A busy loop pinned to the last CPU, outside the test's process tree (a child, even
    in a session of its own, would count as the probe's own: CI found the reading's
    "other" at 0 on a quiet machine, where only load from elsewhere had made it pass),
    killed at the end."""
    cpu = max(os.sched_getaffinity(0))
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCH, BUSY_LOOP, str(cpu)],
        capture_output=True,
        text=True,
        check=True,
    )
    proc = psutil.Process(int(launched.stdout))
    try:
        assert proc.pid not in {c.pid for c in psutil.Process().children(recursive=True)}
        time.sleep(0.5)  # let it start spinning
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_reading_arithmetic_and_summary() -> None:
    quiet = NoiseReading(10.0, 2, busy_s=10.5, own_s=10.0, steal_s=0.0, load_start=1, load_end=1)
    busy = NoiseReading(10.0, 2, busy_s=19.0, own_s=9.0, steal_s=3.0, load_start=2, load_end=3)
    assert quiet.other_s == pytest.approx(0.5) and quiet.other_share == pytest.approx(0.025)
    assert busy.other_share == pytest.approx(0.5) and busy.steal_share == pytest.approx(0.15)
    assert NoiseReading(1.0, 2, 1.0, 2.0, 0.0, 0, 0).other_s == 0.0  # never negative
    calm = summarize([quiet])
    assert calm is not None and not calm.busy and noise_warning(calm) is None
    both = summarize([quiet, busy.as_dict()])  # a saved bench's readings are dicts
    assert both is not None and both.busy
    assert both.other_share == pytest.approx(0.2625) and both.worst_share == pytest.approx(0.5)
    warning = noise_warning(both)
    assert warning is not None and warning.startswith("WARNING: the machine was busy")
    assert (
        "26% of its 2 CPU(s)" in warning and "steal" in warning and "load average 1 to 3" in warning
    )
    assert summarize([]) is None


def test_own_tree_counts_as_own(hog: psutil.Process) -> None:
    """CPU burnt by a child of this process is the run's own; the hog's is other."""
    with NoiseProbe() as probe:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass",
            ],
            check=True,
        )
    reading = probe.reading
    assert reading is not None and reading.own_s >= 0.9
    assert reading.other_s >= 0.3 * reading.wall_s  # the hog, at least
    assert reading.runnable_avg is not None and reading.runnable_avg >= 1


def _bench(corpus: Path, out: Path) -> subprocess.CompletedProcess[str]:
    args = ("--workers", "1", "--repeats", "2", "--no-cli", "--out", str(out))
    return ocrlab_command("bench", str(corpus), *args)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    make_page(tmp_path / "c" / "p1.png", "The quick brown fox", (600, 160))
    return tmp_path / "c"


@pytest.mark.slow
def test_bench_under_a_cpu_hog_warns(
    hog: psutil.Process, tiny_corpus: Path, tmp_path: Path
) -> None:
    proc = _bench(tiny_corpus, tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert (
        "WARNING: the machine was busy while this was measured: other processes used" in proc.stdout
    )
    assert "WARNING" in proc.stdout.split("engine")[0]  # above the table
    assert hog.is_running() and hog.status() != psutil.STATUS_ZOMBIE  # running all along


@pytest.mark.slow
def test_bench_on_a_quiet_machine_does_not_warn(tiny_corpus: Path, tmp_path: Path) -> None:
    before = measure_idle(3.0)
    if before.other_share > BUSY_SHARE / 2:
        pytest.skip(
            f"the machine is busy before the test starts (other processes use "
            f"{before.other_share:.0%} of {before.cpus} CPUs, load average "
            f"{before.load_start:g}): a quiet run cannot be shown on it"
        )
    proc = _bench(tiny_corpus, tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    after = measure_idle(1.0)
    if after.other_share > BUSY_SHARE:
        pytest.skip(f"the machine got busy during the test ({after.other_share:.0%})")
    assert "WARNING" not in proc.stdout, proc.stdout
