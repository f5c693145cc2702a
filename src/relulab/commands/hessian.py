"""``relulab hessian MODEL DATA``: the Hessian spectrum of a model's loss on data."""

from __future__ import annotations

import argparse
import textwrap

from relulab.cli import (SEED, Context, Output, add_model_arguments, figure_file, float_arg, int_arg, json_flag,
                         save_figure)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "hessian",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            The Hessian H of L(theta) = loss(MODEL(DATA; theta), targets) in all trainable
            parameters, at the model's parameters, never formed: Hessian-vector products.
              largest / smallest  Lanczos with full re-orthogonalization, each value with
                                  its measured residual |H v - l v| (the most negative too)
              trace               Hutchinson on the complement of the Lanczos space
              density             stochastic Lanczos quadrature
              inertia             negative / zero / positive counts, exact (dense) for up to
                                  --max-dense parameters, tol = max(P eps |H|, |grad L|)
              kinks               data points exactly on a ReLU kink or max tie: there the
                                  autograd Hessian is one-sided

            DATA: a .npy or .csv file of inputs, or a built-in set NAME[:N] (spirals,
            moons, circles, xor; their labels are the targets). --targets FILE: class
            indices (n values) for cross_entropy, n values or n x o for mse.

            example: relulab hessian demo_out/model.safetensors spirals:400 --top 5"""))
    add_model_arguments(p)
    p.add_argument("data", metavar="DATA", help="inputs: .npy / .csv (n x d), or a built-in data set NAME[:N]")
    p.add_argument("--targets", metavar="FILE", default=None,
                   help="targets (.npy / .csv); required unless DATA is a built-in data set")
    p.add_argument("--loss", choices=("cross_entropy", "mse"), default="cross_entropy",
                   help="loss, mean over the data (default cross_entropy)")
    p.add_argument("--top", type=int_arg(0, 10**4), default=5, metavar="K", help="largest eigenvalues (default 5)")
    p.add_argument("--bottom", type=int_arg(0, 10**4), default=5, metavar="K",
                   help="smallest (most negative) eigenvalues (default 5; 0: none)")
    p.add_argument("--tol", type=float_arg(above=0), default=1e-6, help="eigenvalue residual tolerance relative to |H| (1e-6)")
    p.add_argument("--max-steps", type=int_arg(1, 10**6), default=300, help="Lanczos steps at most (memory: steps x P numbers)")
    p.add_argument("--trace-queries", type=int_arg(0, 10**5), default=60, metavar="N",
                   help="Hutchinson samples of the trace (default 60; 0: no trace)")
    p.add_argument("--trace-time-limit", type=float_arg(above=0), default=None, metavar="SECONDS",
                   help="stop the trace's sampling after this many seconds; the estimate then uses the samples "
                        "drawn so far and says how many (default: no limit)")
    p.add_argument("--no-density", action="store_true", help="skip the spectral density")
    p.add_argument("--max-dense", type=int_arg(0, 10**6), default=3000, metavar="P",
                   help="exact inertia from the dense Hessian up to P parameters (default 3000)")
    p.add_argument("--batch-size", type=int_arg(1, None), default=None, help="evaluate the loss in batches of this size")
    p.add_argument("--memory", type=float_arg(above=0, hi=2**20), default=2.0, metavar="GIB",
                   help="memory for a Lanczos basis (steps x P numbers), GiB (default 2); fewer steps fit in less")
    p.add_argument("--float32", action="store_true", help="compute in float32 (default float64)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the random start vectors (default 0)")
    p.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="plot the spectral density with the extreme values")
    json_flag(p)
    p.set_defaults(handler=run_hessian)


def _data_and_targets(args, mf):
    import torch

    from relulab.commands.kernels import builtin_data, read_inputs
    from relulab.core.errors import InvalidInputError

    if args.loss == "cross_entropy" and mf.net.output_dim < 2:
        raise InvalidInputError("cross_entropy needs a model with at least 2 outputs (class scores); use --loss mse")
    ds = builtin_data(args.data)
    if ds is not None:
        x, y = ds.x, ds.y
        if args.targets is not None:
            y = None
        elif args.loss == "mse":  # labels as regression targets: the label itself, or one-hot class scores
            k = mf.net.output_dim
            if k == 1:
                y = ds.y.double().reshape(-1, 1)
            elif k == ds.n_classes:
                y = torch.nn.functional.one_hot(ds.y, k).double()
            else:
                raise InvalidInputError(f"--loss mse on {ds.name}: the model has {k} outputs, the labels give 1 target "
                                        f"or {ds.n_classes} one-hot scores; pass --targets FILE")
    else:
        x = read_inputs(args.data, mf.net.input_shape, 10**9)
        y = None
        if args.targets is None:
            raise InvalidInputError("--targets FILE is required when DATA is a file")
    if y is None:
        from relulab.commands.landscape import read_matrix

        outs = 1 if args.loss == "cross_entropy" else mf.net.output_dim
        what = "class indices" if args.loss == "cross_entropy" else f"targets of the model's {outs} output(s)"
        y = read_matrix(args.targets, outs, "--targets", what)
        if args.loss == "cross_entropy":
            y = y.reshape(-1)
            if not bool(torch.all(y == y.round())) or bool((y < 0).any()) or bool((y >= mf.net.output_dim).any()):
                raise InvalidInputError(f"--targets {args.targets}: cross_entropy needs class indices 0..."
                                        f"{mf.net.output_dim - 1}")
            y = y.long()
        elif mf.net.output_dim == 1:
            y = y.reshape(-1, 1)
    if y.shape[0] != x.shape[0]:
        raise InvalidInputError(f"targets have {y.shape[0]} rows but DATA has {x.shape[0]} inputs")
    if args.loss == "cross_entropy" and not y.dtype.is_floating_point and bool((y >= mf.net.output_dim).any()):
        raise InvalidInputError(f"DATA {args.data} has labels beyond the model's {mf.net.output_dim} outputs")
    return x, y


def _check_memory(args, n_params: int) -> None:
    """Refuse before allocating: the Hutchinson probes (--trace-queries x P numbers) and the dense
    Hessian (P x P, when P <= --max-dense) must each fit in --memory."""
    from relulab.core.errors import ResourceLimitError

    budget = args.memory * 2**30
    for what, numbers, flag in (("the trace probes", args.trace_queries * n_params, "--trace-queries"),
                                ("the dense Hessian", n_params**2 if n_params <= args.max_dense else 0, "--max-dense")):
        if numbers * 8 > budget:
            raise ResourceLimitError(f"{what} of {n_params:,} parameters need {numbers * 8 / 2**30:.3g} GiB, more than "
                                     f"--memory {args.memory:g} GiB; lower {flag} or raise --memory")


def run_hessian(args, ctx: Context) -> Output:
    import torch

    from relulab.cli import load_model
    from relulab.core.errors import InvalidInputError
    from relulab.landscape.hessian import hessian_spectrum

    if args.top + args.bottom == 0:
        raise InvalidInputError("--top and --bottom cannot both be 0")
    mf = load_model(args)
    x, y = _data_and_targets(args, mf)
    module = mf.net.to_torch()
    _check_memory(args, sum(p.numel() for p in module.parameters()))
    with ctx.progress("hessian") as bar:
        bar(0, 1, stage="Lanczos, trace, density")
        res = hessian_spectrum(module, args.loss, x.reshape(x.shape[0], *mf.net.input_shape), y, top=args.top,
                               bottom=args.bottom, tol=args.tol, max_steps=args.max_steps,
                               trace_queries=args.trace_queries, density=not args.no_density,
                               max_dense=args.max_dense, batch_size=args.batch_size,
                               dtype=torch.float32 if args.float32 else torch.float64, seed=args.seed,
                               memory_budget=args.memory * 2**30, trace_time_limit=args.trace_time_limit,
                               **ctx.engine_progress(hessian_spectrum, bar))
        bar(1, 1, stage="done")
    data = {"model": args.model, "data": args.data, "targets": args.targets, "loss_function": args.loss,
            **res.to_dict(summary=True)}
    if args.plot:
        if res.density is None:
            raise InvalidInputError("--plot draws the spectral density: drop --no-density")
        data["plot"] = save_figure(lambda ax: res.plot(ax=ax), args.plot, (6, 4))
    return Output(data, res.table())
