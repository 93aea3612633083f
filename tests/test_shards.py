"""Sharded runs (``--shard I/N``) and ``ocrlab merge``: N runs that make one run's output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ocrlab
from ocrlab.config import load_config
from ocrlab.errors import ConfigError, MergeRefusedError
from ocrlab.follow import RunState
from ocrlab.output import trace_schema as ts
from ocrlab.output.audit import audit_output
from ocrlab.output.manifest import load_manifest
from ocrlab.output.merge import merge_outputs
from ocrlab.output.trace_reader import load_trace
from ocrlab.shards import Shard, ShardFilter, document_cost, slurm_shard
from ocrlab.sources import iter_documents
from tests.conftest import DATA, make_page
from tests.helpers import artifact_texts, copy_data

ECHO = "ocrlab.engines.fakes:echo"


def _records(out: Path) -> list[dict[str, Any]]:
    """The manifest's documents without what differs between any two runs (times, pids)."""
    return [
        {k: v for k, v in d.items() if k not in {"seconds", "workers"}}
        for d in load_manifest(out)["documents"]
    ]


COUNTS = ("documents", "documents_ok", "documents_partial", "documents_failed", "pages")


def test_shard_setting_accepts_i_of_n_and_slurm_and_refuses_the_rest() -> None:
    assert load_config(shard="2/4").shard == "2/4"
    assert load_config(env={"OCR_SHARD": " 0/1 "}).shard == "0/1"
    assert load_config().shard is None
    for bad in ("4/4", "-1/4", "a/b", "3", "1/0", "0/10001"):
        with pytest.raises(ConfigError, match="not a shard; use I/N"):
            load_config(shard=bad)
    array = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4"}
    # --array=4-7: tasks 4..7 are shards 0..3; --array=0-15:4: 0, 4, 8, 12
    assert slurm_shard({**array, "SLURM_ARRAY_TASK_MIN": "4"}) == Shard(3, 4)
    stepped = {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert slurm_shard({**stepped, "SLURM_ARRAY_TASK_STEP": "4"}) == Shard(2, 4)
    with pytest.raises(ConfigError, match="no place"):
        slurm_shard({**array, "SLURM_ARRAY_TASK_MIN": "0"})  # 7 of 4: an irregular array
    with pytest.raises(ConfigError, match="inside a job array"):
        slurm_shard({})


def _shares(root: Path, n: int) -> list[ShardFilter]:
    filters = [ShardFilter(Shard(i, n), 300) for i in range(n)]
    for f in filters:
        f.kept = [d.doc_id for d in f(iter_documents([root]))]  # type: ignore[attr-defined]
    return filters


def test_shares_partition_the_documents_balanced_by_cost_wherever_they_run(
    tmp_path: Path,
) -> None:
    """Every document in exactly one share, the same shares from another copy of the
    tree (another machine's path), and no share more than one document above the mean."""
    here, there = tmp_path / "here" / "data", tmp_path / "elsewhere" / "copy"
    shutil.copytree(DATA, here)
    shutil.copytree(DATA, there)
    docs = list(iter_documents([here]))
    costs = {d.doc_id: document_cost(d, 300) for d in docs}
    for n in (1, 2, 4):
        shares = _shares(here, n)
        kept = [f.kept for f in shares]  # type: ignore[attr-defined]
        assert sorted(x for k in kept for x in k) == sorted(costs), "a partition"
        assert kept == [f.kept for f in _shares(there, n)]  # type: ignore[attr-defined]
        loads = [sum(costs[d] for d in k) for k in kept]
        assert loads == shares[0].loads and all(f.loads == loads for f in shares)
        assert max(loads) <= sum(loads) / n + max(costs.values())
        assert all(f.seen["documents"] == len(docs) for f in shares)
    # Cost, not count: at 2 shards the loads are within 1% although the counts are not.
    two = _shares(here, 2)
    assert abs(two[0].loads[0] - two[0].loads[1]) < 0.01 * sum(two[0].loads)


def _ocrlab(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrlab", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **env},
        cwd=cwd,
    )


@pytest.mark.slow
def test_four_shards_merge_into_the_unsharded_run(tmp_path: Path) -> None:
    """The command line as a job array would use it, with Tesseract: the merged folder's
    text, manifest, journal and trace are the unsharded run's; bad merges are refused."""
    scans = [f"scans/{p.name}" for p in sorted((DATA / "scans").glob("*-01.png"))[:5]]
    rels = ["letters/note.png", "forms/note.png", "books/chapter.pdf", "broken/empty.png"]
    copy_data(tmp_path / "data", [*rels, *scans], ground_truth=False)
    for i in range(4):
        done = _ocrlab("run", "data", "--out", f"s{i}", "--shard", f"{i}/4", "-q", cwd=tmp_path)
        assert done.returncode in (0, 1), done.stderr
    whole = _ocrlab("run", "data", "--out", "whole", "-q", cwd=tmp_path)
    assert whole.returncode == 1, whole.stderr  # broken/empty.png
    merged = _ocrlab("merge", "s0", "s1", "s2", "s3", "--into", "all", cwd=tmp_path)
    assert merged.returncode == 1, merged.stderr  # the same exit code as the run
    out = tmp_path / "all"
    assert (
        artifact_texts(out) == artifact_texts(tmp_path / "whole") and len(artifact_texts(out)) == 8
    )
    assert _records(out) == _records(tmp_path / "whole")
    a, w = load_manifest(out)["summary"], load_manifest(tmp_path / "whole")["summary"]
    assert {k: a[k] for k in COUNTS} == {k: w[k] for k in COUNTS}
    assert audit_output(out).ok

    def journal_ids(folder: Path) -> list[str]:
        lines = (folder / "journal.jsonl").read_text().splitlines()
        return sorted(json.loads(x)["doc_id"] for x in lines if '"doc_id"' in x)

    assert journal_ids(out) == journal_ids(tmp_path / "whole")
    # The trace: one run to its readers, one process group per shard to Perfetto.
    events, alone = load_trace(out / "trace.json"), load_trace(tmp_path / "whole" / "trace.json")
    state = RunState()
    state.apply(events)
    assert state.status == "complete" and state.pages_done == state.total == w["pages"]

    def spans(evs: list[dict[str, Any]]) -> list[tuple[str, int]]:
        return sorted((e["args"]["doc_id"], e["args"]["page"]) for e in evs if ts.is_page(e))

    assert spans(events) == spans(alone)
    groups = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    shard_groups = {pid for pid, name in groups.items() if name.startswith("shard ")}
    assert sorted(groups[p].split(" @ ")[0] for p in shard_groups) == [
        f"shard {i}/4" for i in range(4)
    ]
    assert {e["pid"] for e in events if ts.is_page(e)} <= shard_groups
    assert sum(e["name"] == ts.RUN_END for e in events) == 1
    assert sum(e["name"] == ts.SHARD_END for e in events) == 4
    from ocrlab.lab import plots
    from ocrlab.lab.analysis import trace_frames

    frames = trace_frames(out / "trace.json")
    tracks = set(zip(frames.pages["pid"], frames.pages["tid"], strict=True))
    assert len(frames.pages) == w["pages"] and len(tracks) >= 4  # a row per shard's worker
    assert len(plots.timeline(frames).axes[0].get_yticks()) == len(tracks)
    # Refused: a shard with itself, a missing shard; nothing written.
    for args, why in ((["s0", "s0"], "given twice"), (["s0", "s1", "s2"], "missing shard")):
        refused = _ocrlab("merge", *args, "--into", "bad", cwd=tmp_path)
        assert refused.returncode == 2 and why in refused.stderr
        assert not (tmp_path / "bad" / "results.json").exists()


def _echo_shards(root: Path, inputs: Path, n: int, **options: Any) -> list[Path]:
    outs = []
    for i in range(n):
        out = root / f"s{i}"
        ocrlab.run(inputs, out, engine=ECHO, shard=f"{i}/{n}", progress=False, **options)
        outs.append(out)
    return outs


def _edit_manifest(out: Path, edit: Any) -> None:
    path = out / "results.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))


def test_merge_refuses_shards_that_are_not_one_run(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    for i in range(6):
        make_page(inputs / f"p{i}.png", f"page {i}")
    make_page(inputs / ".hidden.png", "not a document")  # a skip: the first shard reports it
    s0, s1 = _echo_shards(tmp_path, inputs, 2)
    merged = merge_outputs([s1, s0], tmp_path / "ok")  # any order
    assert merged["documents"] == 6 and artifact_texts(tmp_path / "ok") == {
        **artifact_texts(s0),
        **artifact_texts(s1),
    }
    whole = tmp_path / "whole"
    ocrlab.run(inputs, whole, engine=ECHO, progress=False)
    assert merged["skipped"] == load_manifest(whole)["summary"]["skipped"] == {"hidden": 1}

    def refused(sources: list[Path], match: str) -> None:
        target = tmp_path / f"refused-{len(list(tmp_path.iterdir()))}"
        with pytest.raises(MergeRefusedError, match=match):
            merge_outputs(sources, target)
        assert not (target / "results.json").exists() and not _texts_or_none(target)

    refused([s0, s0], "given twice")
    refused([s0], r"missing shard\(s\) 1/2")
    refused([whole, s1], "not a shard's output")
    other_dpi = tmp_path / "dpi"
    ocrlab.run(inputs, other_dpi, engine=ECHO, shard="1/2", dpi=200, progress=False)
    refused([s0, other_dpi], "other settings .*dpi 300 vs 200")
    make_page(tmp_path / "more" / "extra.png", "extra")
    shutil.copytree(inputs, tmp_path / "more", dirs_exist_ok=True)
    other_inputs = tmp_path / "other"
    ocrlab.run(tmp_path / "more", other_inputs, engine=ECHO, shard="1/2", progress=False)
    refused([s0, other_inputs], "walked different inputs")
    three = _echo_shards(tmp_path / "three", inputs, 3)
    refused([s0, three[1]], "different runs .*3 vs 2 shards")
    # What only the manifest can tell: another Tesseract, an unfinished shard.
    for name, edit, match in (
        ("tess", lambda d: d["run"]["versions"].update(tesseract="9.9.9"), "Tesseract 9.9.9"),
        ("cut", lambda d: d.update(status="interrupted"), "did not finish"),
    ):
        copy = tmp_path / name
        shutil.copytree(s1, copy)
        _edit_manifest(copy, edit)
        refused([s0, copy], match)
    # A changed artifact is found while copying: the half-merged folder is emptied again.
    changed = tmp_path / "changed"
    shutil.copytree(s1, changed)
    next((changed / "text").rglob("*.txt")).write_text("not what was OCRed")
    refused([s0, changed], "does not match its record's SHA-256")


def _texts_or_none(out: Path) -> dict[str, bytes]:
    return artifact_texts(out) if (out / "text").is_dir() else {}


def test_slurm_array_task_takes_its_share(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    for i in range(4):
        make_page(inputs / f"p{i}.png", f"page {i}")
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "2"}
    done = _ocrlab(
        "run", str(inputs), "--out", str(tmp_path / "out"), "--engine", ECHO, "-q",
        "--shard", "slurm", **env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = load_manifest(tmp_path / "out")["run"]
    assert run["config"]["shard"] == "1/2" and run["shard"]["mine"]["documents"] == 2


def test_a_resumed_shard_keeps_its_share_and_still_merges(tmp_path: Path) -> None:
    """A shard's kept documents are decided after its share is dealt: the deal sees every
    document (a kept one dropped from discovery would shift the rest onto other shards)."""
    corpus = tmp_path / "in"
    for i in range(12):
        make_page(corpus / f"p{i:02d}.png", f"page {i}", size=(60 + 30 * i, 60))  # costs differ
    opts: dict[str, Any] = {"workers": 1, "engine": ECHO, "progress": False}
    for i in range(2):
        ocrlab.run(corpus, tmp_path / f"s{i}", shard=f"{i}/2", **opts)
    first = _records(tmp_path / "s0")
    resumed = ocrlab.run(corpus, tmp_path / "s0", shard="0/2", resume=True, **opts)
    assert resumed.documents_kept == len(first) and resumed.pages == 0
    share = load_manifest(tmp_path / "s0")["run"]["shard"]
    assert share["seen"]["documents"] == 12
    assert [d["doc_id"] for d in _records(tmp_path / "s0")] == [d["doc_id"] for d in first]
    ocrlab.run(corpus, tmp_path / "whole", **opts)
    merge_outputs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "all")
    assert artifact_texts(tmp_path / "all") == artifact_texts(tmp_path / "whole")
