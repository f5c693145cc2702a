"""``relulab symmetry``: parameter symmetries of ReLU networks, distances modulo them, and exact realization
distances (Berner et al.'s degenerate parameterizations)."""

from __future__ import annotations

from relulab.cli import Context, Output, figure_file, float_arg, int_arg, json_flag, save_figure


def add_parser(sub) -> None:
    p = sub.add_parser("symmetry", description="Degenerate parameterizations of ReLU networks: for Berner et al.'s "
                                               "example sequences, the parameter distance (plain and modulo "
                                               "permutations and positive rescalings) against the exact sup and "
                                               "W^{1,inf} distances of the realizations on [-1, 1]; --random: a "
                                               "random network against a permuted, rescaled, perturbed copy.")
    p.add_argument("--ns", type=str, default="1,4,16,64,256", metavar="N,..", help="sequence indices (default "
                                                                                   "1,4,16,64,256)")
    p.add_argument("--example", action="append", default=None, metavar="NAME",
                   help="unbalanced, redundant, dead or w1inf (repeatable; default all)")
    p.add_argument("--random", type=str, default=None, metavar="D,H,..,R", help="widths of a random network")
    p.add_argument("--noise", type=float_arg(lo=0), default=1e-3, metavar="E", help="--random: perturbation (1e-3)")
    p.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=0, metavar="S")
    p.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="write the examples' figure")
    json_flag(p)
    p.set_defaults(handler=run)


def _ints(text: str, flag: str, lo: int = 1) -> list:
    from relulab.core.errors import InvalidInputError

    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    if not vals or len(vals) > 50 or min(vals) < lo or max(vals) > 10**6:
        raise InvalidInputError(f"{flag}: expected 1 to 50 values in [{lo}, 10^6], got {text!r}")
    return vals


def run(args, ctx: Context) -> Output:
    import numpy as np

    from relulab.parameterization import (canonical, degeneracy_examples, permute, realization_distance,
                                          relu_params, rescale, symmetry_distance)

    if args.random:
        widths = [int(w) for w in _ints(args.random, "--random")]
        if len(widths) < 3 or max(widths) > 64:
            from relulab.core.errors import InvalidInputError

            raise InvalidInputError(f"--random: give at least input, one hidden and output width, each <= 64; got "
                                    f"{args.random!r}")
        rng = np.random.default_rng(args.seed)
        theta = relu_params([(rng.standard_normal((widths[i + 1], widths[i])), rng.standard_normal(widths[i + 1]))
                             for i in range(len(widths) - 1)])
        hs = widths[1:-1]
        g = permute(rescale(theta, [rng.uniform(0.1, 10, h) for h in hs]), [rng.permutation(h) for h in hs])
        eta = relu_params([(W + args.noise * rng.standard_normal(W.shape), b + args.noise * rng.standard_normal(b.shape))
                           for W, b in zip(g.weights, g.biases)])
        sd = symmetry_distance(theta, eta)
        rd = realization_distance(theta, eta, (-1.0, 1.0))
        cf = canonical(theta)
        data = {"symmetry_distance": sd.to_dict(), "realization_distance": rd.to_dict(),
                "balance_residual": cf.balance_residual}
        text = (f"random network {tuple(widths)} against a permuted, rescaled copy perturbed by {args.noise:g}:\n"
                f"  |theta - eta| = {sd.plain_distance:.6g}; modulo symmetries {sd.distance:.6g} ({sd.method})\n"
                f"  realizations on [-1, 1]^{widths[0]}: sup {rd.sup:.6g}, W^1,inf {rd.w1inf:.6g} "
                f"({rd.regions} regions of the difference)")
        return Output(data, text)
    ex = degeneracy_examples(_ints(args.ns, "--ns"), names=args.example)
    data = ex.to_dict()
    if args.plot:
        data["plot"] = save_figure(lambda ax: ex.plot(ax=ax), args.plot, (6, 4))
    lines = [ex.table(), ""] + [f"{k}: {v}" for k, v in ex.descriptions.items()]
    return Output(data, "\n".join(lines))
