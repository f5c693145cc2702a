"""``relulab complexity MODEL DATA [--method ...]``: local complexity of a model near its data."""

from __future__ import annotations

from relulab.cli import Context, Output, add_model_arguments, float_arg, int_arg, json_flag, load_model

METHODS = ("smoothed", "exact-2d", "lines", "local-count", "proxy")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "complexity",
        description="Local complexity of MODEL near DATA. smoothed (default): LC_sigma over the data, the "
                    "hidden biases perturbed by N(0, sigma^2), with standard error and per-layer parts. "
                    "exact-2d: exact LC_0 of a 2-input network under the data smoothed by N(0, r^2 I) "
                    "(r = --radius). lines: unbiased line-walk estimate of LC_0 under the same density, any "
                    "dimension. local-count: exact activation regions meeting a square of half-width "
                    "--radius in a random 2-D slice at each point (a segment for 1 input). proxy: the grokking "
                    "proxy (units changing sign over a cross-polytope frame of --vertices vertices).")
    add_model_arguments(p)
    p.add_argument("data", metavar="DATA",
                   help="inputs: a .npy array (n, *input shape), a .csv of numbers (one input per row), or a "
                        "built-in 2-D set as NAME or NAME:N (spirals, moons, circles, xor)")
    p.add_argument("--method", choices=METHODS, default="smoothed", help="estimator (default smoothed)")
    p.add_argument("--sigma", type=float_arg(above=0), default=0.1, help="bias-noise scale of the smoothed form (default 0.1)")
    p.add_argument("--radius", type=float_arg(above=0), default=0.1,
                   help="neighbourhood radius (local-count, proxy) or data smoothing r (exact-2d, lines); "
                        "default 0.1")
    p.add_argument("--lines", type=int_arg(2, 10**7), default=512, metavar="N", help="lines of the line estimator (default 512)")
    p.add_argument("--vertices", type=int_arg(2, 10**6), default=50, metavar="N", help="frame vertices of the proxy (default 50)")
    p.add_argument("--max-points", type=int_arg(1, 10**7), default=2048, metavar="N", help="use the first N inputs (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="seed for directions, lines and frames (default 0)")
    json_flag(p)
    p.set_defaults(handler=run)


def run(args, ctx: Context) -> Output:
    from rich.table import Table

    from relulab import complexity as cx
    from relulab.commands.kernels import read_inputs
    from relulab.core.errors import InvalidInputError

    if args.vertices % 2:
        raise InvalidInputError(f"--vertices must be even (the frame is x +- r v_i), got {args.vertices}")
    net = load_model(args).net
    x = read_inputs(args.data, net.input_shape, args.max_points).to(dtype=net.dtype, device=net.device)
    d = net.input_dim
    with ctx.progress(f"complexity ({args.method})", "points") as progress:
        m = args.method
        if m == "smoothed":
            res = cx.local_complexity(net, x, args.sigma, progress=progress)
        elif m in ("exact-2d", "lines"):
            dens = cx.smoothed_data(x.reshape(x.shape[0], -1).double(), args.radius)
            res = cx.exact_lc_2d(net, dens) if m == "exact-2d" else \
                cx.line_lc(net, dens, args.lines, seed=args.seed, progress=progress)
        elif m == "local-count":
            res = cx.local_counts(net, x, args.radius, shape="square" if d >= 2 else "segment", seed=args.seed,
                                  progress=progress)
        else:
            nv = args.vertices
            if nv > 2 * d:
                raise InvalidInputError(f"--vertices {nv}: a frame has at most 2 d = {2 * d} vertices here")
            res = cx.grokking_proxy(net, x, args.radius, n_vertices=nv, seed=args.seed)
    data = {"method": args.method, "data": args.data, "points": int(x.shape[0]), **res.to_dict(summary=True)}
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("method", args.method)
    t.add_row("points", str(x.shape[0]))
    if m in ("smoothed", "exact-2d", "lines"):
        pm = f" +- {res.stderr:.3g}" if res.stderr else (" (exact)" if res.exact else "")
        t.add_row("local complexity", f"{res.value:.6g}{pm}")
        t.add_row("distribution", res.distribution + (f", sigma {res.sigma:g}" if res.sigma else ""))
        t.add_row("per layer", ", ".join(f"{float(v):.4g}" for v in res.per_layer))
        if res.truncation:
            t.add_row("note", res.truncation)
    elif m == "local-count":
        t.add_row("regions per point", f"mean {res.mean:.4g}, min {int(res.counts.min())}, max {int(res.counts.max())}")
        t.add_row("counts", res.counts_what)
        data["counts"] = res.counts.tolist()
    else:
        t.add_row("proxy", f"{res.value:.4g} +- {res.stderr:.3g} units per point")
        t.add_row("frame", f"{res.n_vertices} vertices, radius {res.radius:g}")
        t.add_row("note", res.label)
    t.add_row("time", f"{res.seconds:.2f} s")
    return Output(data, t)
