"""``relulab bures``: critical points of the Bures-Wasserstein loss of deep linear generators, and training runs."""

from __future__ import annotations

from relulab.cli import Context, Output, figure_file, float_arg, int_arg, json_flag, save_figure


def add_parser(sub) -> None:
    p = sub.add_parser("bures", description="Bures-Wasserstein loss B(W W^T, Sigma0)^2 of a linear generator with "
                                            "rank <= K: every critical point (eigen-subset) with its value and Morse "
                                            "index; --tau: the smooth perturbed loss; --train: gradient flow or "
                                            "gradient descent of a deep linear network with the convergence checks.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--eigenvalues", type=str, default="4,3,2,1", metavar="L,..",
                     help="target covariance diag(L) (default 4,3,2,1)")
    src.add_argument("--covariance", metavar="FILE", default=None, help="target covariance, .npy or .csv (n x n)")
    p.add_argument("--rank", type=int_arg(1, 1000), default=2, metavar="K", help="rank bound / bottleneck width (2)")
    p.add_argument("--tau", type=float_arg(lo=0), default=0.0, metavar="T",
                   help="perturbation of the smooth loss (default 0: the Bures-Wasserstein loss itself)")
    p.add_argument("--train", choices=("flow", "gd"), default=None, help="also train a deep linear network")
    p.add_argument("--widths", type=str, default=None, metavar="D0,..",
                   help="hidden widths d0,...,d_{N-1} of the network (default K,K+1); the output is n")
    p.add_argument("--t-max", type=float_arg(above=0), default=60.0, metavar="T", help="flow time (default 60)")
    p.add_argument("--lr", type=float_arg(above=0), default=0.01, metavar="ETA", help="GD step (default 0.01)")
    p.add_argument("--steps", type=int_arg(1, 10**6), default=5000, metavar="S", help="GD steps (default 5000)")
    p.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=0, metavar="S")
    p.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="write a figure to FILE")
    json_flag(p)
    p.set_defaults(handler=run)


def _numbers(text: str, flag: str, integer: bool = False) -> list:
    from relulab.core.errors import InvalidInputError

    try:
        vals = [int(v) if integer else float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    if not vals or len(vals) > 100:
        raise InvalidInputError(f"{flag}: expected 1 to 100 values, got {text!r}")
    return vals


def run(args, ctx: Context) -> Output:
    import numpy as np

    from relulab.linear_models import bw_critical_points, bw_train

    if args.covariance:
        from relulab.data import load_array

        S0 = load_array(args.covariance)
    else:
        S0 = np.diag(_numbers(args.eigenvalues, "--eigenvalues"))
    cp = bw_critical_points(S0, args.rank, tau=args.tau)
    data = {"critical_points": cp.to_dict(summary=True)}
    lines = [f"Bures-Wasserstein loss, target eigenvalues {np.array2string(cp.eigenvalues, precision=6)}, "
             f"rank <= {cp.rank}, tau = {cp.tau:g} ({cp.how})", cp.table()]
    result = cp
    if args.train:
        widths = _numbers(args.widths, "--widths", integer=True) if args.widths else [args.rank, args.rank + 1]
        tau = args.tau if args.tau > 0 else 1e-3
        tr = bw_train(S0, [*widths, S0.shape[0]], tau=tau, method=args.train, t_max=args.t_max, lr=args.lr,
                      steps=args.steps, seed=args.seed)
        data["training"] = tr.to_dict(summary=True)
        lines.append(f"{args.train} on widths {tr.widths}, tau = {tau:g}: loss {tr.initial_loss:.6g} -> "
                     f"{tr.losses[-1]:.10g}; limit subset {tr.limit_subset} (critical value {tr.limit_value:.10g}); "
                     f"monotone {tr.monotone}; balance drift {tr.balance_drift:.2e}; global {tr.reached_global}")
        result = tr
    if args.plot:
        data["plot"] = save_figure(lambda ax: result.plot(ax=ax), args.plot, (5, 4))
    return Output(data, "\n".join(lines))
