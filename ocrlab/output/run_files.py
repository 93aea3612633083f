"""The files a run writes besides ``text/``, opened together once the folder is claimed.

The reserve file (:class:`~ocrlab.output.stops.Ballast`), the run's temporary folder,
``trace.json`` and the streaming manifest are opened in this order, and only after the
folder is prepared: a full filesystem stops the run here, before any page is OCRed, with
the reason the user can act on. The pipeline gives the run's metadata (what it needs from
the pool and the engine); nothing here imports either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .journal import StreamingManifest
from .layout import OutputLayout
from .scratch import RunTempDir
from .stops import Ballast, run_wide_reason, stopped_error
from .trace import TraceRecorder


@dataclass
class RunFiles:
    """What a run writes to besides ``text/``."""

    ballast: Ballast
    scratch: RunTempDir
    trace: TraceRecorder
    manifest: StreamingManifest

    @classmethod
    def open(
        cls,
        layout: OutputLayout,
        meta: dict[str, Any],
        started_at: str,
        t0_ns: int,
        fresh: bool,
    ) -> RunFiles:
        """Prepare the folder, then open the reserve, the scratch folder, trace and manifest
        (``fresh``: a new journal, not a resumed one); the trace gets ``run_start``."""
        layout.prepare()
        try:
            ballast = Ballast(layout.root)
        except OSError as exc:
            reason = run_wide_reason(exc) or f"the output folder failed ({exc})"
            raise stopped_error(reason, 0) from exc
        RunTempDir.remove_stale()
        scratch = RunTempDir()
        trace = TraceRecorder(layout.trace, t0_ns)
        trace.metadata(meta)
        manifest = StreamingManifest(
            layout.manifest, meta, started_at, fresh=fresh, tmp_dir=scratch.path
        )
        trace.run_start(time.monotonic_ns())
        return cls(ballast, scratch, trace, manifest)
