"""``relulab ntk MODEL DATA [--analytic]``: the empirical NTK of a model on data, its spectrum, and the
infinite-width kernel of the same architecture with the separation bounds for its smallest eigenvalue."""

from __future__ import annotations

from relulab.cli import (Context, Output, add_model_arguments, figure_file, float_arg, int_arg, json_flag, load_model,
                         output_file, save_figure)

# the largest built-in data set the command line generates (NAME:N)
MAX_BUILTIN_POINTS = 10**7


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ntk",
        description="Empirical neural tangent kernel Theta[i, j] = J(x_i) J(x_j)^T of MODEL on DATA (exact, "
                    "chunked within --memory), its eigenvalues and condition number, and the separation of "
                    "the data. --analytic adds the infinite-width NTK of the same fully connected "
                    "architecture on the normalized inputs, with the separation bounds on its smallest "
                    "eigenvalue.")
    add_model_arguments(p)
    p.add_argument("data", metavar="DATA",
                   help="inputs: a .npy array (n, *input shape), a .csv of numbers (one input per row), or a "
                        "built-in 2-D set as NAME or NAME:N (spirals, moons, circles, xor)")
    p.add_argument("--analytic", action="store_true",
                   help="also the infinite-width NTK of the same MLP architecture (depth and activation read "
                        "from the model), on the inputs scaled to the unit sphere")
    p.add_argument("--weight-var", type=float_arg(above=0), default=2.0, help="sigma_w^2 of the analytic kernel (default 2)")
    p.add_argument("--bias-var", type=float_arg(0), default=0.0, help="sigma_b^2 of the analytic kernel (default 0)")
    p.add_argument("--max-points", type=int_arg(1, 10**7), default=2048, metavar="N",
                   help="use the first N inputs (default 2048; the Gram matrix has N^2 entries per output pair)")
    p.add_argument("--memory", type=float_arg(above=0, hi=2**20), default=1.0, metavar="GIB",
                   help="memory budget of the empirical kernel in GiB (default 1): it bounds the Gram matrix "
                        "plus the Jacobian panels (or NTK-vector product chunks) it is computed from, which are "
                        "made smaller to fit; a Gram matrix alone larger than this is refused")
    p.add_argument("--trace-outputs", action="store_true",
                   help="sum the kernel over outputs (an n x n matrix) instead of the full (n o) x (n o) one")
    p.add_argument("--save", metavar="FILE.npy", default=None, type=output_file(".npy"), help="write the empirical Gram matrix to FILE.npy")
    p.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="plot the eigenvalues to FILE (PNG, PDF or SVG)")
    json_flag(p)
    p.set_defaults(handler=run)


def builtin_data(text: str):
    """The built-in data set that DATA names as NAME[:N] (N points, default 256, seed 0), or None."""
    from relulab import data as datasets
    from relulab.core.errors import InvalidInputError

    name, _, count = text.partition(":")
    if name not in datasets.DATASETS or text.endswith((".npy", ".csv")):
        return None
    try:
        n = int(count) if count else 256
    except ValueError:
        raise InvalidInputError(f"DATA {text!r}: expected NAME or NAME:N with an integer N") from None
    if not 1 <= n <= MAX_BUILTIN_POINTS:
        raise InvalidInputError(f"DATA {text!r}: N must be from 1 to {MAX_BUILTIN_POINTS:,}, got {count}")
    return datasets.make(name, n=n, seed=0)


def read_inputs(text: str, shape, max_points: int):
    """DATA as a float64 tensor (n, *shape): .npy (no pickle), .csv, or a built-in set NAME[:N]."""
    import numpy as np
    import torch

    from relulab import data as datasets
    from relulab.core.errors import InvalidInputError

    ds = builtin_data(text)
    if ds is not None:
        x = ds.x
    elif text.endswith((".npy", ".csv")):
        from relulab.cli import read_array

        x = torch.as_tensor(read_array(text, "DATA"))
        if x.numel() == 0:
            raise InvalidInputError(f"DATA {text}: the file holds no numbers")
    else:
        raise InvalidInputError(f"DATA {text!r}: expected a .npy or .csv file or one of "
                                f"{', '.join(datasets.DATASETS)} (optionally NAME:N)")
    numel = int(np.prod(shape))
    # rows of inputs (n, *shape), flattened rows (n, numel), n scalars, or one input: never a silent re-cut
    # of the numbers into rows of another length
    fits = (tuple(x.shape[1:]) == tuple(shape) or (x.dim() == 2 and x.shape[1] == numel)
            or (x.dim() == 1 and numel == 1) or tuple(x.shape) == tuple(shape))
    if x.dim() == 0 or x.numel() == 0 or not fits:
        raise InvalidInputError(f"DATA {text}: an array of shape {'x'.join(map(str, x.shape))} does not hold "
                                f"inputs of shape {'x'.join(map(str, shape))} (expected n x "
                                f"{'x'.join(map(str, shape))}{'' if len(shape) == 1 else f' or n x {numel}'})")
    x = x.reshape(-1, *shape)
    if not bool(torch.isfinite(x).all()):
        raise InvalidInputError(f"DATA {text}: contains non-finite values")
    if max_points < 1:
        raise InvalidInputError(f"--max-points must be positive, got {max_points}")
    return x[:max_points]


def mlp_architecture(net):
    """(depth, activation, slope, k) of a plain fully connected PLNet, or an error naming what differs."""
    from relulab.core.recognize import architecture

    arch = architecture(net).require_mlp("--analytic")
    p = arch.param
    return (arch.depth, arch.activation or "relu", float(p) if arch.activation == "leaky_relu" else 0.01,
            int(p) if arch.activation == "maxout" else 2)


def run(args, ctx: Context) -> Output:
    import numpy as np
    import torch

    from relulab.core.errors import InvalidInputError
    from relulab.kernels import empirical_ntk, ntk_spectrum, separation

    mf = load_model(args)
    net = mf.net
    x = read_inputs(args.data, net.input_shape, args.max_points).to(dtype=net.dtype, device=net.device)
    side = x.shape[0] * (1 if args.trace_outputs else net.output_dim)
    gram = side * side * x.element_size()
    if gram > args.memory * 2**30:
        from relulab.core.errors import ResourceLimitError

        raise ResourceLimitError(f"the {side:,} x {side:,} NTK Gram matrix needs {gram / 2**30:.3g} GiB, more than "
                                 f"--memory {args.memory:g} GiB; use fewer points (--max-points), --trace-outputs or "
                                 "a larger --memory")
    with ctx.progress("ntk") as bar:
        bar(0, 2 if args.analytic else 1, stage="empirical kernel")
        res = empirical_ntk(net, x, memory_budget=int(args.memory * 2**30), trace_outputs=args.trace_outputs,
                            **ctx.engine_progress(empirical_ntk, bar))
        spec = ntk_spectrum(res)
        flat = x.reshape(x.shape[0], -1)
        sphere = flat / flat.norm(dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)
        sep = separation(sphere)
        data = {"data": args.data, "n": int(x.shape[0]), "empirical": res.to_dict(summary=True),
                "spectrum": spec.to_dict(summary=True), "separation_of_normalized_inputs": sep.to_dict(summary=True)}
        analytic = None
        if args.analytic:
            bar(1, 2, stage="analytic kernel")
            from relulab.kernels import analytic_ntk, ntk_eigenvalue_bounds

            depth, act, slope, k = mlp_architecture(net)
            _, K = analytic_ntk(sphere, depth=depth, activation=act, slope=slope, k=k,
                                weight_var=args.weight_var, bias_var=args.bias_var)
            analytic = ntk_spectrum(K)
            bounds = ntk_eigenvalue_bounds(sphere, depth=depth, activation=act, slope=slope, k=k,
                                           weight_var=args.weight_var, bias_var=args.bias_var)
            data["analytic"] = {"depth": depth, "activation": act, "weight_var": args.weight_var,
                                "bias_var": args.bias_var, "inputs": "normalized to the unit sphere",
                                "spectrum": analytic.to_dict(summary=True), "bounds": bounds.to_dict(summary=True)}
        bar(1, 1, stage="done")
    if args.save:
        from relulab.core.files import atomic_write

        try:
            with atomic_write(args.save, "wb") as f:
                np.save(f, res.kernel.detach().cpu().numpy(), allow_pickle=False)
        except OSError as e:
            raise InvalidInputError(f"--save {args.save}: {e.strerror or e}") from None
        data["saved"] = args.save
    if args.plot:
        data["plot"] = save_figure(lambda ax: _draw_spectra(ax, spec, analytic), args.plot, (5.5, 3.8))
    return Output(data, _render(data, spec, analytic))


def _draw_spectra(ax, spec, analytic) -> None:
    spec.plot(ax=ax, label="empirical (this network)")
    if analytic is not None:
        analytic.plot(ax=ax, label="infinite width (normalized inputs)")
        ax.set_title("NTK spectra")
    ax.legend(fontsize=8)


def _render(data, spec, analytic):
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    e = data["empirical"]
    t.add_row("data", f"{data['data']} ({data['n']} inputs)")
    t.add_row("empirical NTK", f"{spec.size} x {spec.size} ({e['method']}, {e['n_params']:,} parameters, "
                               f"{e['seconds']:.2f} s)")
    from relulab.report import spectrum_words

    smallest, condition = spectrum_words(spec)
    t.add_row("eigenvalues", f"min {smallest}, max {spec.lambda_max:.6g}, condition {condition}, "
                             f"effective rank {spec.effective_rank:.3g}")
    s = data["separation_of_normalized_inputs"]
    t.add_row("separation", f"delta = {s.get('delta', float('nan')):.4g} (inputs normalized to the sphere)")
    if analytic is not None:
        a = data["analytic"]
        b = a["bounds"]
        t.add_row("infinite width", f"depth {a['depth']} {a['activation']}: min {analytic.lambda_min:.6g}, "
                                    f"max {analytic.lambda_max:.6g}")
        t.add_row("bounds", f"{b['lower_bound']:.4g} <= lambda_min <= {b['upper_bound']:.4g}"
                            f" ({'holds' if b.get('holds') else 'VIOLATED'})")
    for key in ("saved", "plot"):
        if key in data:
            t.add_row("file", data[key])
    return t
