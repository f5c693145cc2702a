"""``relulab init maxout --k K [--pool P]``: the maxout initialization constants of Tseran and Montufar."""

from __future__ import annotations

from relulab.cli import Context, Output, figure_file, int_arg, json_flag, number_list, save_figure

# the quadrature is accurate up to this many pieces per unit (K x pool)
MAX_PIECES = 10**9


def add_parser(sub) -> None:
    p = sub.add_parser("init", description="Initialization constants. 'maxout': the constants of rank-K maxout units "
                                   "(optionally followed by max-pooling) from expectations of Gaussian order "
                                   "statistics, by adaptive quadrature, and the recommended weight variance "
                                   "c / fan_in with c = 1 / E[(max of K standard normals)^2].")
    kinds = p.add_subparsers(dest="init_kind", metavar="KIND", required=True, parser_class=type(p))
    m = kinds.add_parser("maxout", help="constants of rank-K maxout units",
                         description="Constants of rank-K maxout units (Tseran and Montufar, ICML 2023).")
    m.add_argument("--k", type=number_list(integer=True, lo=1, hi=MAX_PIECES, ranges=True), required=True,
                   metavar="K", help="maxout rank: one integer >= 2, a list 2,3,5 or a range 2-10 (at most 1000)")
    m.add_argument("--pool", type=int_arg(1, 10**6), default=None, metavar="P",
                   help="size of a max-pooling window after the maxout layer (the unit then maximizes K*P pieces)")
    m.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="plot M, S, L against the rank to FILE")
    json_flag(m)
    m.set_defaults(handler=run_maxout)


def run_maxout(args, ctx: Context) -> Output:
    from relulab.init import constants_table

    ks = args.k
    if args.pool is not None and max(ks) * args.pool > MAX_PIECES:
        from relulab.core.errors import InvalidInputError

        raise InvalidInputError(f"--k {args.k} --pool {args.pool}: at most {MAX_PIECES:,} pieces per unit (K x pool)")
    table = constants_table(ks, pool=args.pool)
    data = {"constants": [r.to_dict() for r in table.rows],
            "definitions": {"M": "E[max_k N_k^2] over n = K*pool standard normals", "c": "1/M: Var(W) = c / fan_in",
                            "S": "E[min of n chi^2_1]", "L": "E[max of n chi^2_1]",
                            "c_lower": "1/S", "c_upper": "1/L", "mean": "E[max of n standard normals]"}}
    if args.plot:
        data["plot"] = save_figure(lambda ax: table.plot(ax=ax), args.plot, (5, 3.5))
    return Output(data, table.to_text())
