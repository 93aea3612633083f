"""The names in ``trace.json`` that its writers and readers share: one place, one spelling.

The writer (:mod:`ocrlab.output.trace`, fed by the pipeline, the collector, the
scheduler and the supervisor) and every reader (the live views in
:mod:`ocrlab.follow`, the analysis and plots in :mod:`ocrlab.lab`, the tests) take
event and counter names from here, so a renamed counter is renamed everywhere
instead of silently emptying a plot. The strings themselves are what Perfetto
shows as track names, so they stay readable.
"""

from __future__ import annotations

from typing import Final

# -- instant events ("ph": "i") on the main process's run track ---------------------------
RUN_METADATA: Final = "run_metadata"  #: at time 0: config, versions, host, CPUs
RUN_START: Final = "run_start"  #: OCR begins
PAGES_FOUND: Final = "pages_found"  #: discovery so far (args: pages, work, sizes, final)
DOCUMENT_FAILED: Final = "document_failed"  #: a document that never reached a worker
WORKER_DIED: Final = "worker_died"
POOL_RESTARTED: Final = "pool_restarted"
PAGE_HUNG: Final = "page_hung"
WORKER_RECYCLED: Final = "worker_recycled"
WORKER_RECYCLE_FAILED: Final = "worker_recycle_failed"
RUN_END: Final = "run_end"  #: status and the summary
#: a Dask host's first samples (args: host, track = the pid of its counters, worker,
#: clock_offset_ms, clock_rtt_ms); readers learn which counter track is which host here
HOST_JOINED: Final = "host_joined"
#: a Dask worker that stopped answering (its host died): it leaves the host's sums
WORKER_LOST: Final = "worker_lost"
#: a merged run (``ocrlab merge``): each shard's own run_metadata, run_start and run_end
SHARD_METADATA: Final = "shard_metadata"
SHARD_START: Final = "shard_start"
SHARD_END: Final = "shard_end"

# -- counter events ("ph": "C"): the monitor's samples, and their fields ----------------------
MEMORY: Final = "memory (MB)"
TREE_RSS: Final = "tree RSS"
MAIN_RSS: Final = "main RSS"
TREE_PSS: Final = "tree PSS"
TREE_USS: Final = "tree USS"
FDS: Final = "file descriptors"
FDS_TREE: Final = "tree"
FDS_MAIN: Final = "main"
TESSERACTS: Final = "live tesseract processes"
TESSERACT_COUNT: Final = "tesseract"
#: the counter tracks in the order the plots draw them
COUNTERS: Final = (MEMORY, FDS, TESSERACTS)

# -- per-host counters on Dask: each on its host's own track (pid from HOST_JOINED) ----------
HOST_MEMORY: Final = "host memory (MB)"  #: series TREE_RSS, TREE_PSS, TESSERACT_RSS
HOST_FDS: Final = "host file descriptors"  #: series FDS_TREE
HOST_TESSERACTS: Final = "host tesseract processes"  #: series TESSERACT_COUNT
TESSERACT_RSS: Final = "tesseract RSS"
#: the sum over every host at one moment (not a sum of peaks), on the main process's track
CLUSTER_MEMORY: Final = "cluster memory (MB)"  #: series TREE_RSS, TREE_PSS
CLUSTER_TESSERACTS: Final = "cluster tesseract processes"  #: series TESSERACT_COUNT
HOST_COUNTERS: Final = (HOST_MEMORY, HOST_FDS, HOST_TESSERACTS)
#: a host's counter track is the process named this followed by the host's name
HOST_TRACK_PREFIX: Final = "host "

# -- complete events ("ph": "X"): their categories ---------------------------------------------
CAT_PAGE: Final = "page"
CAT_PAGE_ERROR: Final = "page,error"
CAT_DOCUMENT: Final = "document"


def is_page(event: dict[str, object]) -> bool:
    """A page span (ok or failed)."""
    return event.get("ph") == "X" and CAT_PAGE in str(event.get("cat", "")).split(",")
