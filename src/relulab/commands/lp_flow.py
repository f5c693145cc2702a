"""``relulab lpflow``: the Fisher-Rao gradient flow of a linear program (or a small MDP's state-action natural
policy gradient), its entropic identity and its linear rate."""

from __future__ import annotations

from relulab.cli import Context, Output, figure_file, float_arg, int_arg, json_flag, save_figure


def add_parser(sub) -> None:
    p = sub.add_parser("lpflow", description="Fisher-Rao gradient flow of max c^T x over {x >= 0, A x = b}: measured "
                                              "linear rate against Delta from the LP's optimal vertex (smallest "
                                              "|reduced cost|), the entropic identity x(t) = argmax t c^T x - "
                                              "KL(x | x0), and the bound gap <= KL(x*|x0)/t. --mdp / --random-mdp: "
                                              "the state-action natural policy gradient of an MDP.")
    p.add_argument("--A", dest="A", metavar="FILE", default=None, help="constraint matrix A (.npy or .csv)")
    p.add_argument("--b", dest="b", metavar="FILE", default=None, help="right-hand side b")
    p.add_argument("--c", dest="c", metavar="FILE", default=None, help="objective c (maximized)")
    p.add_argument("--random", type=str, default=None, metavar="M,N", help="a random bounded LP with M constraints, "
                                                                           "N variables (default 2,6)")
    p.add_argument("--mdp", metavar="P", default=None, help="transition table P[s, a, s'] (.npy, shape (S, A, S))")
    p.add_argument("--rewards", metavar="R", default=None, help="rewards r[s, a] (.npy or .csv)")
    p.add_argument("--random-mdp", type=str, default=None, metavar="S,A", help="a random MDP with S states, A actions")
    p.add_argument("--gamma", type=float_arg(above=0, hi=0.999999), default=0.9, metavar="G", help="discount (0.9)")
    p.add_argument("--t-max", type=float_arg(above=0), default=None, metavar="T", help="flow time (default 60 / Delta)")
    p.add_argument("--cvxpy", action="store_true", help="also solve the entropic program with cvxpy (convex extra)")
    p.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=0, metavar="S")
    p.add_argument("--plot", metavar="FILE", default=None, type=figure_file, help="write the suboptimality curve")
    json_flag(p)
    p.set_defaults(handler=run)


def _pair(text: str, flag: str) -> tuple[int, int]:
    from relulab.core.errors import InvalidInputError

    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"{flag}: expected two integers, got {text!r}") from None
    if not (1 <= a <= 200 and 1 <= b <= 200):
        raise InvalidInputError(f"{flag}: sizes must be in [1, 200], got {text!r}")
    return a, b


def run(args, ctx: Context) -> Output:
    import numpy as np

    from relulab.core.errors import InvalidInputError
    from relulab.data import load_array
    from relulab.lp_flows import entropic_solution, fisher_rao_flow, random_mdp, state_action_npg

    files = [args.A, args.b, args.c]
    if args.mdp or args.random_mdp:
        if args.mdp:
            if not args.rewards:
                raise InvalidInputError("--mdp needs --rewards")
            P, r = load_array(args.mdp), load_array(args.rewards)
        else:
            S, A = _pair(args.random_mdp, "--random-mdp")
            P, r = random_mdp(S, A, seed=args.seed)
        res = state_action_npg(P, r, args.gamma, t_max=args.t_max)
        f = res.flow
        data = {"npg": res.to_dict(summary=True), "flow": f.to_dict(summary=True)}
        lines = [f"state-action natural policy gradient, {res.states} states, {res.actions} actions, gamma "
                 f"{res.gamma:g}",
                 f"  return at the end {res.returns[-1]:.10g}; optimal (value iteration) {res.optimal_return:.10g}; "
                 f"LP {res.lp_return:.10g}",
                 f"  largest policy difference to the greedy optimal policy {res.policy_error:.2e}"]
    else:
        if any(files) and not all(files):
            raise InvalidInputError("--A, --b and --c go together")
        if all(files):
            A, b, c = (load_array(x) for x in files)
        else:
            m, n = _pair(args.random or "2,6", "--random")
            rng = np.random.default_rng(args.seed)
            A = rng.uniform(0.1, 1.0, (m, n))
            b = A @ rng.uniform(0.5, 1.0, n)
            c = rng.standard_normal(n)
        f = fisher_rao_flow(A, b.reshape(-1), c.reshape(-1), t_max=args.t_max)
        data = {"flow": f.to_dict(summary=True)}
        lines = [f"Fisher-Rao flow of an LP with {A.shape[1]} variables: optimum {f.optimum:.10g}"]
        if args.cvxpy:
            t = float(f.times[len(f.times) // 4])
            i = len(f.times) // 4
            xc = entropic_solution(A, b.reshape(-1), c.reshape(-1), t, method="cvxpy")
            err = float(np.abs(xc - f.x[i]).max())
            data["cvxpy_check"] = {"t": t, "max_abs_difference": err}
            lines.append(f"  cvxpy entropic solution at t = {t:.4g}: largest difference to the flow {err:.2e}")
    lines += [f"  measured rate {f.measured_rate:.8g}; Delta from the LP geometry "
              f"{'n/a (' + f.rate_reason + ')' if f.predicted_rate is None else format(f.predicted_rate, '.8g')}",
              f"  entropic identity: largest |x_flow - x_entropic| = {f.entropic_error:.2e}; gap <= KL(x*|x0)/t: "
              f"{f.kl_bound_holds}; constraint residual {f.constraint_error:.2e}"]
    if args.plot:
        data["plot"] = save_figure(lambda ax: f.plot(ax=ax), args.plot, (5, 4))
    return Output(data, "\n".join(lines))
