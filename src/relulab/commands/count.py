"""``relulab count maxpool | classifications | tropical | maxout``: exact combinatorial counts."""

from __future__ import annotations

from relulab.cli import Context, Output, float_arg, int_arg, json_flag, number_list, read_array


def add_parser(sub) -> None:
    p = sub.add_parser("count", help="exact counts: max-pool regions, classifications of a data set, maxout complexity",
                       description="Exact counting. 'maxpool': linearity regions (vertices) and facets of a max-pool "
                                   "layer. 'classifications': labellings of a data set realizable by sign(p - q) with "
                                   "WIDTH monomials per side. 'tropical': monomials of p and q in f = p - q of ReLU MLPs against depth, before "
                                   "and after reduction. 'maxout': exact counts of random maxout networks beside "
                                   "the exact line expectation and the Tseran-Montufar bounds.")
    kinds = p.add_subparsers(dest="count_kind", metavar="KIND", required=True, parser_class=type(p))
    m = kinds.add_parser("maxpool", help="regions and facets of a max-pool layer")
    m.add_argument("--kernel", default=None, metavar="K", help="window size: K or KxL (required unless --table)")
    m.add_argument("--stride", default=None, metavar="S", help="stride: S or SxT (default: the kernel)")
    m.add_argument("--size", default=None, metavar="N",
                   help="input size: N (1-D) or NxM (2-D) (required unless --table; with --table the 1-D length, "
                        "default 10)")
    m.add_argument("--table", action="store_true",
                   help="the table: 1-D vertices and facets for k = 2..5, s = 1..3 on length --size, and 2-D 2x2 "
                        "windows (strides 1 and 2) on 2x2 .. 6x6 and 3xN inputs")
    m.add_argument("--no-facets", action="store_true", help="skip the facet count")
    m.add_argument("--time-limit", type=float_arg(above=0), default=120.0, metavar="SECONDS",
                   help="stop with an error after this many seconds (default 120)")
    m.add_argument("--recurrence", action="store_true",
                   help="1-D: the linear recurrence and generating function of the counts in the number of windows")
    json_flag(m)
    m.set_defaults(handler=run_maxpool)
    c = kinds.add_parser("classifications", help="realizable labellings of a data set (classification fan)")
    c.add_argument("data", metavar="DATA", help="points: a .npy or .csv array (n, d), n <= 20")
    c.add_argument("--width", required=True, type=int_arg(1, 64), metavar="M",
                   help="hidden ReLU units (--model relu) or monomials per side of p - q (--model tropical)")
    c.add_argument("--model", choices=("relu", "tropical"), default="relu",
                   help="relu: sign(c + sum_i a_i relu(w_i.x + b_i)) (default); tropical: sign(p - q), the "
                        "classification fan with its activation polytope")
    c.add_argument("--positive-units", type=int_arg(0, 64), default=None, metavar="P",
                   help="--model relu: fix the output signs (P units with output weight +1, the rest -1)")
    c.add_argument("--labels", default=None, metavar="Y",
                   help="--model tropical: target labels (comma-separated +-1 or 0/1, or a .npy file): 0/1-loss "
                        "sublevel sets")
    c.add_argument("--list", action="store_true", help="with --json: every labelling and its witness")
    json_flag(c)
    c.set_defaults(handler=run_classifications)
    t = kinds.add_parser("tropical", help="monomials of p and q (before / after reduction) of ReLU MLPs against depth")
    t.add_argument("--widths", type=number_list(integer=True, lo=1, hi=16, most=8), default=[2, 3], metavar="W",
                   help="hidden widths, comma-separated (default 2,3)")
    t.add_argument("--max-depth", type=int_arg(1, 8), default=4, metavar="L", help="depths 1..L (default 4)")
    t.add_argument("--inputs", type=int_arg(1, 8), default=2, metavar="D", help="input dimension (default 2)")
    t.add_argument("--seed", type=int_arg(0, 2 ** 31 - 1), default=0, help="torch seed of the weights (default 0)")
    t.add_argument("--max-monomials", type=int_arg(1, 10 ** 7), default=200_000, metavar="N",
                   help="budget per polynomial (default 200000); beyond it the size is reported as not reached")
    t.add_argument("--time-limit", type=float_arg(above=0), default=60.0, metavar="SECONDS",
                   help="per conversion (default 60)")
    json_flag(t)
    t.set_defaults(handler=run_tropical_sizes)
    x = kinds.add_parser("maxout", help="expected complexity of random maxout networks")
    x.add_argument("--widths", required=True, type=number_list(integer=True, lo=1, hi=4096, most=64), metavar="W",
                   help="hidden widths, e.g. 4 or 4,4")
    x.add_argument("--k", required=True, type=int_arg(2, 64), metavar="K", help="maxout rank (2..64)")
    x.add_argument("--inputs", type=int_arg(1, 64), default=2, metavar="D", help="input dimension (default 2)")
    x.add_argument("--seeds", type=int_arg(1, 100_000), default=20, metavar="N", help="random networks (default 20)")
    x.add_argument("--sigma-w", type=float_arg(above=0), default=1.0,
                   help="weight std times sqrt(fan_in) (default 1)")
    x.add_argument("--sigma-b", type=float_arg(above=0), default=1.0,
                   help="bias std (default 1; the bounds need a bias density)")
    json_flag(x)
    x.set_defaults(handler=run_maxout)


def _dims(text: str, arg: str) -> tuple[int, ...]:
    from relulab.core.errors import InvalidInputError

    try:
        v = tuple(int(a) for a in str(text).lower().split("x"))
    except ValueError:
        raise InvalidInputError(f"{arg}: expected N or NxM with positive integers, got {text!r}") from None
    if not 1 <= len(v) <= 2 or min(v) < 1:
        raise InvalidInputError(f"{arg}: expected N or NxM with positive integers, got {text!r}")
    return v


def run_maxpool(args, ctx: Context) -> Output:
    from relulab.combinatorics import count_maxpool
    from relulab.core.errors import InvalidInputError

    import math

    if not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise InvalidInputError(f"--time-limit must be a positive number of seconds, got {args.time_limit}")
    if args.table:
        return _maxpool_table(args)
    for name, v in (("--kernel", args.kernel), ("--size", args.size)):
        if v is None:
            raise InvalidInputError(f"{name} is required (or pass --table)")
    size = _dims(args.size, "--size")
    k = _dims(args.kernel, "--kernel")
    s = _dims(args.stride, "--stride") if args.stride else None
    for name, v in (("--kernel", k), ("--stride", s)):
        if v is not None and len(v) != len(size) and len(v) != 1:
            raise InvalidInputError(f"{name} has {len(v)} dimensions, --size has {len(size)}")
    dim = len(size)
    k = k if len(k) == dim else k * dim
    s = None if s is None else (s if len(s) == dim else s * dim)
    r = count_maxpool(size if dim == 2 else size[0], k if dim == 2 else k[0],
                      None if s is None else (s if dim == 2 else s[0]), facets=not args.no_facets,
                      time_limit=args.time_limit)
    text = (f"max-pool {'x'.join(map(str, r.kernel))} windows, stride {'x'.join(map(str, r.stride))}, on "
            f"{'x'.join(map(str, r.size))}: {r.windows} windows\n"
            f"linearity regions (vertices of the Minkowski sum of simplices): {r.count}\n"
            f"facets: {r.facets if r.facets is not None else 'not counted (' + ('; '.join(r.notes) or '--no-facets') + ')'}\n"
            f"polytope dimension {r.polytope_dim}"
            + (f"; closed form ({r.formula}): {r.closed_form}" if r.closed_form is not None else "")
            + f"\n{r.seconds:.3f} s")
    data = r.to_dict()
    if args.recurrence:
        if dim != 1:
            raise InvalidInputError("--recurrence is for 1-D layers (--size N)")
        from relulab.combinatorics import maxpool_recurrence

        coeffs, gf, vals = maxpool_recurrence(r.kernel[0], r.stride[0])
        data["recurrence"] = [str(c) for c in coeffs]
        data["generating_function"] = str(gf)
        text += ("\nregions a(m) of m windows: a(m) = " + " + ".join(f"({c}) a(m-{i + 1})" for i, c in enumerate(coeffs))
                 + f"\ngenerating function sum_m a(m) x^m = {gf}")
    return Output(data, text)


def _maxpool_table(args) -> Output:
    from relulab.combinatorics import maxpool_table
    from relulab.core.errors import InvalidInputError

    if args.kernel is not None or args.stride is not None or args.recurrence:
        raise InvalidInputError("--table takes no --kernel, --stride or --recurrence (only --size, the 1-D input length)")
    n = _dims(args.size, "--size") if args.size is not None else (10,)
    if len(n) != 1:
        raise InvalidInputError(f"--table: --size is the 1-D input length N, got {args.size!r}")
    T = maxpool_table(n[0])

    def cell(r):
        f = "-" if r["facets"] is None else str(r["facets"])
        return f"{r['vertices']}/{f}" + ("*" if r["closed_form"] is not None else "")

    lines = [f"1-D max-pool on length {T.n}: vertices/facets (windows m); * = a closed form for the vertices "
             f"agrees; facets agree with pool1d_facet_count", "k \\ s  " + "  ".join(f"{'s=' + str(s):>16}" for s in (1, 2, 3))]
    for k in sorted({r["kernel"][0] for r in T.rows_1d}):
        rows = [r for r in T.rows_1d if r["kernel"][0] == k]
        lines.append(f"k={k}    " + "  ".join(f"{cell(r) + ' (' + str(r['windows']) + ')':>16}" for r in rows))
    for st in sorted({r["stride"][0] for r in T.rows_2d}):
        lines.append(f"2-D, 2x2 windows, stride {st}: vertices/facets ('-': facets not counted)")
        lines.append("  " + "; ".join(f"{r['size'][0]}x{r['size'][1]} {cell(r)}" for r in T.rows_2d
                                      if r["stride"][0] == st))
    lines.append(f"{T.seconds:.2f} s")
    return Output(T.to_dict(), "\n".join(lines))


def run_tropical_sizes(args, ctx: Context) -> Output:
    import math

    from relulab.core.errors import InvalidInputError
    from relulab.tropical import tropical_sizes

    if not math.isfinite(args.time_limit):
        raise InvalidInputError(f"--time-limit must be a finite number of seconds, got {args.time_limit}")
    r = tropical_sizes(args.widths, range(1, args.max_depth + 1), inputs=args.inputs, seed=args.seed,
                       max_monomials=args.max_monomials, time_limit=args.time_limit)

    def pair(a, b):
        return f"{a}/{b}" if a is not None else f"> {args.max_monomials} or time"

    lines = [f"{args.inputs}-w-...-w-1 ReLU MLPs (torch init, seed {args.seed}): monomials of p/q, exact rationals",
             f"{'width':>5} {'depth':>5} {'raw p/q':>22} {'reduced p/q':>12} {'linear regions':>15} {'seconds':>8}"]
    for row in r.rows:
        lin = "-" if row["linear_regions"] is None else str(row["linear_regions"]) + (
            "" if row["regions_certified"] else " (uncertified)")
        lines.append(f"{row['width']:>5} {row['depth']:>5} {pair(row['raw_p'], row['raw_q']):>22} "
                     f"{pair(row['reduced_p'], row['reduced_q']):>12} {lin:>15} "
                     f"{row['raw_seconds'] + row['reduce_seconds']:>8.2f}")
    lines.append("reduced: monomials strictly maximal somewhere (every decision certified exactly: "
                 f"{all(row['certified'] for row in r.rows if row['reduced_p'] is not None)}); {r.seconds:.1f} s")
    return Output(r.to_dict(), "\n".join(lines))


def _read_points(text: str):
    from relulab.core.errors import InvalidInputError

    X = read_array(text, "DATA")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise InvalidInputError(f"DATA {text}: expected an (n, d) array, got shape {X.shape}")
    return X


def run_classifications(args, ctx: Context) -> Output:
    import numpy as np

    from relulab.core.errors import InvalidInputError

    X = _read_points(args.data)
    if args.model == "relu":
        from relulab.tropical import relu_classifications

        if args.labels:
            raise InvalidInputError("--labels (0/1-loss sublevel sets) needs --model tropical")
        r = relu_classifications(X, args.width, positive_units=args.positive_units)
        data = r.to_dict(summary=not args.list)
        signs = "any output signs" if r.positive_units is None else \
            f"{r.positive_units} output weights +1, {r.width - r.positive_units} -1"
        lines = [f"{r.n} points in R^{r.d}, shallow ReLU network of width {r.width} ({signs})",
                 f"realizable labellings: {r.count} of {2 ** r.n} (each with a witness network; "
                 f"{r.refuted} refuted by exhausting activation patterns, {r.lps} LPs)"]
        if r.cover is not None:
            lines.append(f"width 1 (Cover's count 2 sum_k C(n-1, k)): {r.cover}")
        if r.line_count is not None:
            lines.append(f"on a line: 2 sum_(j<=m) C(n-1, j) = {r.line_count}")
        lines.append("certified: witnesses exact, every refutation with an exact Farkas certificate" if r.certified
                     else "NOT certified: some LP refutation has no exact certificate (float64 decision)")
        lines.append(f"{r.seconds:.2f} s")
        return Output(data, "\n".join(lines))
    from relulab.tropical import classification_fan

    if args.positive_units is not None:
        raise InvalidInputError("--positive-units is for --model relu")
    y = None
    if args.labels:
        if args.labels.endswith(".npy"):
            y = read_array(args.labels, "--labels").reshape(-1)
        else:
            try:
                y = np.array([float(v) for v in args.labels.split(",") if v.strip()])
            except ValueError:
                raise InvalidInputError(f"--labels: expected comma-separated labels, got {args.labels!r}") from None
    r = classification_fan(X, args.width, labels=y)
    data = r.to_dict(summary=not args.list)
    lines = [f"{r.n} points in R^{r.d}, sign(p - q) with {r.widths[0]} + {r.widths[1]} monomials",
             f"realizable labellings: {r.count} of {2 ** r.n}",
             f"activation cones (vertices of the activation polytope): {r.activation_vertices}, "
             f"polytope dimension {r.polytope_dim}, facets {r.facets if r.facets is not None else 'not computed'}"]
    if r.cover is not None:
        lines.append(f"Cover's count 2 sum_k C(n-1, k): {r.cover}")
    elif not r.general_position:
        lines.append("points not in general position: Cover's formula does not apply")
    for s in r.sublevel:
        if "note" in s:
            lines.append(s["note"])
        else:
            comp = s["components"] if s["components"] is not None else \
                f"through facets {s['facet_components']} (touching not tested: too many cones)"
            lines.append(f"loss <= {s['loss']}: {s['cones']} cones, components {comp}")
    if not r.certified:
        lines.append("NOT certified: some dropped activation cone has no exact emptiness certificate")
    lines.append(f"{r.seconds:.2f} s")
    return Output(data, "\n".join(lines))


def run_maxout(args, ctx: Context) -> Output:
    from relulab.combinatorics import maxout_complexity

    widths = args.widths
    r = maxout_complexity(widths, args.k, n_in=args.inputs, seeds=args.seeds, sigma_w=args.sigma_w,
                          sigma_b=args.sigma_b, box=args.inputs <= 2)
    lines = [f"maxout widths {widths}, rank {r.k}, {r.n_in} inputs, {r.seeds} seeds (weights N(0, "
             f"{r.sigma_w}^2/fan_in), biases N(0, {r.sigma_b}^2))",
             f"breakpoints on the segment: mean {r.line_mean:.3f}, 95% CI [{r.line_ci[0]:.3f}, {r.line_ci[1]:.3f}]"
             + (f"; exact expectation {r.line_expected:.4f}" if r.line_expected is not None else "")]
    if r.box_mean is not None:
        lines.append(f"activation regions in the cube of side {r.box_side}: mean {r.box_mean:.2f}, "
                     f"95% CI [{r.box_ci[0]:.2f}, {r.box_ci[1]:.2f}]")
    if r.boundary_mean is not None:
        lines.append(f"decision-boundary pieces in the cube: mean {r.boundary_mean:.2f}, "
                     f"95% CI [{r.boundary_ci[0]:.2f}, {r.boundary_ci[1]:.2f}]")
    lines.append(f"Tseran-Montufar bounds (C_bias {r.c_bias:.3g} exact, C_grad {r.c_grad:.3g} estimated): "
                 f"regions <= {r.bounds['regions']:.4g}, decision boundary <= {r.bounds['decision_boundary']:.4g}")
    return Output(r.to_dict(), "\n".join(lines))
