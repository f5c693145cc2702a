"""``relulab dropout``: Dropout / DropConnect on a shallow linear network: closed-form minimum, mask check,
gradient flow against the Hessian rate bound."""

from __future__ import annotations

from relulab.cli import Context, Output, figure_file, float_arg, int_arg, json_flag, save_figure


def add_parser(sub) -> None:
    p = sub.add_parser("dropout", description="Expected Dropout / DropConnect objective of a shallow linear network "
                                              "x -> W2 W1 x: the global minimum in closed form, a check against exact "
                                              "enumeration of the masks, and (--flow) the gradient flow's measured "
                                              "rate against the Hessian rate bound 2 mu.")
    p.add_argument("--data", metavar="X", default=None, help="inputs, .npy or .csv, one row per sample (default: random)")
    p.add_argument("--targets", metavar="Y", default=None, help="targets, .npy or .csv, one row per sample")
    p.add_argument("--samples", type=int_arg(1, 10**6), default=20, metavar="N", help="random data: samples (default 20)")
    p.add_argument("--dims", type=str, default="3,2", metavar="D,R", help="random data: input, output dimension (3,2)")
    p.add_argument("--width", type=int_arg(1, 10**4), default=3, metavar="H", help="hidden width (default 3)")
    p.add_argument("--keep", type=float_arg(above=0, hi=1), default=0.5, metavar="P",
                   help="keep probability of a unit / weight (default 0.5)")
    p.add_argument("--kind", choices=("dropout", "dropconnect"), default="dropout")
    p.add_argument("--whiten", action="store_true", help="whiten the inputs first (X^T X / N = I; needed by "
                                                          "DropConnect's closed form)")
    p.add_argument("--flow", action="store_true", help="run the gradient flow from a perturbed minimizer")
    p.add_argument("--perturbation", type=float_arg(lo=0), default=0.1, metavar="E",
                   help="relative size of the start's perturbation (default 0.1)")
    p.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=0, metavar="S")
    p.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="write the flow's gap curve "
                                                                                  "(or the singular values) to FILE")
    json_flag(p)
    p.set_defaults(handler=run)


def _dims(text: str) -> tuple[int, int]:
    from relulab.core.errors import InvalidInputError

    try:
        d, r = (int(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"--dims: expected two integers D,R, got {text!r}") from None
    if not (1 <= d <= 1000 and 1 <= r <= 1000):
        raise InvalidInputError(f"--dims: dimensions must be in [1, 1000], got {text!r}")
    return d, r


def load_data(args):
    """(X, Y) from --data/--targets or random Gaussian data (--samples, --dims, --seed)."""
    import numpy as np

    from relulab.core.errors import InvalidInputError
    from relulab.data import load_array

    if (args.data is None) != (args.targets is None):
        raise InvalidInputError("--data and --targets go together")
    if args.data is not None:
        X, Y = load_array(args.data), load_array(args.targets)
        if Y.ndim == 1:
            Y = Y[:, None]
        return X, Y
    d, r = _dims(args.dims)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.samples, d))
    Y = X @ rng.standard_normal((d, r)) + 0.3 * rng.standard_normal((args.samples, r))
    return X, Y


def run(args, ctx: Context) -> Output:
    import numpy as np

    from relulab.linear_models import dropout_flow, enumerate_masks, expected_loss, global_minimizers

    X, Y = load_data(args)
    if args.whiten:
        from relulab.linear_models import whiten

        X = whiten(X)
    m = global_minimizers(X, Y, args.width, keep=args.keep, kind=args.kind)
    data = {"minimum": m.to_dict(summary=True)}
    lines = [f"{args.kind}, keep {args.keep}, width {args.width}: min E L = {m.value:.10g}",
             f"  target singular values  {np.array2string(m.singular_values, precision=6)}",
             f"  minimizer (shrunk)      {np.array2string(m.shrunk_values, precision=6)}  rank {m.rank}"]
    # the closed form against exact enumeration of the masks at the minimizer, where that is small enough
    h, d, r = m.W1.shape[0], X.shape[1], Y.shape[1]
    bits = h if args.kind == "dropout" else h * (d + r)
    if bits <= 14 and X.shape[0] * r <= 10**5:
        closed = expected_loss(m.W1, m.W2, X, Y, keep=args.keep, kind=args.kind)
        enum = enumerate_masks(m.W1, m.W2, X, Y, keep=args.keep, kind=args.kind)
        data["mask_check"] = {"closed_form": closed, "enumeration": enum, "masks": 2**bits}
        lines.append(f"  at the minimizer: closed form {closed:.12g}, enumeration of 2^{bits} masks {enum:.12g}")
    result = m
    if args.flow:
        f = dropout_flow(X, Y, args.width, keep=args.keep, kind=args.kind, perturbation=args.perturbation,
                         seed=args.seed)
        data["flow"] = f.to_dict(summary=True)
        lines.append(f"  gradient flow: measured rate {f.measured_rate:.6g}, bound 2 mu = {f.rate_bound:.6g} "
                     f"(ratio {f.ratio:.4f}); {f.null_dimension} zero Hessian eigenvalues at the limit")
        result = f
    if args.plot:
        data["plot"] = save_figure(lambda ax: result.plot(ax=ax), args.plot, (5, 4))
    return Output(data, "\n".join(lines))
