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
from typing import Any, NoReturn

from .config import settings_table
from .errors import ConfigError, ExitCode, OutputStoppedError, PipelineError
from .lab import commands

log = logging.getLogger("ocrlab")


def _config_epilog() -> str:
    rows = [
        f"  {r['key']:<20} {r['env']:<24} default {r['default']:<14} {r['bounds']}"
        for r in settings_table()
    ]
    return "configuration (keyword / environment variable / default / bounds):\n" + "\n".join(rows)


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
    p.add_argument(
        "--workers", "-w", type=int, help="worker processes (default 2, env OCR_WORKERS)"
    )
    p.add_argument("--engine", help="'pytesseract' or 'module:function'")
    p.add_argument("--lang", help="Tesseract language(s), default eng")
    p.add_argument("--psm", type=int, help="Tesseract page segmentation mode")
    p.add_argument("--dpi", type=int, help="PDF rasterization resolution (default 300)")
    p.add_argument(
        "--timeout",
        type=float,
        dest="page_timeout",
        help="seconds per page before Tesseract is killed (default 300)",
    )
    p.add_argument("--max-megapixels", type=float, help="largest page accepted (default 200)")
    p.add_argument("--executor", help="'loky' (default), 'inline' or 'dask://HOST:PORT'")
    p.add_argument(
        "--formats",
        help="files per document, from one Tesseract call per page: a comma list of "
        "txt,tsv,hocr,alto,pdf (default txt; txt is always written)",
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
    q = p.add_mutually_exclusive_group()
    q.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show the progress bar",
    )
    q.add_argument("--quiet", "-q", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .records import Group, RunContext
    from .startup import start_run

    cfg = load_config(
        workers=args.workers,
        engine=args.engine,
        lang=args.lang,
        psm=args.psm,
        dpi=args.dpi,
        page_timeout=args.page_timeout,
        max_megapixels=args.max_megapixels,
        executor=args.executor,
        formats=args.formats,
        progress=args.progress,
    )
    groups = [Group("", tuple(args.inputs))] if args.inputs else []
    for spec in args.group:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--group {spec!r} must look like NAME=PATH")
        groups.append(Group(name, (path,)))
    if not groups:
        raise ConfigError("no INPUT given; name files or folders to OCR, or use --group")
    context = RunContext(tuple(groups), args.out, resume=args.resume, overwrite=args.overwrite)
    # The pool's workers boot while the pipeline is imported (ocrlab.startup).
    started = start_run(context, cfg)
    try:
        from .pipeline import run_groups
    except BaseException:
        started.close()
        raise
    summary = run_groups(context, started=started)
    print(
        f"{summary.documents} documents: {summary.documents_ok} ok, "
        f"{summary.documents_partial} partial, {summary.documents_failed} failed"
        f"{f' ({summary.documents_kept} kept from the previous run)' if args.resume else ''}; "
        f"{summary.pages} pages in {summary.wall_s:.1f} s "
        f"({summary.pages_per_s:.2f} pages/s, {summary.workers} worker(s)"
        f"{'; ' + summary.memory_line() if summary.memory_line() else ''}) -> {args.out}"
    )
    for failure in summary.failures[:20]:
        where = failure["doc_id"] + (f" page {failure['page']}" if failure["page"] else "")
        print(f"  FAILED {where}: {failure['error_type']}: {failure['error']}", file=sys.stderr)
    if summary.failures_total > 20:
        print(f"  ... and {summary.failures_total - 20} more (see results.json)", file=sys.stderr)
    return summary.exit_code


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
    commands.add_corpus(sub)
    commands.add_bench(sub)
    commands.add_sweep(sub)
    commands.add_report(sub)
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
