"""``relulab dynamics univariate``: the kernel and adaptive regimes of shallow univariate ReLU networks."""

from __future__ import annotations

from relulab.cli import Context, Output, figure_file, float_arg, int_arg, json_flag, number_list, save_figure

# comma-separated flag values: widths / dimensions, and positive scales
_SIZES = number_list(integer=True, lo=1, hi=10**6, most=50)
_POSITIVE = number_list(above=0, most=50)


def add_parser(sub) -> None:
    p = sub.add_parser("dynamics", description="Training dynamics and implicit bias of shallow networks.")
    kinds = p.add_subparsers(dest="dynamics_kind", metavar="KIND", required=True, parser_class=type(p))
    u = kinds.add_parser("univariate", help="regime diagram of shallow univariate ReLU regression",
                         description="Train f(x) = m^-1/2 sum_i c_i relu(a_i x + b_i) + u x + v by gradient descent "
                                     "on 1-D data for each inner scale s_a, outer scale s_c and width, and measure "
                                     "its L2 distance (on the data's hull) to the natural cubic spline, the linear "
                                     "interpolant and its own kernel limit.")
    u.add_argument("--points", type=int_arg(3, 200), default=6, metavar="N", help="number of data points (default 6)")
    u.add_argument("--data", choices=("alternating", "random"), default="alternating",
                   help="alternating: evenly spaced x (jittered), values of alternating sign, whose least-curvature "
                        "interpolant is the linear one (default); random: x ~ U(-1, 1), y ~ N(0, 1/4)")
    u.add_argument("--init", choices=("symmetric", "plain"), default="symmetric",
                   help="symmetric: units in pairs with opposite outer weights, f_0 = 0 (default); plain: f_0 random")
    u.add_argument("--widths", type=_SIZES, default="200", metavar="W,..", help="widths (default 200)")
    u.add_argument("--inner-scales", type=_POSITIVE, default="0.1,1,10", metavar="S,..", help="inner scales s_a")
    u.add_argument("--outer-scales", type=_POSITIVE, default="0.1,1,10", metavar="S,..", help="outer scales s_c")
    u.add_argument("--steps", type=int_arg(1, 10**7), default=20000, metavar="K", help="gradient steps (default 20000)")
    u.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=0, metavar="S")
    u.add_argument("--time-limit", type=float_arg(above=0), default=None, metavar="SEC")
    u.add_argument("--quick", action="store_true", help="width 100, s_a in {0.1, 10}, s_c in {1, 10}, 2000 steps")
    u.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="write the regime diagram to FILE")
    json_flag(u)
    u.set_defaults(handler=run_univariate)

    m = kinds.add_parser("mirror", help="mirror-flow implicit bias against width",
                         description="Train f(x) = sum_k a_k sigma(w_k x - b_k) + d (a = d = 0 at the start) by mirror "
                                     "descent with unscaled or width-scaled potentials and measure the sup and L2 "
                                     "distances to the solution of the function-space limit problem and to the "
                                     "kernel (gradient-flow) limit as the width grows.")
    m.add_argument("--widths", type=_SIZES, default="50,200,800,3200", metavar="W,..", help="widths")
    m.add_argument("--potentials", type=str, default="x^2,|x|^3+x^2,x^4+x^2", metavar="P,..",
                   help="potentials phi (quadratic, x^2, |x|^3+x^2, x^4+x^2, cosh-entropy)")
    m.add_argument("--scaling", choices=("unscaled", "scaled", "both"), default="both")
    m.add_argument("--activation", choices=("relu", "abs"), default="abs")
    m.add_argument("--steps", type=int_arg(1, 10**7), default=20000, metavar="K", help="mirror-descent steps")
    m.add_argument("--init", choices=("stratified", "random"), default="stratified")
    m.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=0, metavar="S")
    m.add_argument("--time-limit", type=float_arg(above=0), default=None, metavar="SEC")
    m.add_argument("--quick", action="store_true", help="widths 100 and 1600, the scaled |x|^3+x^2 potential only")
    m.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="write distance vs width to FILE")
    json_flag(m)
    m.set_defaults(handler=run_mirror)

    b = kinds.add_parser("benign", help="benign vs harmful overfitting against signal strength",
                         description="Train two-layer leaky ReLU networks (fixed outer signs) by gradient descent on "
                                     "the hinge loss to zero loss on signal-plus-orthogonal-noise data with flipped "
                                     "labels; report the test error (clean labels) of the network and of the "
                                     "hard-margin classifier against the signal strength gamma, with the derived "
                                     "transition gamma ~ 1/sqrt(n d) and the paper's orders gamma ~ 1/k (benign) and "
                                     "gamma ~ alpha^3/d (harmful).")
    b.add_argument("--n", type=int_arg(4, 5000), default=40, metavar="N", help="training points (default 40)")
    b.add_argument("--flipped", type=int_arg(0, 5000), default=4, metavar="K", help="flipped labels (default 4)")
    b.add_argument("--dims", type=_SIZES, default="200,800,3200", metavar="D,..", help="input dimensions")
    b.add_argument("--gammas", type=_POSITIVE, default="0.001,0.003,0.01,0.03,0.1,0.3", metavar="G,..",
                   help="signal strengths in (0, 1)")
    b.add_argument("--seeds", type=int_arg(1, 100), default=3, metavar="S", help="data seeds per setting")
    b.add_argument("--width", type=int_arg(2, 10**4), default=64, metavar="M", help="hidden width 2m (even)")
    b.add_argument("--ns", type=_SIZES, default=None, metavar="N,..", help="several sample sizes (instead of --n)")
    b.add_argument("--flip-fraction", type=float_arg(0, 0.49), default=None, metavar="F",
                   help="k = round(F n) flipped labels (instead of --flipped)")
    b.add_argument("--d-over-n", type=_POSITIVE, default=None, metavar="R,..", help="d = round(R n) (instead of --dims)")
    b.add_argument("--lr-factor", type=float_arg(above=0), default=1.0, metavar="F",
                   help="step = F times the paper's bound 1/(m n max|x_i|^2) (default 1)")
    b.add_argument("--quick", action="store_true", help="d = 400, gamma in {0.001, 0.01, 0.1}, one seed")
    b.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="write the diagram to FILE")
    json_flag(b)
    b.set_defaults(handler=run_benign)

    g = kinds.add_parser("gd-kernels", help="gradient descent vs kernel methods on a^T |W* x|",
                         description="Population loss (Monte Carlo, with standard errors) of a two-layer ReLU network "
                                     "trained by full-batch gradient descent from a small initialization, NTK ridge "
                                     "regression and random-features ridge regression at n = F d^2 samples of the "
                                     "teacher a^T |W* x| (a_i = 1/d), "
                                     "against d; finite-size evidence for o(1/d) vs Omega(1/d).")
    g.add_argument("--dims", type=_SIZES, default="6,8,12,16", metavar="D,..", help="input dimensions")
    g.add_argument("--seeds", type=int_arg(1, 20), default=1, metavar="S", help="teachers per dimension")
    g.add_argument("--samples-factor", type=float_arg(above=0), default=16.0, metavar="F",
                   help="n = F d^2 (default 16)")
    g.add_argument("--steps", type=int_arg(1, 10**6), default=6000, metavar="K",
                   help="gradient steps (default 6000; the cap with --train-target)")
    g.add_argument("--train-target", type=float_arg(above=0), default=None, metavar="E",
                   help="stop GD once d x training loss <= E (the same fraction of the 1/d scale at every d)")
    g.add_argument("--width-factor", type=int_arg(1, 1000), default=4, metavar="W",
                   help="the network has W d pairs of ReLU units (default 4)")
    g.add_argument("--init-scale", type=float_arg(above=0), default=1e-2, metavar="S",
                   help="initialization scale of both layers (default 0.01)")
    g.add_argument("--weight-decay", type=float_arg(lo=0), default=0.0, metavar="L", help="weight decay (default 0)")
    g.add_argument("--signs", choices=("positive", "random"), default="positive",
                   help="teacher's outer weights: 1/d (the paper's nonnegative a) or +-1/d")
    g.add_argument("--test-samples", type=int_arg(100, 10**7), default=20000, metavar="T",
                   help="Monte Carlo points for the population loss")
    g.add_argument("--quick", action="store_true", help="d in {6, 8}, 1500 steps, 4000 test points")
    g.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="write d x loss vs d to FILE")
    json_flag(g)
    g.set_defaults(handler=run_gd_kernels)


def run_univariate(args, ctx: Context) -> Output:

    from relulab.dynamics import regime_diagram

    if args.quick:
        widths, sa, sc, steps = [100], [0.1, 10.0], [1.0, 10.0], 2000
    else:
        widths = args.widths
        sa = args.inner_scales
        sc = args.outer_scales
        steps = args.steps
    from relulab.core.errors import InvalidInputError
    from relulab.dynamics import univariate_data

    if args.init == "symmetric" and any(w % 2 for w in widths):
        raise InvalidInputError(f"--widths: must be even with --init symmetric, got {widths}")
    x, y = univariate_data(args.data, args.points, args.seed)
    with ctx.progress("training", "settings") as bar:
        r = regime_diagram(x, y, widths=widths, inner_scales=sa, outer_scales=sc, steps=steps, seed=args.seed,
                           symmetric=args.init == "symmetric", time_limit=args.time_limit, progress=bar)
    data = r.to_dict()
    if args.plot:
        data["plot"] = save_figure(lambda ax: r.plot(ax=ax), args.plot, (5, 4))
    lines = ["width  s_a      s_c      L2 cubic   L2 linear  L2 kernel  mass near data (uniform)  loss      closest"]
    for row in r.rows:
        lines.append(f"{row['width']:<6d} {row['inner_scale']:<8g} {row['outer_scale']:<8g} {row['l2_cubic']:<10.3g} "
                     f"{row['l2_linear']:<10.3g} {row['l2_kernel']:<10.3g} {row['mass_near_data']:.3f} "
                     f"({row['mass_near_baseline']:.2f}){'':<13} {row['final_loss']:<9.2g} {row['closest']}")
    return Output(data, "\n".join(lines))


def run_mirror(args, ctx: Context) -> Output:
    from relulab.core.errors import InvalidInputError
    from relulab.dynamics import mirror_bias
    from relulab.experiments.entries_dynamics import MIRROR_X, MIRROR_Y

    if args.quick:
        widths, pots, scaled = [100, 1600], ["|x|^3+x^2"], [True]
    else:
        widths = args.widths
        pots = [p.strip() for p in args.potentials.split(",") if p.strip()]
        if not pots:
            raise InvalidInputError("--potentials: expected at least one potential")
        scaled = {"unscaled": [False], "scaled": [True], "both": [False, True]}[args.scaling]
    with ctx.progress("training", "runs") as bar:
        r = mirror_bias(MIRROR_X, MIRROR_Y, widths=widths, potentials=pots, scaled=scaled, activation=args.activation,
                        init=args.init, steps=args.steps, seed=args.seed, time_limit=args.time_limit, progress=bar)
    data = r.to_dict()
    if args.plot:
        data["plot"] = save_figure(lambda ax: r.plot(ax=ax), args.plot, (5.5, 4))
    lines = ["potential     scaled  width   sup to limit  sup to kernel  movement  converged"]
    for row in r.rows:
        lines.append(f"{row['potential']:<13} {str(row['scaled']):<7} {row['width']:<7d} {row['sup_limit']:<13.3g} "
                     f"{row['sup_kernel']:<14.3g} {row['movement']:<9.3g} {row['converged']}")
    return Output(data, "\n".join(lines))


def run_benign(args, ctx: Context) -> Output:
    from relulab.core.errors import InvalidInputError
    from relulab.dynamics import benign_diagram

    if args.quick:
        ds, gammas, seeds = [400], [1e-3, 1e-2, 1e-1], [0]
    else:
        ds = args.dims
        gammas = args.gammas
        seeds = list(range(args.seeds))
    if max(gammas) >= 1:
        raise InvalidInputError(f"--gammas: signal strengths must be < 1, got {max(gammas)}")
    ns = [args.n] if args.ns is None else args.ns
    if args.flip_fraction is None and args.flipped >= min(ns) / 2:
        raise InvalidInputError(f"--flipped: must be below n/2 = {min(ns) / 2:g}, got {args.flipped}")
    if args.d_over_n is not None and min(args.d_over_n) * min(ns) < 2:
        raise InvalidInputError("--d-over-n: d = R n must be at least 2")
    if args.width % 2:
        raise InvalidInputError(f"--width: must be even (2m units), got {args.width}")
    with ctx.progress("training", "settings") as bar:
        r = benign_diagram(n=args.n, flipped=args.flipped, ds=ds, gammas=gammas, seeds=seeds, width=args.width,
                           ns=args.ns, flip_fraction=args.flip_fraction, d_over_n=args.d_over_n,
                           lr_factor=args.lr_factor, progress=bar)
    data = r.to_dict()
    if args.plot:
        data["plot"] = save_figure(lambda ax: r.plot(ax=ax), args.plot, (6, 4.5))
    lines = ["n     k    d      gamma    seed  network error        max-margin  predicted  SNR       interpolated"]
    for row in r.rows:
        lines.append(f"{row['n']:<5d} {row['flipped']:<4d} {row['d']:<6d} {row['gamma']:<8g} {row['seed']:<5d} "
                     f"{row['network_error']:.4f} +- {row['network_error_se']:<9.2g} {row['max_margin_error']:<11.4f} "
                     f"{row['predicted_error']:<10.4f} {row['network_snr']:<9.3g} {row['interpolated']}")
    return Output(data, "\n".join(lines))


def run_gd_kernels(args, ctx: Context) -> Output:
    from relulab.dynamics import gd_vs_kernels

    if args.quick:
        ds, steps, tests = [6, 8], 1500, 4000
    else:
        ds, steps, tests = args.dims, args.steps, args.test_samples
    with ctx.progress("fitting", "settings") as bar:
        r = gd_vs_kernels(ds=ds, seeds=tuple(range(args.seeds)), samples_factor=args.samples_factor, steps=steps,
                          width_factor=args.width_factor, init_scale=args.init_scale, weight_decay=args.weight_decay,
                          signs=args.signs, test_samples=tests, train_target=args.train_target, progress=bar)
    data = r.to_dict()
    if args.plot:
        data["plot"] = save_figure(lambda ax: r.plot(ax=ax), args.plot, (6, 4.5))
    lines = ["d    seed  n      d*loss GD        d*loss NTK       d*loss RF        floor (1-3/pi)  GD steps  d*train"]
    for row in r.rows:
        d = row["d"]
        lines.append(f"{d:<4d} {row['seed']:<5d} {row['n']:<6d} " + " ".join(
            f"{d * row[k + '_loss']:.4f}+-{d * row[k + '_se']:<7.1g}" for k in ("gd", "ntk", "rf"))
            + f" {d * row['quadratic_loss']:.4f}          {row['gd_steps']:<9d} {d * row['gd_train_loss']:.2g}")
    return Output(data, "\n".join(lines))
