"""``ocrlab report`` (``make report``): reports regenerate, and a failed one is named.

Small stand-in notebooks under the bundled names, so the report machinery (papermill,
nbconvert, the index, the exit code, the work folders) runs in seconds: one makes an
ocrlab run in its work folder as the trace explorer does, without ``overwrite`` (the
second ``make report`` used to stop there with OutputNotEmptyError), one fails.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from ocrlab import cli
from ocrlab.lab import report
from tests.conftest import make_page

pytest.importorskip("papermill")


def _notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('corpus = "."\nout_dir = "out"\nworkers = 1')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(
        books / "03-trace-explorer.ipynb",
        "from pathlib import Path\nimport ocrlab\n"
        'summary = ocrlab.run(corpus, Path(out_dir) / "run", workers=1, progress=False,\n'
        '                     engine="ocrlab.engines.fakes:echo")\n'
        "print(summary.documents_ok)",
    )
    _notebook(books / "02-output-identity.ipynb", 'raise RuntimeError("this report fails")')
    monkeypatch.setattr(report, "NOTEBOOKS_DIR", books)
    return books


def test_report_twice_regenerates_and_names_the_failed_report(
    tmp_path: Path, stand_ins: Path
) -> None:
    corpus = tmp_path / "corpus"
    make_page(corpus / "a.png", "a", size=(40, 20))
    out = tmp_path / "reports"
    argv = ["report", "--out", str(out), "--corpus", str(corpus)]
    for attempt in (1, 2):
        assert cli.main(argv) == 1, f"run {attempt}: a failed notebook must fail the command"
        index = (out / "index.html").read_text(encoding="utf-8")
        assert "1 of 2 report(s) FAILED: 02-output-identity" in index, index
        explorer = index.split("03-trace-explorer</a>")[1].split("</li>")[0]
        assert "FAILED" not in explorer, f"run {attempt}: the explorer must regenerate: {index}"
        assert (out / "03-trace-explorer.html").is_file()
        failed = (out / "02-output-identity.html").read_text(encoding="utf-8")
        assert "this report fails" in failed
    only_ok = ["report", "--out", str(out), "--corpus", str(corpus), "--only", "03-trace-explorer"]
    assert cli.main(only_ok) == 0
    assert "All 1 report(s) ran without error" in (out / "index.html").read_text("utf-8")
