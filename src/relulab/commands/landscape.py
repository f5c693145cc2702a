"""``relulab landscape ...``: loss landscapes in parameter space: teacher-student critical points, the
kink-aware stationarity verdict of a shallow network on data (``classify``) and the rank of its
parameterization Jacobian on data or over random draws (``jacobian-rank``)."""

from __future__ import annotations

import argparse
import textwrap

from relulab.cli import SEED, Context, Output, figure_file, float_arg, int_arg, json_flag, save_figure

# sizes the command line accepts before its memory estimates decide
MAX_SIZE = 10**6


def add_parser(sub) -> None:
    p = sub.add_parser("landscape", description="Loss landscapes of piecewise-linear networks in parameter space.")
    kinds = p.add_subparsers(dest="landscape_kind", metavar="TASK", required=True, parser_class=type(p))
    ts = kinds.add_parser(
        "teacher-student", help="critical points of the Gaussian teacher-student problem, grouped by symmetry",
        description="Critical points of L(W) = 1/2 E (sum_i relu(w_i . x) - sum_j relu(v_j . x))^2, x ~ N(0, I_d), "
                    "teacher V = I_d, from random starts (gradient flow, then Newton to gradient norm 1e-12, in "
                    "closed form), grouped into families up to the permutation symmetry, each with its isotropy "
                    "group and Hessian spectrum.")
    ts.add_argument("--d", type=int_arg(1, MAX_SIZE), required=True, help="input dimension (teacher neurons: d)")
    ts.add_argument("--k", type=int_arg(1, MAX_SIZE), default=None, help="student neurons (default d)")
    ts.add_argument("--starts", type=int_arg(1, 10**7), default=50, help="random starts (default 50)")
    ts.add_argument("--seed", type=SEED, default=0, help="seed of the starts (default 0)")
    ts.add_argument("--workers", type=int_arg(1, 4096), default=None, help="processes (default: every core)")
    ts.add_argument("--target", choices=("minima", "critical"), default="minima",
                    help="minima: escape saddles along negative curvature; critical: stop at any critical point")
    ts.add_argument("--time-limit", type=float_arg(above=0), default=None, metavar="SECONDS",
                    help="stop after this many seconds (unfinished starts are reported, the result is incomplete)")
    ts.add_argument("--memory", type=float_arg(above=0, hi=2**20), default=4.0, metavar="GIB",
                    help="memory for one process's batch of starts, GiB (default 4); larger problems are refused")
    ts.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="plot loss against how often each family was found")
    json_flag(ts)
    ts.set_defaults(handler=run_teacher_student)
    _add_classify(kinds)
    _add_jacobian_rank(kinds)


def run_teacher_student(args, ctx: Context) -> Output:
    from relulab.core.errors import ResourceLimitError
    from relulab.landscape import TeacherStudent, find_critical_points

    k = args.d if args.k is None else args.k
    # a batch of up to 8 starts holds a Hessian of (k d)^2 numbers per start; every start keeps its point
    P = k * args.d
    need = 8 * (min(8, args.starts) * P * P + 4 * args.starts * P)
    if need > args.memory * 2**30:
        raise ResourceLimitError(f"--d {args.d} --k {k} --starts {args.starts}: the search needs about "
                                 f"{need / 2**30:.3g} GiB per process (Hessians of {P:,} parameters), more than "
                                 f"--memory {args.memory:g} GiB")
    problem = TeacherStudent.identity(args.d, args.k)
    with ctx.progress("teacher-student", "starts") as bar:
        bar(0, args.starts, stage="searching")
        res = find_critical_points(problem, args.starts, seed=args.seed, workers=args.workers, target=args.target,
                                   time_limit=args.time_limit, **ctx.engine_progress(find_critical_points, bar))
        bar(args.starts, args.starts, stage="done")
    data = res.to_dict(summary=True)
    if args.plot:
        data["plot"] = save_figure(lambda ax: res.plot(ax=ax), args.plot, (6, 4))
    head = (f"d = {res.d}, k = {res.k}, {res.n_starts} starts, {res.seconds:.1f} s"
            + ("" if res.complete else " (incomplete: time limit)"))
    return Output(data, head + "\n" + res.table())


# ---------------------------------------------------------------------- shared: a shallow model on data
SHALLOW = "Linear(d, m), then ReLU, LeakyReLU or Abs, then Linear(m, o), e.g. the spec mlp:2-16-1:relu"

_MODEL_HELP = "a torch.export program (.pt2), a safetensors file or a weights-only state dict holding " + SHALLOW
_ARCH_HELP = "architecture of a weights file, e.g. mlp:2-16-1:relu or mlp:3-8-2:leaky_relu:0.1 (not needed if " \
             "the file stores it)"
_DATA_HELP = "inputs: a .npy array (n, d) or a .csv file with one input of d numbers per row"
_TRAINABLE_HELP = ("all: every parameter (W, b, a, c) moves; first: only the hidden layer (W, b), the output "
                   "layer stays fixed")


def shallow_from_model(net, trainable: str, command: str):
    """The :class:`ShallowNet` of a PLNet (see :meth:`ShallowNet.from_plnet`), or an
    :class:`UnsupportedLayerError` naming what the command supports."""
    from relulab.core.errors import UnsupportedLayerError
    from relulab.landscape import ShallowNet

    try:
        return ShallowNet.from_plnet(net, trainable=trainable)
    except UnsupportedLayerError as e:
        why = str(e).rsplit(": ", 1)[-1]
        found = ", ".join(n.layer.kind for n in net.nodes[1:] if n.layer.kind != "reshape") or "no layers"
        raise UnsupportedLayerError(f"landscape {command} needs a one-hidden-layer network: {SHALLOW}; MODEL has "
                                    f"{found} ({why})") from None


def read_matrix(text: str, cols: int, label: str, what: str):
    """A .npy/.csv file (read by :func:`relulab.cli.read_array`) as an (n, cols) float64 tensor; a 1-D file
    is n values when ``cols == 1``. Anything else (a different number of columns, no rows, a non-finite
    value) is one error line naming ``label``."""
    import numpy as np
    import torch

    from relulab.cli import read_array
    from relulab.core.errors import InvalidInputError

    if not text.endswith((".npy", ".csv")):
        raise InvalidInputError(f"{label} {text!r}: expected a .npy or .csv file of {what}")
    arr = read_array(text, label)
    if arr.size == 0:
        raise InvalidInputError(f"{label} {text}: the file holds no numbers")
    if not (arr.ndim == 2 and arr.shape[1] == cols or arr.ndim == 1 and cols == 1):
        raise InvalidInputError(f"{label} {text}: shape {'x'.join(map(str, arr.shape))} is not n x {cols} ({what})")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{label} {text}: contains non-finite values")
    return torch.as_tensor(arr).reshape(-1, cols)


def _shallow_and_data(args, trainable: str, command: str):
    from relulab.cli import load_model

    mf = load_model(args)
    net = shallow_from_model(mf.net, trainable, command)
    x = read_matrix(args.data, net.d, "DATA", f"inputs of the model's input dimension d = {net.d}")
    y = None
    if getattr(args, "targets", None) is not None:
        from relulab.core.errors import InvalidInputError

        y = read_matrix(args.targets, net.o, "--targets", f"targets of the model's {net.o} output(s)")
        if y.shape[0] != x.shape[0]:
            raise InvalidInputError(f"--targets {args.targets} has {y.shape[0]} rows but DATA {args.data} has "
                                    f"{x.shape[0]} inputs")
    return mf, net, x, y


def _network(mf, net) -> dict:
    return {"file": mf.path, "arch": mf.arch, "d": net.d, "m": net.m, "o": net.o, "activation": net.activation,
            "alpha": net.alpha, "hidden_bias": net.b is not None, "output_bias": net.c is not None,
            "trainable": net.trainable, "n_parameters": net.n_parameters}


def _net_text(net) -> str:
    act = net.activation + (f" (slope {net.alpha:g})" if net.activation == "leaky_relu" else "")
    return f"d = {net.d}, m = {net.m}, o = {net.o}, {act}, {net.n_parameters} trainable parameters ({net.trainable})"


def _key_value_table():
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    return t


# ---------------------------------------------------------------------- relulab landscape classify
def _add_classify(kinds) -> None:
    p = kinds.add_parser(
        "classify", help="kink-aware stationarity of a shallow network on data: not stationary, saddle or minimum",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            Classify the parameters of a one-hidden-layer network MODEL for the squared
            loss L = 1/(2n) sum_i |f(x_i) - y_i|^2 on inputs DATA and targets --targets.

            MODEL: Linear(d, m), then ReLU, LeakyReLU or Abs, then Linear(m, o)
                   (the spec mlp:d-m-o:ACT).
            DATA:  n inputs, n x d; --targets: n targets, n values or n x o (required).
                   Both .npy or .csv; row i of one belongs to row i of the other.

            The one-sided directional derivatives L'(theta; v) are exact, also at kinks
            (pre-activations equal to 0, where the gradient does not exist). Verdicts:
              not stationary  some v has L'(theta; v) < 0; the certificate is that v
              strict saddle   stationary, but an escape neuron (output weight 0) gives
                              a v along which L = L0 + q t^2 + O(t^3) with q < 0
              local minimum   stationary without escape neurons where that is a
                              theorem (zero loss, fixed output layer or one output);
                              also checked by random probes
              undetermined    otherwise (vector outputs with a trainable output
                              layer, or a time limit)

            example: relulab landscape classify net.safetensors x.npy --targets y.npy"""))
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--targets", metavar="FILE", required=True,
                   help="targets y_i (required): a .npy array or .csv file, n values (one output) or n x o")
    p.add_argument("--arch", metavar="SPEC", default=None, help=_ARCH_HELP)
    p.add_argument("--input-shape", metavar="SHAPE", default=None, help="input dimension to check the model against")
    p.add_argument("--trainable", choices=("all", "first"), default="all", help=_TRAINABLE_HELP + " (default all)")
    p.add_argument("--kink-rtol", type=float_arg(0), default=1e-12, metavar="R",
                   help="a pre-activation z is on its kink when |z| <= R (|x| . |w| + |b|) (default 1e-12)")
    p.add_argument("--stat-rtol", type=float_arg(0), default=1e-9, metavar="R",
                   help="stationarity tolerance, relative to the size of the terms of L' (default 1e-9)")
    p.add_argument("--zero-atol", type=float_arg(0), default=0.0, metavar="A",
                   help="neurons with max |a_j| <= A count as zero-output neurons (escape candidates; default 0)")
    p.add_argument("--method", choices=("auto", "enumerate", "milp"), default="auto",
                   help="exact minimum of L' for neurons with concave kink terms: enumerate sign cases, "
                        "mixed-integer program, or auto (default)")
    p.add_argument("--time-limit", type=float_arg(above=0), default=10.0, metavar="SECONDS",
                   help="time limit of each mixed-integer program (default 10)")
    p.add_argument("--probes", type=int_arg(0, 10**6), default=200, metavar="N",
                   help="random directions, each tried at 3 radii inside the cones of the pre-activations, that "
                        "check a local minimum (default 200; 0: none)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the probes and escape directions (default 0)")
    json_flag(p)
    p.set_defaults(handler=run_classify)


def run_classify(args, ctx: Context) -> Output:
    from relulab.landscape import directional_stationarity

    mf, net, x, y = _shallow_and_data(args, args.trainable, "classify")
    with ctx.progress("classify") as bar:
        bar(0, 1, stage="directional derivatives")
        res = directional_stationarity(net, x, y, kink_rtol=args.kink_rtol, stat_rtol=args.stat_rtol,
                                       method=args.method, time_limit=args.time_limit, zero_atol=args.zero_atol,
                                       n_probe=args.probes, seed=args.seed,
                                       **ctx.engine_progress(directional_stationarity, bar))
        bar(1, 1, stage="done")
    data = {"model": args.model, "data": args.data, "targets": args.targets, "n": int(x.shape[0]),
            "network": _network(mf, net), **res.to_dict()}
    return Output(data, _render_classify(res, net, args, int(x.shape[0])))


def _yes(flag) -> str:
    return "not checked" if flag is None else ("yes" if flag else "NO")


def _render_classify(res, net, args, n: int):
    t = _key_value_table()
    t.add_row("model", f"{args.model}: {_net_text(net)}")
    t.add_row("data", f"{args.data}, targets {args.targets} (n = {n})")
    t.add_row("loss", f"{res.loss:.10g}")
    t.add_row("gradient norm", f"{res.gradient_autograd_norm:.6g} (autograd, slope alpha on kinks); minimum-norm "
                               f"subgradient {res.min_norm_subgradient_norm:.6g}")
    t.add_row("kinks", f"{res.n_kinks} (neuron, sample) pair(s) of {n * net.m} with pre-activation 0")
    t.add_row("verdict", f"[bold]{res.verdict}[/bold]: {res.reason}")
    dd = res.min_directional_derivative
    t.add_row("min L'(theta; v)", ("not computed" if dd is None else f"{dd:.6g} over |v|_inf <= 1")
              + f" (tolerance {res.tolerance:.3g})")
    t.add_row("zero-output neurons", ", ".join(map(str, res.zero_output_neurons)) or "none")
    t.add_row("escape neurons", ", ".join(map(str, res.escape_neurons)) or "none")
    if res.verdict == "not stationary":
        cert = (f"descent direction v with L'(theta; v) = {dd:.6g} < -{res.tolerance:.3g}; "
                f"decrease L(theta + t v) < L(theta) observed: {_yes(res.descent_verified)}")
    elif res.verdict == "strict saddle":
        if res.saddle_second_order is None:
            cert = "no second-order direction was found among the candidates"
        else:
            cert = (f"second-order direction v with L(theta + t v) = L + q t^2 + O(t^3), q = "
                    f"{res.saddle_second_order:.6g}; decrease observed: {_yes(res.saddle_verified)}")
    elif res.verdict == "local minimum":
        probe = ("no random probes" if res.probe_min_change is None
                 else f"{args.probes} random directions at 3 radii: smallest change of L {res.probe_min_change:.3g}")
        cert = (f"stationary (min L' = {dd:.3g} >= -{res.tolerance:.3g}); no escape neurons; {res.reason}; {probe}")
    else:
        cert = res.reason + ("" if res.complete else " (incomplete)")
    t.add_row("certificate", cert)
    return t


# ---------------------------------------------------------------------- relulab landscape jacobian-rank
def _add_jacobian_rank(kinds) -> None:
    p = kinds.add_parser(
        "jacobian-rank", help="rank of the parameterization Jacobian on data; --grid: the full-rank phase transition",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            MODEL DATA: the Jacobian J of theta -> (f(x_1), ..., f(x_n)) of a
            one-hidden-layer network MODEL (Linear(d, m), then ReLU, LeakyReLU or Abs,
            then Linear(m, o)) at its parameters, on the activation region of its point
            in parameter space (the parameters under which every pre-activation on DATA
            keeps its sign): rank, full rank (rank = n o), whether the region is non-empty
            (a linear program) and, with --targets, whether it holds a global minimum
            (zero loss) and the dimension of the zero-loss set there. With --trainable
            first (the default; Karhadkar, Murray, Tseran and Montufar, TMLR 2024) J is
            constant on the region, and full rank there means every differentiable
            critical point in the region is a global minimum.

            --grid (no MODEL or DATA): for every d, n, m the fraction of random draws
            (data X ~ N(0, I), He-style W and b, output weights random signs; --preset
            paper: the paper's X ~ U[0, 1], PyTorch's default initialization and
            v ~ N(0, 1)) whose Jacobian has rank n, with Wilson 95% intervals in --json.
            Full rank needs m (d + 1) >= n. --measure count draws regions uniformly among
            all non-empty ones instead (each neuron's sign vector uniform among the
            realizable ones).

            examples:
              relulab landscape jacobian-rank net.safetensors x.npy --targets y.npy
              relulab landscape jacobian-rank --grid --dims 1 2 --ns 5 10 20 --ms 2 4 8
              relulab landscape jacobian-rank --grid --preset paper --dims 2 --ns 10 20 --ms 4 8"""))
    p.add_argument("model", metavar="MODEL", nargs="?", default=None, help=_MODEL_HELP + " (not with --grid)")
    p.add_argument("data", metavar="DATA", nargs="?", default=None, help=_DATA_HELP + " (not with --grid)")
    p.add_argument("--targets", metavar="FILE", default=None,
                   help="targets (.npy/.csv, n or n x o): also decide whether the region holds a zero-loss point")
    p.add_argument("--arch", metavar="SPEC", default=None, help=_ARCH_HELP)
    p.add_argument("--input-shape", metavar="SHAPE", default=None, help="input dimension to check the model against")
    p.add_argument("--trainable", choices=("all", "first"), default="first",
                   help=_TRAINABLE_HELP + " (default first: the Jacobian is constant on the region)")
    g = p.add_argument_group("phase-transition grid (--grid)")
    g.add_argument("--grid", action="store_true",
                   help="fraction of random points (samplers: see --preset) whose Jacobian has rank n, with "
                        "Wilson 95%% intervals")
    g.add_argument("--dims", type=int_arg(1, MAX_SIZE), nargs="+", metavar="D", default=None, help="input dimensions d")
    g.add_argument("--ns", type=int_arg(1, MAX_SIZE), nargs="+", metavar="N", default=None, help="numbers of samples n")
    g.add_argument("--ms", type=int_arg(1, MAX_SIZE), nargs="+", metavar="M", default=None, help="numbers of hidden neurons m")
    g.add_argument("--samples", type=int_arg(1, 10**7), default=None, help="random draws per cell (default 200)")
    g.add_argument("--seed", type=SEED, default=None, help="seed (default 0; results do not depend on --workers)")
    g.add_argument("--workers", type=int_arg(1, 4096), default=None, help="processes (default: every core)")
    g.add_argument("--activation", choices=("relu", "leaky_relu", "abs"), default=None, help="default relu")
    g.add_argument("--alpha", type=float_arg(above=0, hi=1), default=None, help="slope of leaky_relu (default 0.01)")
    g.add_argument("--measure", choices=("volume", "count"), default=None,
                   help="volume: random parameter points (default); count: regions uniformly among non-empty ones")
    g.add_argument("--preset", choices=("default", "paper"), default=None,
                   help="samplers: default (X ~ N(0, I), He-style W, b, output weights random signs) or paper "
                        "(Karhadkar et al.: X ~ U[0, 1]^d, PyTorch's default nn.Linear initialization, output "
                        "weights N(0, 1)); the three options below override it")
    g.add_argument("--data-sampler", choices=("normal", "uniform"), default=None,
                   help="data X: normal N(0, I) or uniform U[0, 1]^d")
    g.add_argument("--init", choices=("he", "torch", "normal"), default=None,
                   help="hidden layer W, b: he N(0, 2/d), torch U(-1/sqrt(d), 1/sqrt(d)) or normal N(0, 1)")
    g.add_argument("--output-weights", choices=("sign", "normal", "torch"), default=None,
                   help="output weights: random signs, N(0, 1) or torch U(-1/sqrt(m), 1/sqrt(m))")
    g.add_argument("--memory", type=float_arg(above=0, hi=2**20), default=None, metavar="GIB",
                   help="memory for one batch of 128 Jacobians, GiB (default 4); larger cells are refused")
    g.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="heatmap of the fractions, one panel per d")
    json_flag(p)
    p.set_defaults(handler=run_jacobian_rank)


_GRID_ONLY = ("dims", "ns", "ms", "samples", "seed", "workers", "activation", "alpha", "measure", "preset",
              "data_sampler", "init", "output_weights", "memory", "plot")


def run_jacobian_rank(args, ctx: Context) -> Output:
    from relulab.core.errors import InvalidInputError

    if args.grid:
        given = [n for n in ("model", "data") if getattr(args, n) is not None]
        if given or args.targets or args.arch or args.input_shape:
            raise InvalidInputError("jacobian-rank --grid takes no MODEL, DATA, --targets, --arch or --input-shape")
        return _run_grid(args, ctx)
    extra = [n for n in _GRID_ONLY if getattr(args, n) is not None]
    if extra:
        raise InvalidInputError(f"--{extra[0]} is an option of jacobian-rank --grid")
    if args.model is None or args.data is None:
        raise InvalidInputError("jacobian-rank needs MODEL and DATA (or --grid --dims ... --ns ... --ms ...)")
    from relulab.landscape import parameter_region

    mf, net, x, y = _shallow_and_data(args, args.trainable, "jacobian-rank")
    _check_off_kinks(net, x)
    with ctx.progress("jacobian-rank", "steps") as bar:
        res = parameter_region(net, x, y, **ctx.engine_progress(parameter_region, bar))
    n = int(x.shape[0])
    data = {"model": args.model, "data": args.data, "targets": args.targets, "n": n,
            "network": _network(mf, net), **res.to_dict()}
    return Output(data, _render_rank(res, net, args, n))


def _check_off_kinks(net, x) -> None:
    """The Jacobian exists only off kinks: say which (neuron, sample) pair is on one, in the CLI's words."""
    import torch

    from relulab.core.errors import DegenerateGeometryError
    from relulab.landscape import parameter_pattern

    S = parameter_pattern(net, x)
    null = (x == 0).all(dim=1) if net.b is None else torch.zeros(x.shape[0], dtype=torch.bool)
    bad = (S == 0) & ~null[None, :]
    if bool(bad.any()):
        j, i = (int(v) for v in bad.nonzero()[0])
        raise DegenerateGeometryError(
            f"MODEL's parameters lie on a kink: neuron {j} has pre-activation exactly 0 at sample {i} "
            f"({int(bad.sum())} such pair(s)); the Jacobian does not exist there (relulab landscape classify "
            "handles points on kinks)")


def _render_rank(res, net, args, n: int):
    t = _key_value_table()
    t.add_row("model", f"{args.model}: {_net_text(net)}")
    t.add_row("data", f"{args.data} (n = {n})")
    rows = res.n_outputs
    t.add_row("Jacobian", f"{rows} x {res.n_parameters} (n o rows, one column per trainable parameter)")
    t.add_row("rank", f"{res.rank}: " + ("full rank (rank = n o)" if res.full_rank else
                                         f"not full rank (n o = {rows}"
                                         + (f"; only {res.n_parameters} parameters)" if res.n_parameters < rows
                                            else ")")))
    if res.full_rank and net.trainable == "first":
        t.add_row("", "every differentiable critical point in this region is a global minimum")
    t.add_row("region", "non-empty" if res.nonempty else "EMPTY (linear program)")
    if args.targets is None:
        t.add_row("global minimum", "give --targets to decide whether the region holds a zero-loss point")
    else:
        g = res.has_global_minimum
        text = {True: "yes: zero loss is attained inside the region", False: "no zero-loss point in the region",
                None: "not decided (with trainable output weights only the test with the output layer fixed is "
                      "made, and it found none)"}[g]
        if res.zero_loss_dimension is not None:
            text += f"; the zero-loss set there has dimension {res.zero_loss_dimension} (P - rank)"
        t.add_row("global minimum", text)
    return t


def _run_grid(args, ctx: Context) -> Output:
    from relulab.core.errors import InvalidInputError
    from relulab.landscape import full_rank_fraction

    missing = [f"--{n}" for n in ("dims", "ns", "ms") if getattr(args, n) is None]
    if missing:
        raise InvalidInputError(f"jacobian-rank --grid needs {', '.join(missing)}")
    if args.alpha is not None and args.activation != "leaky_relu":
        raise InvalidInputError("--alpha is the slope of --activation leaky_relu")
    memory = 4.0 if args.memory is None else args.memory
    # each batch of up to 128 draws is one (128, n, m (d + 1)) Jacobian
    need = max(8 * min(128, args.samples or 200) * n * m * (d + 1) for d in args.dims for n in args.ns for m in args.ms)
    if need > memory * 2**30:
        from relulab.core.errors import ResourceLimitError

        raise ResourceLimitError(f"--dims {max(args.dims)} --ns {max(args.ns)} --ms {max(args.ms)}: a batch of "
                                 f"Jacobians needs {need / 2**30:.3g} GiB, more than --memory {memory:g} GiB")
    with ctx.progress("full-rank grid", "draws") as bar:
        res = full_rank_fraction(args.dims, args.ns, args.ms, samples=args.samples or 200, seed=args.seed or 0,
                                 workers=args.workers, activation=args.activation or "relu", alpha=args.alpha,
                                 measure=args.measure or "volume", preset=args.preset, data=args.data_sampler,
                                 init=args.init, output_weights=args.output_weights,
                                 **ctx.engine_progress(full_rank_fraction, bar))
    data = res.to_dict()
    if args.plot:
        data["plot"] = save_figure(lambda ax: _draw_grid(ax, res), args.plot, (4 * len(res.d_values), 3.5))
    return Output(data, _render_grid(res, args))


def _draw_grid(ax, res) -> None:
    fig = ax.figure
    ax.remove()
    res.plot(ax=fig.subplots(1, len(res.d_values), squeeze=False)[0])


def _render_grid(res, args):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    what = "random points" if res.measure == "volume" else "regions drawn uniformly by count"
    samplers = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in res.samplers.items())
    parts = [Text(f"fraction of {res.samples} {what} whose Jacobian has rank n ({res.activation}, "
                  f"hidden bias, output layer fixed; samplers: {samplers}; seed {res.seed}, {res.workers} worker(s), "
                  f"{res.seconds:.1f} s); * : m (d+1) < n, never full rank")]
    for a, d in enumerate(res.d_values):
        t = Table(title=f"d = {d}", title_justify="left", show_edge=False)
        t.add_column("m \\ n", justify="right", style="bold")
        for n in res.n_values:
            t.add_column(str(n), justify="right")
        for c, m in enumerate(res.m_values):
            cells = []
            for b, n in enumerate(res.n_values):
                cells.append("0*" if m * (d + 1) < n else f"{res.fraction[a, b, c]:.3f}")
            t.add_row(str(m), *cells)
        parts += [Text(""), t]
    if args.plot:
        parts += [Text(""), Text(f"figure: {args.plot}")]
    return Group(*parts)
