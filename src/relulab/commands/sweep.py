"""relulab sweep: resumable parameter sweeps on a local process pool or Ray; --summary merges a folder."""

from __future__ import annotations

from relulab.cli import Context, Output, float_arg, int_arg, json_flag, output_folder


def executor_arguments(p, what: str) -> None:
    """--workers, --ray [ADDRESS] and --ray-timeout: where ``what`` (tasks, cells) run."""
    p.add_argument("--workers", type=int_arg(1, 1 << 16), default=None, metavar="N",
                   help=f"local processes running the {what} (default: every core), or the CPUs of a local Ray instance")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help=f"run the {what} on Ray: alone, start or join a local instance; with HOST:PORT, join that cluster")
    p.add_argument("--ray-timeout", type=float_arg(above=0), default=None, metavar="SECONDS",
                   help="how long a local Ray instance may take to start (default 180, or "
                        "RELULAB_RAY_START_TIMEOUT); start-up is retried until then")


def executor_options(args) -> dict:
    """The keyword arguments of :func:`executor_arguments`'s flags for run_sweep / split_full_space."""
    return {"workers": args.workers, "ray": args.ray is not None, "address": args.ray or None,
            "ray_timeout": args.ray_timeout}


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a resumable sweep of a registered experiment (TOML spec)",
                       description="Run the product of parameter lists and seeds of a registered experiment; "
                                   "one Parquet file per task, reruns skip finished tasks.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="the sweep spec")
    p.add_argument("--out", metavar="DIR", type=output_folder, default=None,
                   help="results folder (default: the spec's name without .toml)")
    executor_arguments(p, "tasks")
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
    res = run_sweep(args.spec, out, **executor_options(args), progress=True)
    text = (f"{res.experiment}: {res.total} tasks ({res.skipped} already done, {res.ran} run, {res.failed} failed), "
            f"{res.rows} rows in {res.folder} [{res.executor}, {res.workers} workers, {res.seconds:.1f} s]")
    if res.failures:
        text += f"\nfirst failure: {res.failures[0]['error']}"
    return Output(res.to_dict(), text, exit_code=1 if res.failed else 0)


def split_arguments(p) -> None:
    """``relulab regions --split K`` and where its cells run."""
    p.add_argument("--split", type=int_arg(1, 10**6), default=None, metavar="K",
                   help="--box/--all: enumerate in about K independent cells, run them in parallel and merge "
                        "them exactly by activation pattern (same counts as one process)")
    executor_arguments(p, "cells of --split (without --split, where the facet engine runs: its orthant charts)")


def check_split_flags(args) -> None:
    """Refuse executor flags without ``--split`` and ``--split`` where it does not apply."""
    from relulab.core.errors import InvalidInputError

    if args.split is None:
        used = [f for f, v in (("--workers", args.workers), ("--ray", args.ray), ("--ray-timeout", args.ray_timeout))
                if v is not None]
        if used and not (getattr(args, "box", None) or getattr(args, "all", False)):
            raise InvalidInputError(f"{', '.join(used)} only apply to --box and --all")
        if args.ray_timeout is not None and args.ray is None:
            raise InvalidInputError("--ray-timeout only applies with --ray")
        return
    if not (args.box or args.all):
        raise InvalidInputError("--split applies to --box and --all only")
    if args.audit:
        raise InvalidInputError("--audit is not available with --split (audit the single-process run)")


def split_regions(args, net, box, budgets: dict, ctx: Context, bar):
    """``--split``: the box or R^d count over cells (:func:`relulab.regions.split_full_space`,
    what ``relulab.regions.full_space(split=...)`` runs; ``--certify`` is each cell's proof), or None
    without ``--split``."""
    if args.split is None:
        return None
    from relulab.regions.split import split_full_space

    certify = {"auto": None, "always": True, "never": False}[getattr(args, "certify", "auto")]
    return split_full_space(net, box, cells=args.split, **executor_options(args), **budgets, certify=certify,
                            **ctx.engine_progress(split_full_space, bar))
