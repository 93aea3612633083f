"""Input trees a filesystem allows: names of any bytes and length, every file type, links,
races with other programs, permissions. Each entry ends read, as an error entry or as a
counted skip; the run never stops, hangs or prints a traceback (:mod:`tests.odd_checks`).

The echo engine (``ocrlab.engines.fakes:echo``, real worker processes) keeps these fast;
the last test reads odd names with real Tesseract, bundles on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import unicodedata
from pathlib import Path

import pytest

import ocrlab
from ocrlab.output.layout import OutputLayout
from ocrlab.output.manifest import load_manifest
from tests.conftest import make_page
from tests.helpers import run_to_end
from tests.odd_checks import ECHO, check_run, png_bytes

PNG = png_bytes()


def _write(root: Path, name: str | bytes, data: bytes = PNG) -> Path:
    path = root / (os.fsdecode(name) if isinstance(name, bytes) else name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_long_names_fit_name_max_and_resume(tmp_path: Path) -> None:
    """A 249-byte name stopped the run ("File name too long": the artifact adds .txt, the
    atomic writer a temporary suffix); names up to NAME_MAX are read, too-long artifact
    names are shortened with a hash, and the mapping holds for --resume."""
    inp, out = tmp_path / "in", tmp_path / "out"
    names = [
        "x" * 245 + ".png",  # 249 bytes: the reported case
        "y" * 251 + ".png",  # 255 bytes: NAME_MAX
        "z" * 240 + "a" * 11 + ".png",  # two 255-byte names with a long common start
        "z" * 240 + "b" * 11 + ".png",
        "é" * 125 + ".png",  # 254 bytes of two-byte characters
        "d" * 255 + "/" + "w" * 251 + ".png",  # in a folder named with 255 bytes
    ]
    for name in names:
        _write(inp, name)
    summary = ocrlab.run(inp, out, workers=2, engine=ECHO, progress=False)
    records = check_run(out, inp, summary)
    assert summary.documents_ok == len(names) and summary.exit_code == 0
    artifacts = [records[n]["artifact"] for n in names]
    assert len(set(artifacts)) == len(names)
    assert artifacts[0] == f"text/{names[0]}.txt", "a name that fits keeps its name"
    assert all("~" in Path(a).name for a in artifacts[1:]), artifacts
    again = ocrlab.run(inp, out, workers=2, engine=ECHO, progress=False, resume=True)
    assert again.documents_kept == len(names)
    check_run(out, inp, again)


def test_names_of_any_bytes(tmp_path: Path) -> None:
    """Bytes that are not UTF-8, line breaks, tabs, dashes, dots, case and Unicode
    normalization twins, FAT-unfriendly characters, a folder named like an artifact."""
    inp, out = tmp_path / "in", tmp_path / "out"
    names: list[str | bytes] = [
        b"caf\xe9.png",
        b"\xff\xfe scan.png",
        "line\nbreak.png",
        "car\riage.png",
        "tab\there.png",
        "-starts-with-dash.png",
        "--help",  # a PNG without an extension, named like an option
        " spaces .png ",
        "back\\slash.png",
        'a:b?c*"<>|.png',
        "Scan.png",
        "scan.png",
        unicodedata.normalize("NFC", "é.png"),
        unicodedata.normalize("NFD", "é.png"),
        "x",  # a PNG named x: its artifact is text/x.txt ...
        "x.txt/y.png",  # ... which is where this folder's artifacts would go
        ".hidden.png",
        ".hidden-folder/inside.png",
    ]
    for name in names:
        _write(inp, name)
    summary = ocrlab.run(inp, out, workers=2, engine=ECHO, progress=False)
    records = check_run(out, inp, summary)
    assert summary.exit_code == 0 and summary.documents_ok == len(names) - 2
    assert load_manifest(out)["summary"]["skipped"] == {"hidden": 2}
    # whichever finished first has its own name; the other a hashed one at the top of text/
    clash = {records["x"]["artifact"], records["x.txt/y.png"]["artifact"]}
    assert "text/x.txt" in clash or "text/x.txt/y.png.txt" in clash, clash
    assert any(Path(a).parent == Path("text") and "~" in a for a in clash), clash
    assert {os.fsencode(d) for d in records} >= {b"caf\xe9.png", b"\xff\xfe scan.png"}
    log = (out / "ocrlab.log").read_text("utf-8")
    assert "doc=line\\nbreak.png " in log and "doc=caf\\udce9.png " in log


def test_every_file_type_ends_read_skipped_or_an_error(tmp_path: Path) -> None:
    """FIFOs (opening one waits for a writer forever), a socket, a device, links broken,
    looping, to a folder and to a file, empty files, a 3 GiB sparse PNG and a 2 GiB
    sparse PDF (which PDFium would read whole): the command ends, exit 1, nothing hangs."""
    inp, out = tmp_path / "in", tmp_path / "out"
    _write(inp, "ok.png")
    os.mkfifo(inp / "pipe.png")
    os.mkfifo(inp / "pipe")
    server = socket.socket(socket.AF_UNIX)
    here = os.getcwd()
    os.chdir(inp)  # a socket's path is limited to 108 bytes: bind it relatively
    try:
        server.bind("sock.png")
    finally:
        os.chdir(here)
    os.symlink("/dev/null", inp / "null.png")
    os.symlink("nowhere.png", inp / "dangling.png")
    os.symlink("nowhere", inp / "dangling")
    os.symlink("loop", inp / "loop")
    os.symlink("ok.png", inp / "link.png")
    _write(inp, "sub/inner.png")
    os.symlink("sub", inp / "folder-link")
    _write(inp, "empty.png", b"")
    _write(inp, "empty", b"")
    _write(inp, "garbage.png", b"not an image at all")
    _write(inp, "notes.gt.txt", b"ground truth")
    with open(inp / "sparse.png", "wb") as fh:
        fh.write(PNG)
        fh.truncate(3 << 30)
    with open(inp / "sparse.pdf", "wb") as fh:
        fh.write(b"%PDF-1.4\n")
        fh.truncate(2 << 30)
    try:
        done = run_to_end("run", str(inp), "--out", str(out), "--engine", ECHO, "--workers", "2")
    finally:
        server.close()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    summary = load_manifest(out)["summary"]
    assert summary["skipped"] == {
        "special_file": 4,  # two FIFOs, the socket, /dev/null
        "broken_link": 2,  # dangling, loop
        "folder_link": 1,
        "not_a_document": 2,  # empty, notes.gt.txt
    }
    records = {d["doc_id"]: d for d in load_manifest(out)["documents"]}
    failed = {k: v["errors"][0]["type"] for k, v in records.items() if v["status"] != "ok"}
    assert failed == {
        "dangling.png": "BrokenLink",
        "empty.png": "UnsupportedFormat",
        "garbage.png": "UnsupportedFormat",
        "sparse.pdf": "UnsupportedFormatError",
    }
    assert {k for k, v in records.items() if v["status"] == "ok"} == {
        "ok.png",
        "link.png",
        "sub/inner.png",
        "sparse.png",  # the echo engine reads only the header; its input hash is sampled
    }
    assert records["sparse.png"]["input_sha256"].startswith("sampled:")


def test_inputs_changed_by_another_program_during_the_run(tmp_path: Path) -> None:
    """Removed, replaced by a FIFO, truncated between discovery and OCR; removed before
    discovery reached it; a folder removed before the walk listed it. The first page
    makes the changes (``fakes.saboteur``) while the next pages wait in flight."""
    inp, out = tmp_path / "in", tmp_path / "out"
    for name in ("0-saboteur.png", "0-waits.png", "1-gone.png", "2-fifo.png", "3-cut.png"):
        _write(inp, name)
    _write(inp, "4-late.png")
    _write(inp, "5-vanished.png")
    _write(inp, "z-folder/a.png")
    changes = [
        f"delete:{inp / '1-gone.png'}",
        f"fifo:{inp / '2-fifo.png'}",
        f"truncate:{inp / '3-cut.png'}",
        f"delete:{inp / '5-vanished.png'}",
        f"rmtree:{inp / 'z-folder'}",
    ]
    summary = ocrlab.run(
        inp,
        out,
        workers=2,
        inflight_per_worker=3,  # six pages discovered and in flight before the change
        order="discovery",
        engine="ocrlab.engines.fakes:saboteur",
        engine_options={
            "sabotage_on": "0-saboteur.png",
            "sabotage_after_s": 2.0,
            "sabotage": "|".join(changes),
            "wait_on": "0-waits.png",
            "done_flag": str(tmp_path / "changed"),
        },
        progress=False,
    )
    records = {d["doc_id"]: d for d in load_manifest(out)["documents"]}
    assert load_manifest(out)["status"] == "complete" and summary.exit_code == 1
    errors = {k: v["errors"][0]["type"] for k, v in records.items() if v["status"] != "ok"}
    assert errors == {
        "1-gone.png": "InputFileError",  # discovered, then removed before its OCR
        "2-fifo.png": "InputFileError",  # replaced by a FIFO: no wait
        "3-cut.png": "UnidentifiedImageError",  # truncated to nothing
        "5-vanished.png": "UnreadableFile",  # removed before discovery reached it
        "z-folder": "UnreadableDirectory",  # removed before the walk listed it
    }, errors
    assert "FIFO" in records["2-fifo.png"]["errors"][0]["message"]
    ok = {k for k, v in records.items() if v["status"] == "ok"}
    assert ok == {"0-saboteur.png", "0-waits.png", "4-late.png"}


def test_unreadable_file_and_folder(tmp_path: Path) -> None:
    """chmod 000 does not stop root: the command runs without the capabilities that let
    root read anything (setpriv), as an ordinary user would meet such files."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop the read-anything capabilities")
    inp, out = tmp_path / "in", tmp_path / "out"
    _write(inp, "ok.png")
    _write(inp, "locked.png").chmod(0)
    _write(inp, "closed/inside.png")
    (inp / "closed").chmod(0)
    caps = "-dac_override,-dac_read_search"
    prefix = ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--")
    probe = subprocess.run([*prefix, "cat", str(inp / "locked.png")], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("setpriv could not drop the capabilities here")
    try:
        done = run_to_end("run", str(inp), "--out", str(out), "--engine", ECHO, prefix=prefix)
    finally:
        (inp / "closed").chmod(0o755)
    assert done.returncode == 1, done.stderr
    records = {d["doc_id"]: d for d in load_manifest(out)["documents"]}
    assert {k: v["status"] for k, v in records.items()} == {
        "ok.png": "ok",
        "locked.png": "failed",
        "closed": "failed",
    }
    assert records["locked.png"]["errors"][0]["type"] == "UnreadableFile"
    assert "Permission denied" in records["closed"]["errors"][0]["message"]


def _down(fd: int, name: str) -> int:
    """Make folder ``name`` in the open folder ``fd`` and open it (closing ``fd``)."""
    os.mkdir(name, dir_fd=fd)
    try:
        return os.open(name, os.O_RDONLY, dir_fd=fd)
    finally:
        os.close(fd)


def test_paths_near_and_past_path_max(tmp_path: Path) -> None:
    """A document 4000 bytes deep is read (its artifact, deeper still under the output
    folder, goes to a hashed name at the top of text/); a folder past PATH_MAX is an
    error entry. Made with relative paths from open folders, as other programs can."""
    inp, out = tmp_path / "in", tmp_path / "out"
    _write(inp, "top.png")
    fd = os.open(inp, os.O_RDONLY)
    try:
        depth = len(os.fsencode(inp))
        while 4020 - depth - len("/deep.png") > 250:
            fd = _down(fd, "d" * 200)
            depth += 201
        fd = _down(fd, "e" * (4020 - depth - len("/deep.png") - 1))  # deep.png: 4020 bytes
        with os.fdopen(os.open("deep.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as fh:
            fh.write(PNG)
        fd = _down(fd, "f" * 200)  # past PATH_MAX (4096): cannot be listed by its path
        fd = _down(fd, "g")
    finally:
        os.close(fd)
    summary = ocrlab.run(inp, out, workers=2, engine=ECHO, progress=False)
    records = check_run(out, inp, summary)
    deep = next(k for k in records if k.endswith("deep.png"))
    assert records[deep]["status"] == "ok" and records["top.png"]["status"] == "ok"
    assert records[deep]["artifact"].count("/") == 1, "flat, hashed name"
    assert (out / records[deep]["artifact"]).read_text() == f"{deep} page 1\n\f"
    too_deep = [v for v in records.values() if v["status"] == "failed"]
    assert len(too_deep) == 1 and too_deep[0]["errors"][0]["type"] == "UnreadableDirectory"
    assert summary.exit_code == 1 and load_manifest(out)["status"] == "complete"
    shutil.rmtree(inp, ignore_errors=True)  # pytest's own clean-up walks by full path


def test_artifact_names_never_replace_another_documents(tmp_path: Path) -> None:
    """The writer takes the first name the filesystem takes without replacing a file (on a
    filesystem that folds case, Scan.png's artifact would be scan.png's)."""
    layout = OutputLayout(tmp_path / "out")
    layout.prepare()
    natural, beside, top = layout.artifact_candidates("a/Scan.png")
    assert natural == layout.text_dir / "a" / "Scan.png.txt"
    assert beside.parent == natural.parent and beside.name.startswith("Scan.png~")
    assert top.parent == layout.text_dir and top.name == beside.name
    long_id = "q" * 255
    assert len(layout.artifact_path(long_id).name.encode()) == 255
    assert layout.artifact_path(long_id) != layout.artifact_path("q" * 254 + "r")


@pytest.mark.slow
def test_odd_names_read_by_tesseract_with_bundles(tmp_path: Path) -> None:
    """Real Tesseract, bundles on: each odd name's text is the text of the same image under
    a plain name (a line break in a name would make Tesseract's list read two pages; such
    pages run alone)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    odd: list[str] = [
        os.fsdecode(b"caf\xe9.png"),
        "line\nbreak.png",
        "-dash.png",
        "x" * 245 + ".png",
        "y" * 251 + ".png",
    ]
    for i, name in enumerate(odd):
        make_page(inp / name, f"Odd name {i}", size=(300, 80))
        make_page(inp / f"plain-{i}.png", f"Odd name {i}", size=(300, 80))
    summary = ocrlab.run(inp, out, workers=2, progress=False, bundle_mp=4.0)
    records = check_run(out, inp, summary, echo=False)
    assert summary.documents_ok == 2 * len(odd)
    for i, name in enumerate(odd):
        text = (out / records[name]["artifact"]).read_text("utf-8")
        assert text == (out / records[f"plain-{i}.png"]["artifact"]).read_text("utf-8")
        assert f"name {i}" in text, text


def test_hidden_names_in_two_inputs_do_not_collide(tmp_path: Path) -> None:
    """Two input folders each with a .DS_Store and a .git/ give no document id twice: what
    is skipped is not a document (the names-only pre-pass once counted it)."""
    for root in ("a", "b"):
        _write(tmp_path / root, ".DS_Store", b"x")
        _write(tmp_path / root, ".git/HEAD", b"ref")
        _write(tmp_path / root, f"{root}.png")
    summary = ocrlab.run(
        [tmp_path / "a", tmp_path / "b"], tmp_path / "out", engine=ECHO, progress=False
    )
    assert summary.documents_ok == 2 and summary.skipped == {"hidden": 4}
