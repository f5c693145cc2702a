"""``relulab convex DATA --targets FILE --beta B [--bn] [--certify MODEL]``: the globally optimal two-layer
ReLU network with weight decay (convex program), its certificate, and optionally a trained network's gap."""

from __future__ import annotations

from relulab.cli import Context, Output, figure_file, float_arg, int_arg, json_flag, output_file, save_figure


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convex",
        description="Solve the convex program of a two-layer ReLU network with weight decay on DATA and TARGETS "
                    "(Pilanci and Ergen 2020; with --bn the batch-normalized network of Ergen et al. 2022): "
                    "objective 1/2 |f(X) - y|^2 + beta/2 sum_j (|u_j|^2 + a_j^2), the hidden bias a column of "
                    "ones regularized like a weight. Prints the optimum, a certified lower bound (dual value) "
                    "and the gap of the rebuilt optimal network; --certify MODEL also certifies a trained "
                    "network; --gd-runs N compares N random-start gradient-descent runs. --free-bias: hidden and "
                    "output biases unpenalized. TARGETS with k >= 2 columns: the vector-output network, solved "
                    "through a convex relaxation whose gap the certificate reports.")
    p.add_argument("data", metavar="DATA", help="inputs: a .npy or .csv array (n, d) (or (n,) for d = 1)")
    p.add_argument("--targets", metavar="FILE", required=True,
                   help="targets: a .npy or .csv array (n,), (n, 1), or (n, k) for k outputs")
    p.add_argument("--beta", type=float_arg(above=0), required=True, help="weight decay beta > 0")
    p.add_argument("--bn", action="store_true", help="the network with batch normalization before the ReLU")
    p.add_argument("--no-bias", action="store_true", help="no hidden bias (no column of ones)")
    p.add_argument("--free-bias", action="store_true",
                   help="hidden biases and an output bias, all unpenalized (one output, no --bn)")
    p.add_argument("--loss", choices=("sum", "mean"), default="sum",
                   help="1/2 |.|^2 (sum, the papers' convention; default) or 1/(2n) |.|^2 (mean)")
    p.add_argument("--patterns", choices=("auto", "exact", "sampled"), default="auto",
                   help="activation patterns: every one (exact), a random sample (sampled: the result is then "
                        "not certified optimal), or exact when --max-patterns allows (auto, default)")
    p.add_argument("--max-patterns", type=int_arg(2, 10**6), default=3000, metavar="N",
                   help="largest number of patterns in the program (default 3000)")
    p.add_argument("--solver", choices=("clarabel", "scs"), default="clarabel", help="conic solver (default clarabel)")
    p.add_argument("--certify", metavar="MODEL", default=None,
                   help="a trained two-layer network (a model file relulab.load reads) to certify")
    p.add_argument("--tol", type=float_arg(0), default=1e-5,
                   help="relative gap below which --certify calls a network globally optimal (default 1e-5)")
    p.add_argument("--gd-runs", type=int_arg(0, 10**5), default=0, metavar="N",
                   help="also run N random-start gradient-descent runs and count those that stall (default 0)")
    p.add_argument("--steps", type=int_arg(1, 10**7), default=2000, help="gradient-descent steps (default 2000)")
    p.add_argument("--width", type=int_arg(1, 10**5), default=None,
                   help="gradient-descent width (default twice the optimal network's)")
    p.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=0, help="seed of sampled patterns and GD starts")
    p.add_argument("--save", metavar="FILE", default=None, type=output_file(".pt2"),
                   help="write the optimal network as a torch.export program (.pt2) relulab.load reads")
    p.add_argument("--plot", metavar="FILE", default=None, type=figure_file,
                   help="plot the optimal network's neurons (or, with --gd-runs, the GD runs against the optimum)")
    json_flag(p)
    p.set_defaults(handler=run)


def _arrays(args):
    import numpy as np

    from relulab.core.errors import InvalidInputError
    from relulab.data import load_array

    X = load_array(args.data)
    y = load_array(args.targets)
    if X.ndim == 1:
        X = X[:, None]
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if X.ndim != 2 or X.size == 0:
        raise InvalidInputError(f"DATA {args.data}: expected a non-empty (n, d) array, got shape {X.shape}")
    if y.ndim not in (1, 2) or len(y) != len(X):
        raise InvalidInputError(f"--targets {args.targets}: expected {len(X)} targets (one row per row of DATA), "
                                f"got shape {y.shape}")
    return np.ascontiguousarray(X), np.ascontiguousarray(y)


def run(args, ctx: Context) -> Output:
    from relulab.convex import certify, compare_gd, solve

    X, y = _arrays(args)
    from relulab.core.errors import InvalidInputError

    if args.free_bias and args.no_bias:
        raise InvalidInputError("--free-bias and --no-bias exclude each other")
    if y.ndim == 2 and args.gd_runs:
        raise InvalidInputError("--gd-runs is for one output; the targets have several columns")
    bias = "free" if args.free_bias else not args.no_bias
    opts = dict(bias=bias, bn=args.bn, loss=args.loss)
    with ctx.progress("convex") as bar:
        total = 1 + bool(args.certify) + bool(args.gd_runs)
        bar(0, total, stage="convex program")
        sol = solve(X, y, args.beta, patterns=args.patterns, max_patterns=args.max_patterns, solver=args.solver,
                    seed=args.seed, **opts)
        data = {"data": args.data, "targets": args.targets, "n": int(X.shape[0]), "d": int(X.shape[1]),
                "solution": sol.to_dict(summary=True)}
        done = 1
        if args.certify:
            bar(done, total, stage="certificate")
            from relulab import load

            cert = certify(load(args.certify), X, y, args.beta, solution=sol, tol=args.tol, **opts)
            data["certificate"] = cert.to_dict(summary=True)
            done += 1
        comparison = None
        if args.gd_runs:
            bar(done, total, stage="gradient descent")
            comparison = compare_gd(X, y, args.beta, runs=args.gd_runs, steps=args.steps, width=args.width,
                                    seed=args.seed, solution=sol, **opts)
            data["gradient_descent"] = comparison.to_dict(summary=True)
        bar(total, total, stage="done")
    if args.save:
        from relulab import save

        save(sol.network(), args.save)
        data["saved"] = args.save
    if args.plot:
        draw = comparison.plot if comparison is not None else sol.plot
        data["plot"] = save_figure(lambda ax: draw(ax=ax), args.plot, (6, 4))
    return Output(data, _render(data))


def _render(data):
    from rich.table import Table

    s = data["solution"]
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    kind = "with batch normalization" if s["bn"] else (
        "with unpenalized biases" if s.get("free_bias") else ("with hidden bias" if s["bias"] else "without bias"))
    if s.get("outputs", 1) > 1:
        kind += f", {s['outputs']} outputs (convex relaxation {s['optimum']:.10g})"
    t.add_row("problem", f"{data['n']} samples, {data['d']} inputs, beta {s['beta']:g}, {s['loss']} loss, {kind}")
    pats = f"{s['patterns_used']:,} activation patterns " + (
        "(all of them)" if s["complete"] else f"(a random sample; up to {s['pattern_bound']:,} exist)")
    t.add_row("program", f"{pats}, {s['solver']} ({s['status']}), {s['seconds']:.2f} s")
    t.add_row("optimal network", f"{s['neurons']} neurons, objective {s['objective']:.10g}")
    t.add_row("certified bound", f"{s['lower_bound']:.10g} (gap {s['gap']:.3g})"
              + ("" if s["complete"] or s.get("bound_complete") else " - loose: not every pattern was used")
              + (" (program over sampled patterns; the bound checked all of them)"
                 if s.get("bound_complete") and not s["complete"] else ""))
    if "certificate" in data:
        c = data["certificate"]
        verdict = "globally optimal" if c["globally_optimal"] else "not globally optimal"
        t.add_row("certified model", f"objective {c['objective']:.10g}, gap {c['gap']:.3g} "
                                     f"(relative {c['relative_gap']:.3g}): {verdict}")
    if "gradient_descent" in data:
        g = data["gradient_descent"]
        t.add_row("gradient descent", f"{g['runs']} runs: best {g['best_gd']:.10g}; {g['reached']} reach the optimum "
                                      f"(relative {g['rtol']:g}), {g['stalled']} stall, {g['below_bound']} below "
                                      "the bound")
    if "saved" in data:
        t.add_row("saved", data["saved"])
    if "plot" in data:
        t.add_row("plot", data["plot"])
    return t
