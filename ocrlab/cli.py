"""The ``ocrlab`` command.

Exit codes (also in README):

=====  ==========================================================
0      every document OCRed
1      the run finished, but some documents failed or are partial
2      bad arguments or configuration (nothing was run)
3      the run could not start (missing input, unwritable output, output folder
       in use by another run or holding a previous run's files, Tesseract not
       installed)
4      the run stopped: the output filesystem is full, read-only or gone;
       finished documents are kept (run again with --resume)
130    interrupted (Ctrl-C / SIGTERM)
=====  ==========================================================
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import ConfigError, ExitCode, MergeRefusedError, OutputStoppedError, PipelineError
from .lab import commands, compare_commands
from .output.names import printable
from .settings import SETTINGS

if TYPE_CHECKING:  # the command imports the pipeline's records only when it runs
    from .records import RunSummary

log = logging.getLogger("ocrlab")


def _config_epilog() -> str:
    rows = [
        f"  {s.key:<20} {s.env or '(Python only)':<24} default {s.default_text}"
        for s in SETTINGS
        if not s.options
    ]
    return (
        "Each flag's environment variable gives the value when the flag is absent; the\n"
        "rollback switches OCR_PARALLEL_DISABLED and OCR_MAX_WORKERS win over flags.\n"
        "settings without a flag (keyword / environment variable / default):\n" + "\n".join(rows)
    )


def _settings_given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings' flags given, each checked by its setting's parser under the flag's
    name; the text is kept for load_config to parse as it came (``auto`` stays chosen)."""
    given: dict[str, Any] = {}
    for s in SETTINGS:
        raw = getattr(args, s.key) if s.options else None
        if raw is not None:
            s.parse(s.options[0], raw)  # a ConfigError names the flag: exit 2
            given[s.key] = raw
    return given


def _add_settings(p: argparse.ArgumentParser) -> None:
    """One option per setting that has flags, generated from the table (ocrlab.settings)."""
    for s in SETTINGS:
        if not s.options:
            continue
        if s.rule.switch:  # no value on the command line; the variable takes one
            words = f"{s.help} (default {s.default_text}; env {s.env}: {s.bounds})"
        else:
            words = f"{s.help}; accepts {s.bounds} (default {s.default_text}, env {s.env})"
        words = words.replace("%", "%%")  # argparse formats help with %
        if s.rule.switch:
            action = argparse.BooleanOptionalAction
            p.add_argument(*s.options, dest=s.key, action=action, default=None, help=words)
        else:
            p.add_argument(*s.options, dest=s.key, metavar=s.key.upper(), help=words)


def _add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="OCR files and folders into an output folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_config_epilog(),
        description="OCR INPUT files and folders (recursively) into --out: one text "
        "artifact per document, results.json, ocrlab.log and trace.json.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="files or folders to OCR")
    p.add_argument("--out", "-o", required=True, help="output folder")
    _add_settings(p)
    p.add_argument(
        "--quiet",
        "-q",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bar (the same as --no-progress)",
    )
    used = p.add_mutually_exclusive_group()
    used.add_argument(
        "--resume",
        action="store_true",
        help="keep documents a previous run in --out finished with the same "
        "input and settings; redo the rest",
    )
    used.add_argument(
        "--overwrite",
        action="store_true",
        help="remove a previous run's artifacts, manifest, trace and log from "
        "--out first (a used folder is refused otherwise)",
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="run several groups on one executor; repeatable",
    )
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pool import Pool
    from .records import Group, RunContext

    cfg = load_config(**_settings_given(args))
    groups = [Group("", tuple(args.inputs))] if args.inputs else []
    for spec in args.group:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--group {spec!r} must look like NAME=PATH")
        groups.append(Group(name, (path,)))
    if not groups:
        raise ConfigError("no INPUT given; name files or folders to OCR, or use --group")
    context = RunContext(tuple(groups), args.out, resume=args.resume, overwrite=args.overwrite)
    # The pool's workers boot while the pipeline is imported (ocrlab.pool).
    with Pool.open(context, cfg) as pool:
        from .pipeline import run_groups

        summary = run_groups(context, pool=pool)
    print(
        f"{summary.documents} documents: {summary.documents_ok} ok, "
        f"{summary.documents_partial} partial, {summary.documents_failed} failed"
        f"{_kept(summary) if args.resume else ''}; "
        f"{summary.pages} pages in {summary.wall_s:.1f} s "
        f"({summary.pages_per_s:.2f} pages/s, {summary.workers} worker(s)"
        f"{'; ' + summary.memory_line() if summary.memory_line() else ''}) -> "
        f"{printable(args.out)}"
    )
    for host, peak in summary.peaks.get("hosts", {}).items():  # Dask: each host's tree
        mb, tess = peak["rss_peak"] / 2**20, peak["tesseract_peak"]
        print(f"  host {host}: peak {mb:.0f} MB RSS, at most {tess} Tesseract(s) at once")
    if "cluster" in summary.peaks:
        mb = summary.peaks["cluster"]["rss_peak"] / 2**20
        print(f"  cluster: peak {mb:.0f} MB RSS, its hosts summed at one moment")
    if summary.skipped:
        kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in summary.skipped.items())
        print(f"  skipped (not documents, see ocrlab.log): {kinds}")
    for failure in summary.failures[:20]:
        line = f"  FAILED {failure.where}: {failure.error_type}: {failure.error}"
        print(printable(line), file=sys.stderr)
    if summary.failures_total > 20:
        print(f"  ... and {summary.failures_total - 20} more (see results.json)", file=sys.stderr)
    return summary.exit_code


def _kept(summary: RunSummary) -> str:
    """What a resume kept, and what it removed because the input is gone."""
    gone = summary.documents_vanished
    removed = f", {gone} no longer among the inputs, their files removed" if gone else ""
    return f" ({summary.documents_kept} kept from the previous run{removed})"


def _add_merge(sub: Any) -> None:
    p = sub.add_parser(
        "merge",
        help="combine the output folders of a sharded run (--shard I/N) into one",
        description="Merge the output folders of every shard of one run into --into: the "
        "artifacts, results.json, journal and trace of one run over all the documents. "
        "Overlapping or missing shards, shards of other settings, Tesseract versions or "
        "inputs, and unfinished shards are refused (exit 2).",
    )
    p.add_argument("outputs", nargs="+", metavar="OUT", help="the shards' --out folders")
    p.add_argument("--into", required=True, metavar="DIR", help="the merged output folder")
    p.set_defaults(func=_cmd_merge)


def _cmd_merge(args: argparse.Namespace) -> int:
    from .output.merge import merge_outputs

    s = merge_outputs(args.outputs, args.into)
    print(
        f"{len(args.outputs)} shards merged: {s['documents']} documents: "
        f"{s['documents_ok']} ok, {s['documents_partial']} partial, "
        f"{s['documents_failed']} failed; {s['pages']} pages -> {args.into}"
    )
    return ExitCode.OK if s["documents_partial"] + s["documents_failed"] == 0 else 1


def _raise_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocrlab", description="Parallel Tesseract OCR, measured and verified."
    )
    parser.add_argument("--version", action="version", version="%(prog)s 0.1.0")
    parser.add_argument("--verbose", "-v", action="store_true", help="log to stderr too")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_merge(sub)
    commands.add_corpus(sub)
    commands.add_bench(sub)
    commands.add_sweep(sub)
    commands.add_report(sub)
    compare_commands.add_diff(sub)
    compare_commands.add_plan(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ocrlab: %(levelname)s: %(message)s"))
    handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
    if not args.verbose:  # per-page lines go to ocrlab.log; the run summary lists failures
        handler.addFilter(lambda r: getattr(r, "doc", "-") == "-")
    logging.getLogger("ocrlab").addHandler(handler)
    # SIGTERM (docker stop, CI cancel) takes the same clean-up path as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"ocrlab: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except MergeRefusedError as exc:
        print(f"ocrlab merge: refused: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OutputStoppedError as exc:
        print(f"ocrlab: {exc.reason}", file=sys.stderr)
        return ExitCode.STOPPED
    except PipelineError as exc:
        print(f"ocrlab: {exc}", file=sys.stderr)
        return ExitCode.PIPELINE
    except KeyboardInterrupt:
        print("ocrlab: interrupted; finished documents are in the output folder", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
