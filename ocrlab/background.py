"""Runs that do not block: ``ocrlab.start(...)`` returns a :class:`RunHandle` at once.

Why a separate process per background run, and not a thread:

* **Cancel is exactly Ctrl-C.** :meth:`RunHandle.cancel` sends SIGINT to the
  run's process; its main thread raises ``KeyboardInterrupt`` where it stands
  and the pipeline's own Ctrl-C path runs: workers killed, manifest
  ``interrupted``, artifacts complete or absent, orphaned Tesseracts reaped.
  A thread cannot be interrupted (signals reach only the main thread), so a
  threaded run would need a second, less tested cancel path in the scheduler.
* **Nothing shared that should not be.** Each run has its own loky pool, its
  own child-subreaper (which reaps *all* orphaned Tesseracts of its process:
  two runs in one process would reap each other's), its own output folder,
  log handler and monitor. The monitor sums the process tree of its main
  process; two runs in one process would count each other's workers.
* **The kernel stays free.** Not even the collector's work (hashing, writing
  artifacts) competes with the notebook for the GIL.

The process is ``python -c`` running :func:`main` with ``SPEC RESULT`` in a new session
(``start_new_session``): interrupting the *kernel* (a cell) must not cancel
background runs, and jupyter_client interrupts a kernel by signalling its whole
process group. The child asks to die with its parent (``PR_SET_PDEATHSIG``),
so a dying kernel takes its runs with it (their workers follow the same way).
The arguments travel pickled in SPEC; the result (the :class:`RunSummary`, or
the exception) comes back pickled in RESULT, written atomically. The cost is a
Python start-up per run (well under a second), negligible beside OCR.

The handle's live view follows the run's ``trace.json`` like a blocking run's
(:mod:`ocrlab.follow`); this module itself imports no widget library.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .config import OcrConfig, load_config
from .errors import ExitCode
from .follow import RunState
from .frontend import frontend
from .output.atomic import atomic_write_bytes
from .output.lock import check_output
from .output.trace_reader import TraceFollower, stat_key
from .progress import live_view_enabled
from .records import RunSummary, WatchedStatus


class RunHandle:
    """A run going on in its own process; one per :func:`start`."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        workdir: Path,
        out_dir: Path,
        stale: tuple[int, int, int] | None,
        view: Any = None,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.out_dir = out_dir
        self.view = view
        self._workdir = workdir
        self._stale = stale
        self._outcome: tuple[str, Any] | None = None
        self._log: str | None = None
        self._lock = threading.Lock()
        self.cancelled = False

    # -- state -----------------------------------------------------------------------------
    def done(self) -> bool:
        """True once the run's process has exited (finished, failed or cancelled)."""
        return self.proc.poll() is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end (``timeout`` seconds at most); True if it ended."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def state(self) -> RunState:
        """Progress so far, read from the trace (the live view shows the same)."""
        state = RunState()
        follower = TraceFollower(self.out_dir / "trace.json", self._stale)
        try:
            state.apply(follower.poll())
        finally:
            follower.close()
        return state

    @property
    def status(self) -> WatchedStatus:
        """``running``, ``complete``, ``interrupted`` or ``failed``."""
        if not self.done():
            return "running"
        kind, _ = self._load()
        if kind == "ok":
            return "complete"
        return "interrupted" if kind == "interrupted" else "failed"

    def _load(self) -> tuple[str, Any]:
        with self._lock:  # the live view's thread asks too; the first reader cleans up
            return self._load_locked()

    def _load_locked(self) -> tuple[str, Any]:
        if self._outcome is None:
            path = self._workdir / "result.pickle"
            if path.is_file():
                with open(path, "rb") as fh:
                    self._outcome = pickle.load(fh)  # written by our own child process
            elif self.cancelled:  # cancelled before the pipeline started: nothing was run
                self._outcome = ("interrupted", None)
            else:
                log = self.log_text()[-2000:]
                self._outcome = (
                    "failed",
                    RuntimeError(
                        f"the run's process (pid {self.pid}) ended with exit code "
                        f"{self.proc.returncode} without a result; its output:\n{log}"
                    ),
                )
            self._log = self.log_text()
            shutil.rmtree(self._workdir, ignore_errors=True)  # spec, result, output
        return self._outcome

    def result(self, timeout: float | None = None) -> RunSummary:
        """The run's :class:`RunSummary`, as ``ocrlab.run`` would have returned it.

        Waits for the end. Raises what ``ocrlab.run`` would have raised
        (:class:`~ocrlab.errors.ConfigError`, :class:`~ocrlab.errors.PipelineError`),
        :class:`concurrent.futures.CancelledError` after :meth:`cancel` (or a SIGINT
        from elsewhere), :class:`TimeoutError` if ``timeout`` passes first.
        """
        if not self.wait(timeout):
            raise TimeoutError(f"the run in {self.out_dir} is still going after {timeout} s")
        kind, value = self._load()
        if self.view is not None:
            self.view.finish()
        if kind == "ok":
            summary: RunSummary = value
            return summary
        if kind == "interrupted":
            raise cf.CancelledError(
                f"the run in {self.out_dir} was interrupted; finished "
                "documents are in its output folder"
            )
        raise value

    def cancel(self, timeout: float = 60.0) -> bool:
        """Stop the run the way Ctrl-C stops ``ocrlab run``: SIGINT to its process, then wait
        (up to ``timeout`` s) until its workers are gone. False if it had already ended."""
        if self.done():
            return False
        self.cancelled = True
        os.kill(self.pid, signal.SIGINT)
        if not self.wait(timeout):  # pragma: no cover - the Ctrl-C path hung
            self.proc.kill()
            self.proc.wait()
        if self.view is not None:
            self.view.finish()
        return True

    def log_text(self) -> str:
        """What the run's process wrote to stdout / stderr (normally nothing)."""
        if self._log is not None:
            return self._log
        path = self._workdir / "output.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def _alive(self) -> str | None:
        if not self.done():
            return None
        kind, value = self._load()
        return None if kind in {"ok", "interrupted"} else f"{type(value).__name__}: {value}"

    def _ipython_display_(self) -> None:
        if self.view is not None:
            self.view._ipython_display_()
        else:
            print(repr(self))

    def __repr__(self) -> str:
        return f"<RunHandle pid={self.pid} out={str(self.out_dir)!r} {self.status}>"


def start(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | OcrConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> RunHandle:
    """Start ``ocrlab.run(inputs, out_dir, ...)`` in a background process; return at once.

    Same arguments as :func:`ocrlab.run`. The configuration is resolved and
    validated here, from this process's environment, so a bad value raises now
    (as ``ocrlab.run`` would), not later in ``result()``. In a notebook the
    handle's live view is displayed (``live_view=False`` turns it off). An output folder
    that another run holds, or that holds a previous run's files without ``resume`` /
    ``overwrite``, raises here too (:class:`~ocrlab.errors.OutputBusyError`,
    :class:`~ocrlab.errors.OutputNotEmptyError`), before any process starts.
    """
    cfg = load_config(config, **options)
    check_output(Path(out_dir), resume=resume, overwrite=overwrite)
    where = frontend()
    show = live_view_enabled(cfg, where)
    child_cfg = dataclasses.replace(cfg, progress=False, live_view=False)
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out = Path(out_dir).absolute()
    spec = {
        "inputs": [os.path.abspath(os.fspath(p)) for p in items],
        "out_dir": str(out),
        "config": child_cfg,
        "resume": resume,
        "overwrite": overwrite,
    }
    workdir = Path(tempfile.mkdtemp(prefix="ocrlab-start-"))
    (workdir / "spec").write_bytes(pickle.dumps(spec))
    stale = stat_key(out / "trace.json")
    with open(workdir / "output.log", "wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(workdir / "spec"), str(workdir / "result.pickle")],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=os.getcwd(),
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    p for p in [_package_root(), os.environ.get("PYTHONPATH", "")] if p
                ),
            },
        )
    handle = RunHandle(proc, workdir, out, stale)
    if show:
        from .lab.widgets import LiveView

        handle.view = (
            LiveView(out / "trace.json", stale=stale, title="OCR (background)", alive=handle._alive)
            .show()
            .start()
        )
    return handle


#: Not ``-m ocrlab.background``: ``ocrlab/__init__`` imports this module, and runpy warns.
_CHILD = "import sys; from ocrlab.background import main; sys.exit(main(sys.argv[1:]))"


def _package_root() -> str:
    """The folder holding this ``ocrlab``: the child imports the same code as the parent."""
    return str(Path(__file__).resolve().parents[1])


def _write_result(path: Path, outcome: tuple[str, Any]) -> None:
    """The child's outcome for the parent, whole or not at all (the parent polls for it)."""
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:  # an exception that does not pickle still reports its text
        data = pickle.dumps(("failed", RuntimeError(f"{type(outcome[1]).__name__}: {exc}")))
    atomic_write_bytes(path, data)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str]) -> int:
    """The background process: run the pipeline from SPEC, write the outcome to RESULT."""
    from .pipeline import run
    from .procs import die_with_parent

    spec_path, result_path = Path(argv[0]), Path(argv[1])
    die_with_parent()
    # Ctrl-C semantics even when started from a shell that ignores SIGINT (``cmd &``).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)  # as the CLI: SIGTERM takes the Ctrl-C path
    spec = pickle.loads(spec_path.read_bytes())  # written by our parent for us
    try:
        summary = run(
            spec["inputs"],
            spec["out_dir"],
            config=spec["config"],
            resume=spec["resume"],
            overwrite=spec["overwrite"],
        )
    except KeyboardInterrupt:
        _write_result(result_path, ("interrupted", None))
        return ExitCode.INTERRUPTED
    except Exception as exc:
        _write_result(result_path, ("failed", exc))
        return ExitCode.PIPELINE
    _write_result(result_path, ("ok", summary))
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
