"""How busy the machine was while a benchmark ran: measured, recorded, and said.

A timing on a shared machine (a laptop, a CI runner, a 2-vCPU VM with neighbours)
measures the benchmark *and* everything else that ran. :class:`NoiseProbe` takes two
looks, at the start and at the end of a run, and keeps the differences:

* the machine's busy CPU time, from ``/proc/stat`` (every state but idle, iowait and
  steal), minus the CPU time of this process's own tree (psutil: its own and its
  reaped children's user and system time, plus every live descendant's). What is left
  is *other* processes' work: the load that competed with the run;
* CPU steal (the hypervisor gave the vCPU to another guest), which ``/proc/stat``
  reports on VMs;
* the cgroup's CPU throttling (a container's quota spent: the run waits although
  nothing else is busy);
* the run queue: a sampler thread reads how many tasks are running or ready to run
  (``procs_running``) every :data:`SAMPLE_S` seconds. More runnable tasks than CPUs
  means every one of them, the run's included, waits its turn; other processes' CPU
  share stops growing once the machine is saturated, the queue does not;
* the time some task waited for a CPU (PSI, ``/proc/pressure/cpu``) where the kernel
  reports it;
* the 1-minute load average at both ends, which is what people quote.

:func:`summarize` folds the readings of a bench's runs into one :class:`NoiseSummary`,
and :func:`noise_warning` words it the way pyperf warns about unstable benchmarks:
a figure measured while other processes used more than :data:`BUSY_SHARE` of the
machine's CPUs is slowed and noisy, and the warning stands above the figures and the
recommendation so that nobody reads them as the package's speed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

import psutil

from ..measure.host import cgroup_cpu_throttling, cpu_pressure_s, cpu_times, runnable_tasks

#: Other processes' share of the machine's CPU time above which figures are flagged.
#: 10%: one busy neighbour on a 4-core laptop; a fifth of one core on a 2-vCPU runner.
BUSY_SHARE = 0.10
#: CPU steal share above which a VM's figures are flagged.
STEAL_SHARE = 0.05
#: Share of the wall time spent throttled by the cgroup above which figures are flagged.
THROTTLED_SHARE = 0.02
#: Seconds between two looks at the run queue (a read of /proc/stat: ~50 us).
SAMPLE_S = 0.2

_IDLE_STATES = ("idle", "iowait", "steal")


def tree_cpu_s(root: psutil.Process | None = None) -> float:
    """CPU seconds of ``root``'s tree so far: its own and its reaped children's time, and
    every live descendant's (each counted once: a child's time moves to its parent's
    ``children_*`` when it is reaped). A process re-parented away (to init or a
    subreaper) is lost to the count; ocrlab's own workers and Tesseracts are not."""
    root = root or psutil.Process()
    total = 0.0
    for proc in [root, *_descendants(root)]:
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _descendants(root: psutil.Process) -> list[psutil.Process]:
    try:
        return list(root.children(recursive=True))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


@dataclass(frozen=True)
class NoiseReading:
    """How busy the machine was during one interval (seconds are CPU seconds)."""

    wall_s: float
    cpus: int
    busy_s: float  #: every process's CPU time on the machine
    own_s: float  #: this process tree's CPU time
    steal_s: float
    load_start: float
    load_end: float
    throttled_s: float = 0.0
    throttled_periods: int = 0
    #: mean number of tasks running or ready to run (the sampler itself not counted)
    runnable_avg: float | None = None
    #: share of the wall time in which some task waited for a CPU (PSI), if reported
    pressure_share: float | None = None

    @property
    def runnable_per_cpu(self) -> float | None:
        return None if self.runnable_avg is None else self.runnable_avg / max(1, self.cpus)

    @property
    def other_s(self) -> float:
        """CPU seconds of processes outside the tree (never below 0: the two counts are
        read a few microseconds apart)."""
        return max(0.0, self.busy_s - self.own_s)

    @property
    def other_share(self) -> float:
        """Other processes' share of the machine's CPU capacity (0 = quiet, 1 = all CPUs)."""
        capacity = self.wall_s * max(1, self.cpus)
        return min(1.0, self.other_s / capacity) if capacity > 0 else 0.0

    @property
    def steal_share(self) -> float:
        capacity = self.wall_s * max(1, self.cpus)
        return self.steal_s / capacity if capacity > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            runnable_per_cpu=None
            if self.runnable_per_cpu is None
            else round(self.runnable_per_cpu, 3),
            other_s=round(self.other_s, 3),
            other_share=round(self.other_share, 4),
            steal_share=round(self.steal_share, 4),
        )
        return out


@dataclass
class _Snapshot:
    t: float
    busy: float
    steal: float
    cpus: int
    own: float
    load: float
    throttled: tuple[int, float] | None
    pressure: float | None


def _snapshot(root: psutil.Process) -> _Snapshot:
    times = cpu_times()
    own = tree_cpu_s(root)
    busy = steal = 0.0
    cpus = os.cpu_count() or 1
    if times is not None:
        states, cpus = times
        busy = sum(v for k, v in states.items() if k not in _IDLE_STATES)
        steal = states.get("steal", 0.0)
    return _Snapshot(
        time.monotonic(),
        busy,
        steal,
        cpus,
        own,
        os.getloadavg()[0],
        cgroup_cpu_throttling(),
        cpu_pressure_s(),
    )


class NoiseProbe:
    """``with NoiseProbe() as probe: run()``; then ``probe.reading``.

    Two looks at the CPU counters (one walk of the tree each, a few milliseconds) and a
    read of the run queue every :data:`SAMPLE_S` s in a daemon thread (microseconds), so
    the probe does not add the noise it measures.
    """

    def __init__(self, root: psutil.Process | None = None, sample_s: float = SAMPLE_S) -> None:
        self.root = root or psutil.Process()
        self.sample_s = sample_s
        self._start: _Snapshot | None = None
        self._stop = threading.Event()
        self._queue: list[int] = []
        self._thread: threading.Thread | None = None
        self.reading: NoiseReading | None = None

    def _sample(self) -> None:
        while True:
            running = runnable_tasks()
            if running is not None:
                self._queue.append(max(0, running - 1))  # not the sampler itself
            if self._stop.wait(self.sample_s):
                return

    def __enter__(self) -> NoiseProbe:
        self._start = _snapshot(self.root)
        self._thread = threading.Thread(target=self._sample, name="ocrlab-noise", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._start is not None and self._thread is not None
        self._stop.set()
        self._thread.join()
        a, b = self._start, _snapshot(self.root)
        throttled = (
            (b.throttled[0] - a.throttled[0], b.throttled[1] - a.throttled[1])
            if a.throttled is not None and b.throttled is not None
            else (0, 0.0)
        )
        wall = b.t - a.t
        pressure = (
            min(1.0, (b.pressure - a.pressure) / wall)
            if a.pressure is not None and b.pressure is not None and wall > 0
            else None
        )
        self.reading = NoiseReading(
            wall_s=round(wall, 4),
            cpus=b.cpus,
            busy_s=round(b.busy - a.busy, 3),
            own_s=round(b.own - a.own, 3),
            steal_s=round(b.steal - a.steal, 3),
            load_start=round(a.load, 2),
            load_end=round(b.load, 2),
            throttled_s=round(throttled[1], 3),
            throttled_periods=throttled[0],
            runnable_avg=round(sum(self._queue) / len(self._queue), 3) if self._queue else None,
            pressure_share=None if pressure is None else round(pressure, 4),
        )


def measure_idle(seconds: float = 2.0) -> NoiseReading:
    """How busy the machine is while this process waits ``seconds`` (a test's "is it quiet
    enough to assert on?")."""
    with NoiseProbe() as probe:
        time.sleep(seconds)
    assert probe.reading is not None
    return probe.reading


@dataclass(frozen=True)
class NoiseSummary:
    """The noise over a benchmark's runs: totals, the busiest run, and whether it was busy."""

    runs: int
    wall_s: float
    cpus: int
    other_share: float  #: other processes' share of the CPUs over all runs together
    worst_share: float  #: the same in the busiest run
    steal_share: float
    throttled_s: float
    load_min: float
    load_max: float
    #: mean tasks runnable per CPU over the runs (None: not sampled)
    runnable_per_cpu: float | None = None

    @property
    def busy(self) -> bool:
        return bool(self.reasons())

    def reasons(self) -> list[str]:
        """What made the machine too busy, one phrase each (empty: quiet enough)."""
        out = []
        if self.other_share > BUSY_SHARE or self.worst_share > 2 * BUSY_SHARE:
            out.append(
                f"other processes used {self.other_share:.0%} of its {self.cpus} CPU(s) "
                f"({self.other_share * self.cpus:.2f} CPU on average, "
                f"{self.worst_share:.0%} during the busiest run)"
            )
        if self.steal_share > STEAL_SHARE:
            out.append(f"the hypervisor took {self.steal_share:.0%} of the CPU time (steal)")
        if self.wall_s > 0 and self.throttled_s / self.wall_s > THROTTLED_SHARE:
            out.append(f"the cgroup's CPU quota throttled it for {self.throttled_s:.1f} s")
        return out

    def describe(self) -> str:
        """One line, warning or not: what the figures were measured under."""
        queue = (
            ""
            if self.runnable_per_cpu is None
            else f", {self.runnable_per_cpu:.2f} runnable tasks per CPU"
        )
        return (
            f"machine load while measuring: other processes {self.other_share:.0%} of "
            f"{self.cpus} CPU(s) (busiest run {self.worst_share:.0%}){queue}, steal "
            f"{self.steal_share:.0%}, load average {self.load_min:g}-{self.load_max:g}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "busy": self.busy, "warning": noise_warning(self)}


def summarize(readings: Iterable[NoiseReading | Mapping[str, Any]]) -> NoiseSummary | None:
    """Fold per-run readings (or their ``as_dict()`` from a saved bench) into one summary."""
    rows = [r if isinstance(r, NoiseReading) else _from_dict(r) for r in readings]
    rows = [r for r in rows if r.wall_s > 0]
    if not rows:
        return None
    wall = sum(r.wall_s for r in rows)
    cpus = max(r.cpus for r in rows)
    return NoiseSummary(
        runs=len(rows),
        wall_s=round(wall, 3),
        cpus=cpus,
        other_share=round(min(1.0, sum(r.other_s for r in rows) / (wall * cpus)), 4),
        worst_share=round(max(r.other_share for r in rows), 4),
        steal_share=round(sum(r.steal_s for r in rows) / (wall * cpus), 4),
        throttled_s=round(sum(r.throttled_s for r in rows), 3),
        load_min=min(min(r.load_start, r.load_end) for r in rows),
        load_max=max(max(r.load_start, r.load_end) for r in rows),
        runnable_per_cpu=_queue_per_cpu(rows),
    )


def _queue_per_cpu(rows: list[NoiseReading]) -> float | None:
    """Mean runnable tasks per CPU, weighted by each run's wall time."""
    sampled = [r for r in rows if r.runnable_per_cpu is not None]
    wall = sum(r.wall_s for r in sampled)
    if not sampled or wall <= 0:
        return None
    return round(sum(r.wall_s * (r.runnable_per_cpu or 0.0) for r in sampled) / wall, 3)


def _from_dict(d: Mapping[str, Any]) -> NoiseReading:
    fields = NoiseReading.__dataclass_fields__
    return NoiseReading(**{k: v for k, v in d.items() if k in fields})


def noise_warning(summary: NoiseSummary | None) -> str | None:
    """The warning to print above the figures, or None when the machine was quiet enough."""
    if summary is None or not summary.busy:
        return None
    return (
        "WARNING: the machine was busy while this was measured: "
        + "; ".join(summary.reasons())
        + (
            f"; {summary.runnable_per_cpu:.2f} tasks waited or ran per CPU"
            if summary.runnable_per_cpu is not None
            else ""
        )
        + f"; load average {summary.load_min:g} to {summary.load_max:g}. "
        "Timings are slower and noisier than on a quiet machine: read the intervals, "
        "compare only figures measured in the same run, and rerun on a quiet machine "
        "before trusting a difference of a few %."
    )


def noise_markdown(summary: NoiseSummary | Mapping[str, Any] | None) -> str:
    """For a report: the warning in bold when the machine was busy, else one line saying
    what the figures were measured under (a summary, or its ``as_dict()`` from a saved
    bench or sweep)."""
    if summary is not None and not isinstance(summary, NoiseSummary):
        fields = NoiseSummary.__dataclass_fields__
        summary = NoiseSummary(**{k: v for k, v in summary.items() if k in fields})
    if summary is None:
        return "_How busy the machine was is not recorded for these figures._"
    warning = noise_warning(summary)
    if warning:
        return f"**{warning}**"
    return f"Quiet enough to read the figures as they stand: {summary.describe()}."
