"""A real JupyterLab in a real browser: the live view, the progress bar and the page viewer.

Starts JupyterLab from this environment (random free port, a token, a
temporary root folder, its own settings, a kernelspec whose environment puts
this checkout first on ``PYTHONPATH``), opens a small notebook in headless
Debian Chromium driven by Playwright, runs it from the Run menu, and waits
until the live view reports every page done and the run complete; then checks
that the page viewer shows an image and text. Screenshots go to ``tmp_path``
and to ``test-output/`` in the checkout (git-ignored): the README's picture
comes from there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import ocrlab
from tests.conftest import DATA, ROOT

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KERNEL = "ocrlab-checkout"
PAGES = ("letters/note.png", "forms/note.png", "forms/card.webp", "reports/memo.png")


def _missing() -> str | None:
    if CHROMIUM is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    if importlib.util.find_spec("jupyterlab") is None:
        return "jupyterlab is not installed (pip install 'ocrlab[notebooks]')"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install 'ocrlab[browser]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _notebook(root: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": KERNEL,
        "display_name": "ocrlab (checkout)",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell("import ocrlab\nprint(ocrlab.__file__)"),
        nbformat.v4.new_code_cell('summary = ocrlab.run("corpus", "out", workers=2)'),
        nbformat.v4.new_code_cell('from ocrlab.lab.widgets import PageViewer\nPageViewer("out")'),
        # (once, even if the menu is used twice: see _run_all_cells)
        nbformat.v4.new_code_cell(
            'handle = globals().get("handle") or ocrlab.start("corpus", "out-bg", workers=2)'
        ),
    ]
    path = root / "live.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(URL of the notebook with its token, root folder, sessions API URL) of a running
    JupyterLab."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "root"
    for rel in PAGES:
        src = DATA / rel
        (root / "corpus" / Path(rel).parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / "corpus" / rel)
        for gt in src.parent.glob(src.name.rsplit(".", 1)[0] + ".gt.txt"):
            shutil.copy(gt, root / "corpus" / Path(rel).parent / gt.name)
    _notebook(root)
    home = tmp_path / "jupyter"
    spec = home / "data" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "ocrlab (checkout)",
                "language": "python",
                "env": {"PYTHONPATH": str(ROOT)},
            }
        )
    )
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    notebook_settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    notebook_settings.mkdir(parents=True)
    (notebook_settings / "tracker.jupyterlab-settings").write_text(
        json.dumps({"autoStartDefaultKernel": True})
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(
        JUPYTER_PATH=str(home / "data"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
    )
    env.pop("PYTHONPATH", None)  # the kernelspec alone puts the checkout on the kernel's path
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyterlab.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.open_browser=False",
            "--ServerApp.port_retries=0",
            f"--MappingKernelManager.default_kernel_name={KERNEL}",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "jupyterlab.log").read_text()
                assert time.monotonic() < deadline, "JupyterLab did not start in 90 s"
                time.sleep(0.5)
        yield (
            f"{base}/lab/tree/live.ipynb?token={token}",
            root,
            f"{base}/api/sessions?token={token}",
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _save(page_or_element: object, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    page_or_element.screenshot(path=str(target))  # type: ignore[attr-defined]
    keep = ROOT / "test-output"
    keep.mkdir(exist_ok=True)
    shutil.copy(target, keep / name)
    return target


def _images_loaded(page: Any, selector: str, count: int = 1) -> None:
    """Until ``count`` images matching ``selector`` have loaded."""
    page.wait_for_function(
        "([s, n]) => [...document.querySelectorAll(s)].filter(i => i.naturalWidth > 0).length >= n",
        arg=[selector, count],
        timeout=60_000,
    )


def _wait_for_kernel(sessions_url: str, timeout_s: float = 120) -> None:
    """Until the notebook's kernel is idle *and connected* (the page's execution indicator
    reads "idle" seconds before any kernel exists; requests sent then are lost, and so are
    the widgets' comm messages)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(sessions_url, timeout=5) as reply:
            kernels = [s["kernel"] for s in json.load(reply)]
        if any(k["execution_state"] == "idle" and k.get("connections", 0) >= 1 for k in kernels):
            time.sleep(1.0)  # the page's widget manager attaches to the new connection
            return
        time.sleep(0.25)
    raise AssertionError(f"the notebook's kernel did not become ready in {timeout_s} s")


def _run_all_cells(page: Any) -> None:
    """Run > Run All Cells, as a user does.

    JupyterLab 4.6 here sometimes drops execute requests sent in the first seconds after
    the kernel shows idle (the first cell runs, the others stay ``[ ]``). So: use the menu,
    and when not every cell got queued, wait for the queue to drain and use it again.
    """
    prompts = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt")
    for _ in range(5):
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        for _ in range(40):
            texts = prompts.all_inner_texts()
            if all(re.search(r"\[[*0-9]", t) for t in texts):
                return
            page.wait_for_timeout(250)
        while any("*" in t for t in prompts.all_inner_texts()):
            page.wait_for_timeout(250)
    raise AssertionError(f"the cells never all started: {prompts.all_inner_texts()}")


def test_live_view_and_page_viewer_in_jupyterlab(
    jupyterlab: tuple[str, Path, str], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, root, sessions = jupyterlab
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000
            )
            dialog = page.locator(".jp-Dialog button", has_text="Select")
            if dialog.count():  # "Select Kernel", when JupyterLab still asks
                dialog.first.click()
            _wait_for_kernel(sessions)
            _save(page, tmp_path, "jupyterlab-start.png")
            _run_all_cells(page)
            # The blocking run's view; the background run's (a later cell) may be there too.
            view = page.locator(".ocrlab-live-view").first
            view.wait_for(timeout=60_000)
            running = view.locator("[data-status='running']")
            try:  # a picture of the run while it goes, for the README
                running.wait_for(timeout=60_000)
                page.wait_for_function(
                    "() => { const e = document.querySelector("
                    "'.ocrlab-live-view [data-status=running]');"
                    " return e && +e.dataset.pagesDone >= 1; }",
                    timeout=120_000,
                )
                _save(view, tmp_path, "live-view-running.png")
            except Exception:
                pass  # the run may finish between two looks; the final state is checked
            done = view.locator("[data-status='complete']")
            done.wait_for(timeout=300_000)
            total = done.get_attribute("data-pages-total")
            assert total and int(total) == len(PAGES)
            assert done.get_attribute("data-pages-done") == total
            bar = view.locator(".progress-bar")
            page.wait_for_function(
                "() => document.querySelector('.ocrlab-live-view .progress-bar')"
                ".style.width === '100%'",
                timeout=30_000,
            )
            assert bar.count() == 1
            assert f"{total} / {total}" in view.inner_text()
            _save(view, tmp_path, "live-view.png")
            viewer = page.locator(".ocrlab-page-viewer")
            viewer.wait_for(timeout=120_000)
            _images_loaded(page, ".ocrlab-page-viewer img")
            text = viewer.locator(".ocrlab-page-text").first
            text.wait_for(timeout=30_000)
            assert len(text.inner_text().strip()) > 20
            _save(viewer, tmp_path, "page-viewer.png")
            _save(page, tmp_path, "jupyterlab.png")
            # The background run: its own view, which reaches the end while the kernel is idle.
            bg = page.locator(".ocrlab-live-view [data-status='complete']").nth(1)
            bg.wait_for(timeout=300_000)
            assert bg.get_attribute("data-pages-done") == total
            first = page.locator(".jp-Cell .jp-OutputArea-output").first.inner_text()
            assert str(ROOT / "ocrlab" / "__init__.py") in first, "kernel imports the checkout"
        except BaseException:
            _save(page, tmp_path, "jupyterlab-failure.png")  # what the browser showed
            raise
        finally:
            browser.close()
    for out in ("out", "out-bg"):
        manifest = json.loads((root / out / "results.json").read_text())
        assert manifest["status"] == "complete"


@contextlib.contextmanager
def _notebook_page(url: str, sessions: str, tmp_path: Path, failure: str) -> Iterator[Any]:
    """A Chromium page on the notebook at ``url``, its kernel connected; on a failure,
    a screenshot named ``failure`` of what the browser showed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            dialog = page.locator(".jp-Dialog button", has_text="Select")
            if dialog.count():
                dialog.first.click()
            _wait_for_kernel(sessions)
            yield page
        except BaseException:
            _save(page, tmp_path, failure)
            raise
        finally:
            browser.close()


def _write_notebook(root: Path, name: str, cells: list[str]) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "ocrlab", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, root / name)
    return name


#: name, size: portrait A4-ish, the issue's landscape page, a very tall strip
SHAPES = {"portrait.png": (1240, 1754), "landscape.png": (3312, 2550), "tall.png": (600, 4200)}


def _shapes_run(root: Path) -> None:
    """Pages of three shapes, each with a long ground truth (a text column far taller than
    the image: what stretched the image in a flex row), OCRed by the echo engine."""
    from tests.conftest import make_page

    words = " ".join(f"word{i}" for i in range(12))
    for name, size in SHAPES.items():
        make_page(root / "shapes" / name, name, size=size)
        (root / "shapes" / name.replace(".png", ".gt.txt")).write_text(f"{words}\n" * 25)
    ocrlab.run(root / "shapes", root / "out-shapes", engine="ocrlab.engines.fakes:echo")


def _comparison_runs(root: Path) -> list[str]:
    """The corpus at one and two workers, and at two with sparse-text segmentation."""
    outs = ["out-w1", "out-w2", "out-w2-psm11"]
    ocrlab.run(root / "corpus", root / outs[0], workers=1)
    ocrlab.run(root / "corpus", root / outs[1], workers=2)
    ocrlab.run(root / "corpus", root / outs[2], workers=2, psm=11)
    return outs


def _save_visible(page: Any, element: Any, tmp_path: Path, name: str) -> Path:
    """A screenshot of what the user sees of ``element``: scrolled into view, cut to the
    window (an element screenshot of something taller than the window, inside JupyterLab's
    own scrolling, shows the wrong part)."""
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    assert box is not None
    view = page.viewport_size
    top = max(0.0, box["y"])
    clip = {
        "x": max(0.0, box["x"]),
        "y": top,
        "width": min(box["width"], view["width"] - max(0.0, box["x"])),
        "height": min(box["y"] + box["height"], view["height"]) - top,
    }
    target = tmp_path / name
    page.screenshot(path=str(target), clip=clip)
    keep = ROOT / "test-output"
    keep.mkdir(exist_ok=True)
    shutil.copy(target, keep / name)
    return target


def _reduce(path: Path, target: Path) -> None:
    """A palette-reduced copy for the README (a few tens of kB)."""
    from PIL import Image

    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=64).save(target, optimize=True)


def test_failures_stay_open_pages_keep_shape_runs_compared(
    jupyterlab: tuple[str, Path, str], tmp_path: Path
) -> None:
    """During a run a user opens the failure list and reads it across refreshes; the page
    viewer keeps each page's proportions beside a long text; runs are compared side by side;
    the background view's title is whole."""

    url, root, sessions = jupyterlab
    (root / "faulty").mkdir()
    for name in ("a.png", "b.png", "slow.png", "c.png"):
        shutil.copy(DATA / "letters" / "note.png", root / "faulty" / name)
    (root / "faulty" / "empty.png").write_bytes(b"")
    _shapes_run(root)
    compared = _comparison_runs(root)
    name = _write_notebook(
        root,
        "second.ipynb",
        [
            "import ocrlab",
            'ocrlab.run("faulty", "out-f", workers=2, engine="ocrlab.engines.fakes:faulty",\n'
            '           engine_options={"fail_on": "a.png", "hang_on": "slow.png", "hang_s": 8})',
            'from ocrlab.lab.widgets import PageViewer, RunComparison\nPageViewer("out-shapes")',
            f"RunComparison({compared!r})",
            'handle = globals().get("handle") or ocrlab.start("faulty", "out-bg", workers=2,\n'
            '    engine="ocrlab.engines.fakes:sleepy", engine_options={"sleep": 0.5})',
        ],
    )
    page_url = url.replace("live.ipynb", name)
    with _notebook_page(page_url, sessions, tmp_path, "jupyterlab-second-failure.png") as page:
        _run_all_cells(page)
        view = page.locator(".ocrlab-live-view").first
        header = view.locator(".ocrlab-failures-box").get_by_text("failure(s)")
        header.wait_for(timeout=120_000)
        assert view.locator("[data-status='running']").count() == 1, "still running"
        header.click()
        listed = view.locator(".ocrlab-failures")
        listed.wait_for(state="visible", timeout=10_000)
        seen = set()
        for _ in range(8):  # four seconds: eight refreshes of the view
            page.wait_for_timeout(500)
            assert listed.is_visible(), "the failure list closed by itself"
            seen.add(view.locator(".ocrlab-status").inner_text())
            seen.add(view.locator("table").inner_text())  # the elapsed time moves
        assert "running" in seen and len(seen) > 2, seen  # refreshed meanwhile
        assert "injected failure on a.png" in listed.inner_text()
        _save(view, tmp_path, "live-view-failures.png")
        view.locator("[data-status='complete']").wait_for(timeout=120_000)
        page.wait_for_timeout(1000)
        assert listed.is_visible() and "empty.png" in listed.inner_text()

        viewer = page.locator(".ocrlab-page-viewer")
        viewer.wait_for(timeout=120_000)
        for shape, (width, height) in SHAPES.items():
            viewer.locator("select").nth(1).select_option(label=shape)
            page.wait_for_function(
                "r => { const i = document.querySelector('.ocrlab-page-viewer img');"
                " return i && i.naturalWidth > 0 &&"
                " Math.abs(i.naturalWidth / i.naturalHeight - r) < 0.01; }",
                arg=width / height,
                timeout=60_000,
            )
            box = viewer.locator("img").bounding_box()
            assert box is not None
            drawn, natural = box["width"] / box["height"], width / height
            assert abs(drawn / natural - 1) < 0.02, (shape, box, natural)
            _save_visible(page, viewer, tmp_path, f"page-viewer-{shape}")
        comparison = page.locator(".ocrlab-comparison")
        comparison.wait_for(timeout=120_000)
        _images_loaded(page, ".ocrlab-comparison img", 2)  # memory, timelines
        comparison.scroll_into_view_if_needed()
        summary = comparison.locator(".ocrlab-comparison-summary").text_content() or ""
        assert "identical" in summary and "baseline" in summary
        shot = _save_visible(page, comparison, tmp_path, "run-comparison.png")
        _reduce(shot, ROOT / "test-output" / "run-comparison-small.png")

        bg = page.locator(".ocrlab-live-view").nth(1)
        bg.wait_for(timeout=120_000)
        label = bg.locator(".widget-label").first
        assert label.inner_text() == "OCR (background)"
        assert label.evaluate("e => e.scrollWidth <= e.clientWidth"), "label cut"
        bg.locator("[data-status='complete']").wait_for(timeout=120_000)
        _save(bg, tmp_path, "live-view-background.png")


def test_status_bar_says_busy_during_a_run_with_comms_off_subshells(
    jupyterlab: tuple[str, Path, str], tmp_path: Path
) -> None:
    """JupyterLab 4.6 asks ipykernel 7 for a subshell when the first widget appears; the
    kernel's reply comes with its own busy/idle status, and JupyterLab and the server take
    the last status as the kernel's: "Idle" for the rest of the cell (docs/jupyter.md). With
    comms over subshells disabled, what the documentation gives as the way out, the status
    bar says "Busy" while ``ocrlab.run`` goes on."""

    url, root, sessions = jupyterlab
    settings = tmp_path / "jupyter" / "settings" / "@jupyterlab" / "apputils-extension"
    (settings / "kernels-settings.jupyterlab-settings").write_text(
        json.dumps({"commsOverSubshells": "disabled"})
    )
    name = _write_notebook(
        root,
        "busy.ipynb",
        [
            "import ocrlab\n"
            'ocrlab.run("corpus", "out-busy", workers=2, engine="ocrlab.engines.fakes:sleepy",\n'
            '           engine_options={"sleep": 2.0})'
        ],
    )
    page_url = url.replace("live.ipynb", name)
    with _notebook_page(page_url, sessions, tmp_path, "jupyterlab-busy-failure.png") as page:
        _run_all_cells(page)
        view = page.locator(".ocrlab-live-view").first
        view.locator("[data-status='running']").wait_for(timeout=120_000)
        status = page.locator(".jp-StatusBar-TextItem", has_text=re.compile("Idle|Busy"))
        seen = []
        while view.locator("[data-status='running']").count():
            seen.append(status.first.inner_text())
            page.wait_for_timeout(250)
        assert seen and all("Busy" in s for s in seen[:-1]), seen


def test_time_left_the_browser_shows_is_near_the_truth(
    jupyterlab: tuple[str, Path, str], tmp_path: Path, shared_corpus: Path
) -> None:
    """The time left as a user reads it in JupyterLab, over a mixed batch in cost order:
    from a quarter of the estimated work on, within 30% of the time the run really had
    left, or 2 s (the view's half-second refresh and the run's own finish). Sampled from
    the page four times a second; the truth is measured in the browser too (until the view
    says ``complete``), so the view's delay is on both sides. The engine sleeps in
    proportion to each page's pixels, as tests/test_timeleft.py explains."""
    from tests.helpers import mixed_batch

    url, root, sessions = jupyterlab
    mixed_batch(root / "mixed", shared_corpus)
    name = _write_notebook(
        root,
        "timeleft.ipynb",
        [
            "import ocrlab",
            'ocrlab.run("mixed", "out-tl", workers=2, engine="ocrlab.engines.fakes:sleepy",\n'
            '           engine_options={"sleep": 0.02, "sleep_per_mp": 0.3})',
        ],
    )
    read = (
        "() => { const e = document.querySelector('.ocrlab-live-view [data-status]');"
        " return e ? [e.dataset.status, e.dataset.timeLeft, e.dataset.workDone,"
        " e.dataset.pagesDone, e.dataset.pagesTotal] : null; }"
    )
    # (seconds, work done, time left shown, what pages left x seconds per page so far said)
    samples: list[tuple[float, float, float, float]] = []
    page_url = url.replace("live.ipynb", name)
    with _notebook_page(page_url, sessions, tmp_path, "jupyterlab-timeleft-failure.png") as page:
        _run_all_cells(page)
        view = page.locator(".ocrlab-live-view").first
        view.locator("[data-status='running']").wait_for(timeout=120_000)
        started = time.monotonic()
        shot: Path | None = None
        deadline = started + 300
        while True:
            now = time.monotonic()
            found = page.evaluate(read)
            if found and found[0] == "complete":
                end = now
                break
            if found and found[0] == "running" and found[1] and found[2]:
                done, total = int(found[3]), int(found[4])
                by_pages = (total - done) * (now - started) / max(1, done)
                samples.append((now, float(found[2]), float(found[1]), by_pages))
                if float(found[2]) >= 0.5 and not shot:  # what a user reads half way
                    shot = _save(view, tmp_path, "live-view-timeleft.png")
            assert time.monotonic() < deadline, f"the run did not end: {found}"
            page.wait_for_timeout(250)
    checked = [(f, shown, old, end - t) for t, f, shown, old in samples if f >= 0.25]
    assert len(checked) >= 10, samples

    def off(shown: float, truth: float) -> bool:
        return abs(shown - truth) > max(0.3 * truth, 2.0)

    wrong = [
        f"{f:.0%} done: shown {shown:.1f} s, truth {truth:.1f} s"
        for f, shown, _, truth in checked
        if off(shown, truth)
    ]
    worst = max((abs(s - t) / t for _, s, _, t in checked if t > 2.0), default=0.0)
    print(f"time left in the browser: {len(checked)} samples within the bound, worst {worst:.0%}")
    assert not wrong, wrong
    # what the view showed before it counted estimated work fails the same bound
    assert any(off(old, truth) for *_, old, truth in checked), checked
    assert json.loads((root / "out-tl" / "results.json").read_text())["status"] == "complete"
