"""``relulab regions MODEL --line A B | --plane ORIGIN U V | --box LO HI | --all``: exact activation regions."""

from __future__ import annotations

import argparse

from relulab.cli import (Context, Output, add_model_arguments, figure_file, float_arg, int_arg, json_flag, load_model,
                         output_file, parse_point, save_figure)
from relulab.commands.sweep import check_split_flags, split_arguments, split_regions


def add_parser(sub) -> None:
    p = sub.add_parser(
        "regions",
        description="Exact activation regions of a model file: on the segment from A to B (--line), on the "
                    "slice {ORIGIN + s U + t V} (--plane, with --extent), in a box (--box) or in all of R^d "
                    "(--all). Points are comma-separated numbers (one number is repeated over every input "
                    "coordinate) or a .npy file holding one input.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--line", nargs=2, metavar=("A", "B"), help="the segment from A to B")
    where.add_argument("--plane", nargs="*", metavar="ORIGIN U V",
                       help="the slice ORIGIN + s U + t V (no values: the input plane of a 2-input network)")
    where.add_argument("--box", nargs=2, metavar=("LO", "HI"), help="the box LO <= x <= HI (low input dimension)")
    where.add_argument("--all", action="store_true", help="all of R^d, unbounded regions included (low d)")
    p.add_argument("--extent", nargs=4, type=float_arg(), metavar=("S0", "S1", "T0", "T1"), default=(-1.0, 1.0, -1.0, 1.0),
                   help="range of s and t for --plane (default -1 1 -1 1)")
    p.add_argument("--max-regions", type=int_arg(1, 10**12), default=None, metavar="N",
                   help="stop after N regions; the result is then marked incomplete")
    p.add_argument("--time-limit", type=float_arg(above=0), default=None, metavar="SECONDS",
                   help="stop after this many seconds; the result is then marked incomplete")
    p.add_argument("--audit", type=int_arg(0, 10**8), default=0, metavar="N",
                   help="--box/--all: sample N points and report any pattern the enumeration lacks")
    p.add_argument("--plot", metavar="FILE", default=None, type=figure_file,
                   help="draw the result to FILE (PNG, PDF or SVG; --plane, --line, and --box/--all with 2 inputs)")
    p.add_argument("--out", metavar="FILE", default=None, type=output_file(".parquet"),
                   help="--box/--all: write every region's pattern and interior point to this Parquet file "
                        "(streamed while they are found; needs the parquet extra)")
    p.add_argument("--certify", choices=("auto", "always", "never"), default="auto",
                   help="prove the result exact (auto: the engine's default within its work budget; always: "
                        "whatever the size; never: skip the proof, certified=false)")
    p.add_argument("--method", choices=("auto", "vertex", "facet"), default="auto",
                   help="--box/--all: the engine (vertex: cells by their vertices, with neighbours and linear "
                        "regions; facet: cells by their inequalities, polynomial work per region in d; auto: facet "
                        "for 5 <= d <= 64 over R^d, vertex otherwise)")
    p.add_argument("--full", action="store_true",
                   help="with --json: every region (patterns, witnesses, breakpoints), not only the summary")
    split_arguments(p)
    json_flag(p)
    p.set_defaults(handler=run)


def _segment(a, b):
    """A and B of --line, refused when they coincide or their difference overflows float64 (the segment
    would have no direction or an infinite length)."""
    import torch

    from relulab.core.errors import InvalidInputError

    if bool(torch.equal(a, b)):
        raise InvalidInputError("--line: A and B are the same point; a segment needs two different points")
    if not bool(torch.isfinite(b - a).all()) or not bool(torch.isfinite((b - a).norm())):
        raise InvalidInputError("--line: the segment from A to B is too long for float64 arithmetic (B - A or its "
                                "length overflows); use points of smaller magnitude")
    return a, b


def _parallel(args) -> dict:
    """--workers / --ray without --split: full_space's own choice (the facet engine's orthant charts,
    or cells); Ray is joined here first so that --ray-timeout bounds a local start."""
    if args.ray is not None:
        from relulab.core.executors import connect_ray

        connect_ray(args.ray or None, args.workers, args.ray_timeout)
        return {"workers": args.workers, "ray": args.ray or True}
    return {} if args.workers is None else {"workers": args.workers}


def run(args, ctx: Context) -> Output:
    from relulab import regions
    from relulab.core.errors import InvalidInputError

    check_split_flags(args)
    if args.method != "auto" and not (args.box or args.all):
        raise InvalidInputError("--method applies to --box and --all only")
    if args.method != "auto" and args.split is not None:
        raise InvalidInputError("--method cannot be combined with --split (each cell runs the default engine)")
    if args.out and (args.line or args.plane is not None):
        raise InvalidInputError("--out writes the regions of --box or --all; --line and --plane list theirs with --json --full")
    if args.out and (args.plot or args.audit or getattr(args, "split", None)):
        raise InvalidInputError("--out keeps no regions in memory: it cannot be combined with --plot, --audit or --split")
    net = load_model(args).net
    shape = net.input_shape
    budgets = {"max_regions": args.max_regions, "time_limit": args.time_limit}
    certify = {"auto": None, "always": True, "never": False}[args.certify]
    with ctx.progress("regions", "regions") as bar:
        if args.line:
            a, b = _segment(*(parse_point(s, f"--line {n}", shape, net) for s, n in zip(args.line, "AB")))
            res = regions.on_line(net, a, b, **budgets, certify=certify,
                                  **ctx.engine_progress(regions.on_line, bar))
        elif args.plane is not None:
            if len(args.plane) not in (0, 3):
                raise InvalidInputError(f"--plane takes ORIGIN U V (three points) or nothing, got {len(args.plane)} values")
            if args.plane:
                o, u, v = (parse_point(s, f"--plane {n}", shape, net) for s, n in zip(args.plane, ("ORIGIN", "U", "V")))
            elif net.input_dim == 2:
                o = u = v = None
            else:
                raise InvalidInputError(f"--plane needs ORIGIN U V for a network with {net.input_dim} inputs")
            res = regions.on_plane(net, o, u, v, tuple(args.extent), **budgets, certify=certify,
                                   **ctx.engine_progress(regions.on_plane, bar))
        else:
            box = None
            if args.box:
                box = tuple(parse_point(s, f"--box {n}", shape, net).reshape(-1) for s, n in zip(args.box, ("LO", "HI")))
            res = split_regions(args, net, box, budgets, ctx, bar) or regions.full_space(
                net, box, audit_samples=args.audit, **budgets, certify=certify, method=args.method,
                **_parallel(args), **ctx.engine_progress(regions.full_space, bar),
                **({"out": args.out} if args.out else {}))
    data = res.to_dict(summary=not args.full)
    data["input_dim"] = net.input_dim
    if args.out:
        data["out"] = res.stats.get("out")
    if getattr(res, "audit_samples", 0):
        data["audit_missing"] = 0 if res.audit is None else int(res.audit.shape[0])
    if args.plot:
        data["plot"] = save_figure(lambda ax: res.plot(ax=ax), args.plot,
                                   (7, 3.5) if args.line else (6, 6))
    missing = data.get("audit_missing", 0)
    return Output(data, _render(res, args), exit_code=1 if missing else 0)


def _render(res, args):
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    s = res.to_dict(summary=True)
    t.add_row("domain", str(s.get("domain")) + (f" {s['extent']}" if "extent" in s else "")
              + (f" {s['box']}" if s.get("box") else ""))
    t.add_row("activation regions", f"{res.count:,}" + ("" if res.complete else "  (incomplete: budget reached)"))
    lin = s.get("linear_count")
    why = "incomplete result" if not res.complete else "not computed by this engine; method='vertex' merges them"
    t.add_row("linear regions", f"not merged ({why})" if lin is None else f"{lin:,}")
    if s.get("decision_boundary_pieces") is not None:
        t.add_row("decision boundary pieces", str(s["decision_boundary_pieces"]))
    if s.get("boundary_pieces") is not None:
        t.add_row("decision boundary pieces", str(s["boundary_pieces"]))
    if "length_ratio" in s:
        t.add_row("curve length", f"{s['curve_length']:.6g} (segment {s['length']:.6g}, ratio {s['length_ratio']:.4g})")
    if s.get("audit_samples"):
        missed = 0 if res.audit is None else int(res.audit.shape[0])
        t.add_row("audit", f"{s['audit_samples']} samples, {missed} sampled pattern(s) missing")
    if args.plot:
        t.add_row("figure", args.plot)
    if getattr(args, "out", None) and getattr(res, "stats", {}).get("out"):
        t.add_row("regions file", res.stats["out"])
    stats = getattr(res, "stats", None) or {}
    if stats.get("workers"):
        t.add_row("ran on", f"{stats['workers']} workers ({stats.get('executor', 'local')}, orthant charts)")
    return t
