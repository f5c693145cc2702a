"""``relulab tropical MODEL [--reduce] [--exact] [--json]``: a network as tropical rational functions p - q."""

from __future__ import annotations

from relulab.cli import Context, Output, add_model_arguments, json_flag, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("tropical", help="a network as tropical rational functions p - q (max-plus polynomials)",
                       description="Write every output of MODEL as p - q with p, q max-plus polynomials (exponent "
                                   "vectors and constants), checked against the network at random points. "
                                   "--reduce drops every monomial that is nowhere strictly maximal (certified LPs) "
                                   "and counts the linear regions of p, q and f = p - q over all of R^d.")
    add_model_arguments(p)
    p.add_argument("--reduce", action="store_true", help="reduce p and q and count regions from the tropical data")
    p.add_argument("--float", dest="float64", action="store_true",
                   help="float64 arithmetic (default: exact rationals, each float weight as the binary rational it is)")
    p.add_argument("--max-monomials", type=int, default=100_000, metavar="N",
                   help="budget per polynomial (default 100000); beyond it the result is marked incomplete")
    p.add_argument("--full", action="store_true", help="with --json: all exponent vectors and constants")
    json_flag(p)
    p.set_defaults(handler=run)


def run(args, ctx: Context) -> Output:
    import numpy as np
    import torch

    from relulab.core.errors import InvalidInputError
    from relulab.tropical import count_regions, from_network

    if args.max_monomials < 1:
        raise InvalidInputError(f"--max-monomials must be a positive integer, got {args.max_monomials}")
    net = load_model(args).net
    T = from_network(net, exact=not args.float64, reduce=args.reduce, max_monomials=args.max_monomials)
    data = T.to_dict(summary=not args.full)
    lines = [f"tropical rational representation ({'exact rationals' if T.exact else 'float64'}"
             f"{', reduced' if T.reduced else ''}) in {T.seconds:.2f} s"]
    if not T.complete:
        lines.append(f"INCOMPLETE: {T.stopped_at}")
        return Output(data, "\n".join(lines))
    X = np.random.default_rng(0).standard_normal((64, net.input_dim))
    y = net(torch.tensor(X)).reshape(64, -1).numpy()
    vals = np.stack([f.p.to_float()(X) - f.q.to_float()(X) for f in T.functions], -1)
    err = float(np.abs(vals - y).max())
    data["max_abs_error_at_64_points"] = err
    lines.append(f"|p - q - net| <= {err:.2e} at 64 random points")
    regions = []
    for o, f in enumerate(T.functions):
        row = {"output": o, "monomials_p": f.p.size, "monomials_q": f.q.size}
        if args.reduce and net.input_dim <= 4 and T.exact:
            c = count_regions(f)
            row.update(regions_p=c.regions_p, regions_q=c.regions_q, cells=c.cells, linear_regions=c.linear_count,
                       boundary_cells=c.boundary_cells, certified=c.certified)
        regions.append(row)
        lines.append("output {output}: p has {monomials_p} monomials, q has {monomials_q}".format(**row)
                     + ("" if "linear_regions" not in row else
                        f"; linear regions: p {row['regions_p']}, q {row['regions_q']}, f {row['linear_regions']} "
                        f"({row['cells']} cells of the refinement, {row['boundary_cells']} met by p = q; "
                        f"{'every decision certified exactly' if row['certified'] else 'NOT certified'})"))
    if args.reduce and not T.exact:
        lines.append("region counts need exact arithmetic (drop --float)")
    data["outputs"] = regions
    return Output(data, "\n".join(lines))
