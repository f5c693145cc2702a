"""relulab sweep: resumable parameter sweeps on a local process pool or Ray; --summary merges a folder."""

from __future__ import annotations

from relulab.cli import Context, Output, json_flag


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a resumable sweep of a registered experiment (TOML spec)",
                       description="Run the product of parameter lists and seeds of a registered experiment; "
                                   "one Parquet file per task, reruns skip finished tasks.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="the sweep spec")
    p.add_argument("--out", metavar="DIR", default=None, help="results folder (default: the spec's name without .toml)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="local processes / local Ray CPUs")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: alone, start or join a local instance; with HOST:PORT, join that cluster")
    p.add_argument("--summary", metavar="DIR", default=None,
                   help="merge DIR into results.parquet / results.csv and write report.html")
    json_flag(p)
    p.set_defaults(handler=run)


def run(args, ctx: Context) -> Output:
    from pathlib import Path

    from relulab.core.errors import InvalidInputError
    from relulab.experiments.sweep import run_sweep, summarize

    if args.summary:
        if args.spec:
            raise InvalidInputError("give either SPEC.toml or --summary DIR, not both")
        info = summarize(args.summary)
        return Output(info, f"{info['rows']} rows from {info['tasks']} tasks ({info['failed']} failed); wrote "
                            f"{', '.join(info['files'])} to {args.summary}")
    if not args.spec:
        raise InvalidInputError("give a SPEC.toml (or --summary DIR)")
    out = args.out or str(Path(args.spec).with_suffix(""))
    res = run_sweep(args.spec, out, workers=args.workers, ray=args.ray is not None, address=args.ray or None,
                    progress=True)
    text = (f"{res.experiment}: {res.total} tasks ({res.skipped} already done, {res.ran} run, {res.failed} failed), "
            f"{res.rows} rows in {res.folder} [{res.executor}, {res.workers} workers, {res.seconds:.1f} s]")
    if res.failures:
        text += f"\nfirst failure: {res.failures[0]['error']}"
    return Output(res.to_dict(), text, exit_code=1 if res.failed else 0)
