"""In a real Jupyter kernel: the run cell's widgets and their stored final state; a kernel
interrupt during a blocking ``ocrlab.run`` is Ctrl-C.

The kernel imports ocrlab from this checkout (PYTHONPATH set to the repository
root in its environment; the first cell proves it).
"""

from __future__ import annotations

import json
import os
import queue
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ocrlab.output.manifest import load_manifest
from ocrlab.output.trace_reader import load_trace
from tests.conftest import ROOT, make_page

pytestmark = pytest.mark.slow

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels inherit this environment: the checkout first on the path, no CI switch."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    )
    monkeypatch.delenv("CI", raising=False)


def _corpus(folder: Path, n: int) -> Path:
    for i in range(n):
        make_page(folder / f"p{i}.png", f"page {i}")
    return folder


def test_run_cell_widget_state_says_every_page_is_done(tmp_path: Path, kernel_env: None) -> None:
    from nbclient import NotebookClient

    corpus = _corpus(tmp_path / "in", 6)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import ocrlab\nprint(ocrlab.__file__)"),
        # live_view=True: nbclient runs cells without stdin, which is headless (quiet) by default
        nbformat.v4.new_code_cell(
            f"summary = ocrlab.run({str(corpus)!r}, {str(tmp_path / 'out')!r}, workers=2,\n"
            "                     engine='ocrlab.engines.fakes:sleepy', live_view=True,\n"
            "                     engine_options={'sleep': 0.4})\nsummary.pages"
        ),
        nbformat.v4.new_code_cell(
            f"from ocrlab.lab.widgets import PageViewer\nPageViewer({str(tmp_path / 'out')!r})"
        ),
        # A background run: the cell returns at once, the next one collects the result.
        nbformat.v4.new_code_cell(
            f"handle = ocrlab.start({str(corpus)!r}, {str(tmp_path / 'bg')!r}, workers=2,\n"
            "                      engine='ocrlab.engines.fakes:sleepy', live_view=True,\n"
            "                      engine_options={'sleep': 0.4})\nhandle.done()"
        ),
        nbformat.v4.new_code_cell("handle.result().pages, handle.status"),
    ]
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == str(ROOT / "ocrlab" / "__init__.py")
    run_outputs = nb.cells[1].outputs
    assert any(WIDGET_VIEW in o.get("data", {}) for o in run_outputs), run_outputs
    assert not [o for o in run_outputs if o["output_type"] == "error"]
    assert run_outputs[-1]["data"]["text/plain"] == "6"
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    # the bar counts the estimated work, from 0 to 1
    bars = [m["state"] for m in state.values() if m["model_name"] == "FloatProgressModel"]
    assert any(b["value"] == b["max"] == 1.0 and b.get("bar_style") == "success" for b in bars)
    html = [m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"]
    assert any(
        'data-pages-done="6" data-pages-total="6" data-status="complete"' in h for h in html
    ), html
    started = nb.cells[3].outputs
    assert any(WIDGET_VIEW in o.get("data", {}) for o in started), started
    assert started[-1]["data"]["text/plain"] == "False", "start returned before the run ended"
    assert nb.cells[4].outputs[-1]["data"]["text/plain"] == "(6, 'complete')"
    background = [
        m["state"]
        for m in state.values()
        if m["model_name"] == "FloatProgressModel"
        and "background" in m["state"].get("description", "")
    ]
    assert background and background[0]["value"] == background[0]["max"] == 1.0
    viewer = nb.cells[2].outputs
    assert not [o for o in viewer if o["output_type"] == "error"], viewer
    # The page viewer: an image model with PNG bytes and the page's text.
    assert any(m["model_name"] == "ImageModel" for m in state.values())
    assert any("ocrlab-page-text" in h and "p0.png" in h for h in html), (viewer, html)


def _wait(kc: Any, msg_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply: dict[str, Any] = kc.get_shell_msg(timeout=1)
        except queue.Empty:
            assert time.monotonic() < deadline, "no reply from the kernel"
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def test_kernel_interrupt_during_a_blocking_run_is_ctrl_c(tmp_path: Path, kernel_env: None) -> None:
    from jupyter_client.manager import start_new_kernel

    corpus = _corpus(tmp_path / "in", 12)
    out = tmp_path / "out"
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        code = (
            f"import ocrlab\nocrlab.run({str(corpus)!r}, {str(out)!r}, workers=2, "
            "engine='ocrlab.engines.fakes:sleepy', engine_options={'sleep': 1.0})"
        )
        msg_id = kc.execute(code)
        deadline = time.monotonic() + 120
        while not (
            (out / "trace.json").is_file()
            and sum(e.get("ph") == "X" for e in load_trace(out / "trace.json")) >= 2
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        km.interrupt_kernel()
        reply = _wait(kc, msg_id, 60)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        manifest = load_manifest(out)
        assert manifest["status"] == "interrupted"
        assert 0 < len(manifest["documents"]) < 12
        # The kernel is fine afterwards, and no worker of the run is left.
        ok = _wait(kc, kc.execute("import psutil; print(len(psutil.Process().children()))"), 30)
        assert ok["content"]["status"] == "ok"
        ends = [e for e in load_trace(out / "trace.json") if e.get("name") == "run_end"]
        assert json.loads(json.dumps(ends[0]["args"]))["status"] == "interrupted"
        assert not list(out.rglob(".*.tmp*"))
        assert re.match(r"^\{", (out / "results.json").read_text())
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
