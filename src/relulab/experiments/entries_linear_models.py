"""Registry entries on :mod:`relulab.linear_models`: the Dropout convergence rate against its Hessian bound."""

from __future__ import annotations

from dataclasses import dataclass

from relulab.experiments.registry import Summary, experiment


@dataclass(frozen=True)
class DropoutRateConfig:
    width: int = 3
    keep: float = 0.5
    kind: str = "dropout"
    samples: int = 20
    d: int = 3
    r: int = 2
    perturbation: float = 0.1
    seed: int = 0


def _summarize_dropout(rows: list[dict]) -> Summary:
    def draw(ax):
        ax.scatter([r["rate_bound"] for r in rows], [r["measured_rate"] for r in rows])
        hi = max(max(r["rate_bound"] for r in rows), max(r["measured_rate"] for r in rows)) * 1.1
        ax.plot([0, hi], [0, hi], "k--", lw=0.8)
        ax.set_xlabel("Hessian rate bound 2 mu")
        ax.set_ylabel("measured rate of the loss gap")

    worst = max(abs(r["measured_rate"] / r["rate_bound"] - 1) for r in rows)
    exact = [r["mask_check_error"] for r in rows if r["mask_reference"] == "all masks"]
    sampled = [r["mask_check_error"] for r in rows if r["mask_reference"] != "all masks"]
    mask = max(exact, default=0.0)
    sig = max(sampled, default=0.0)
    return Summary(figures=[("measured rate against the bound", draw)],
                   comparison=[("gradient flow rate near a minimizer", "asymptotically the Hessian bound 2 mu",
                                f"largest |measured / bound - 1| = {worst:.2e} over {len(rows)} runs"),
                               ("closed-form expected loss", "equals the average over all masks",
                                f"largest relative difference {mask:.1e} ({len(exact)} enumerated); largest Monte "
                                f"Carlo deviation {sig:.2f} standard errors ({len(sampled)} sampled)")],
                   verdict="agrees" if worst < 0.05 and mask < 1e-10 and sig < 5 else "differs")


@experiment(
    "senen-cerda-dropout-rate",
    title="Convergence rate of Dropout / DropConnect gradient flows on shallow linear networks",
    paper="Senen-Cerda & Sanders, Asymptotic convergence rate of Dropout on shallow linear neural networks "
          "(SIGMETRICS 2022)",
    claim="Near a global minimizer the gradient flow of the expected Dropout (DropConnect) objective converges "
          "exponentially, at a rate set by the Hessian's smallest positive eigenvalue, which depends on the data, "
          "the dropout probability and the width.",
    full={"width": [2, 3, 5], "keep": [0.3, 0.5, 0.8], "kind": ["dropout", "dropconnect"]},
    quick={"width": [3], "keep": [0.5], "kind": ["dropout"]},
    summarize=_summarize_dropout,
)
def senen_cerda_dropout_rate(cfg: DropoutRateConfig) -> list[dict]:
    """Random data (whitened for DropConnect), the closed-form minimum checked against all masks (or 20000
    Monte Carlo masks when there are too many), and the flow's measured rate against 2 mu."""
    import numpy as np

    from relulab.linear_models import dropout_flow, enumerate_masks, expected_loss, monte_carlo_loss, whiten

    rng = np.random.default_rng(cfg.seed)
    X = rng.standard_normal((cfg.samples, cfg.d))
    Y = X @ rng.standard_normal((cfg.d, cfg.r)) + 0.3 * rng.standard_normal((cfg.samples, cfg.r))
    if cfg.kind == "dropconnect":
        X = whiten(X)
    f = dropout_flow(X, Y, cfg.width, keep=cfg.keep, kind=cfg.kind, perturbation=cfg.perturbation, seed=cfg.seed)
    W1 = rng.standard_normal((cfg.width, cfg.d))
    W2 = rng.standard_normal((cfg.r, cfg.width))
    closed = expected_loss(W1, W2, X, Y, keep=cfg.keep, kind=cfg.kind)
    bits = cfg.width if cfg.kind == "dropout" else cfg.width * (cfg.d + cfg.r)
    if bits <= 14:
        ref, how = enumerate_masks(W1, W2, X, Y, keep=cfg.keep, kind=cfg.kind), "all masks"
        err = abs(closed - ref) / abs(ref)
    else:
        mc = monte_carlo_loss(W1, W2, X, Y, keep=cfg.keep, kind=cfg.kind, seed=cfg.seed)
        ref, how = mc.mean, "Monte Carlo"
        err = abs(closed - ref) / mc.stderr  # in standard errors
    return [{"minimum": f.minimum, "measured_rate": f.measured_rate, "rate_bound": f.rate_bound, "mu": f.mu,
             "null_dimension": f.null_dimension, "final_gap": f.final_gap,
             "mask_check_error": err, "mask_reference": how}]


@dataclass(frozen=True)
class BuresConfig:
    n: int = 5
    rank: int = 2
    tau: float = 0.0
    seed: int = 0


def _summarize_bures(rows: list[dict]) -> Summary:
    mism = sum(r["index_mismatches"] for r in rows)
    err = max(r["value_error"] for r in rows)
    flows = [r for r in rows if r["flow_started_below_second"]]
    return Summary(comparison=[("Morse index of each eigen-subset critical point",
                                "#{(i in I, j not in I): lambda_j > lambda_i}; only the top-k subset is a minimum",
                                f"{mism} mismatches against finite-difference Hessians over "
                                f"{sum(r['critical_points'] for r in rows)} points"),
                               ("critical values", "sum of the eigenvalues left out (perturbed: + 2 tau - tau^2/lambda)",
                                f"largest error {err:.1e}"),
                               ("flow from below the second critical value", "reaches the global minimum",
                                f"{sum(r['flow_reached_global'] for r in flows)} of {len(flows)}")],
                   verdict="agrees" if mism == 0 and err < 1e-9 and all(r["flow_reached_global"] for r in flows)
                   else "differs")


@experiment(
    "brechet-bures-critical-points",
    title="Critical points of Bures-Wasserstein deep linear generators",
    paper="Brechet, Papagiannouli, An & Montufar, Critical points and convergence analysis of generative deep linear "
          "networks trained with Bures-Wasserstein loss (ICML 2023)",
    claim="The critical points of the Bures-Wasserstein loss over rank-bounded W W^T are the eigen-subset "
          "covariances of the target; only the top subset is a minimizer, the others are saddles; the smooth "
          "perturbed loss has the analogous subsets of every size, and gradient flow started below the second "
          "critical value converges to the global minimum.",
    full={"n": [3, 4, 5], "rank": [1, 2, 3], "tau": [0.0, 0.05], "seed": [0, 1]},
    quick={"n": [4], "rank": [2], "tau": [0.0, 0.05]},
    summarize=_summarize_bures,
)
def brechet_bures_critical_points(cfg: BuresConfig) -> list[dict]:
    """Random target covariance (eigenvalues 1..n times a random factor, random eigenvectors); every critical
    point checked by a finite-difference Hessian of the gradient; one flow from a point below the second
    critical value."""
    import numpy as np

    from relulab.linear_models import bw_critical_points, bw_gradient, bw_loss, bw_train

    if cfg.rank > cfg.n:
        return []
    rng = np.random.default_rng(cfg.seed)
    lam = np.arange(cfg.n, 0, -1) * rng.uniform(0.5, 1.5)
    Q = np.linalg.qr(rng.standard_normal((cfg.n, cfg.n)))[0]
    S0 = (Q * lam) @ Q.T
    cp = bw_critical_points(S0, cfg.rank, tau=cfg.tau)
    mism, err = 0, 0.0
    for j in range(len(cp.subsets)):
        W = cp.point(j)
        err = max(err, abs(bw_loss(W, S0, tau=cfg.tau) - cp.values[j]))
        n, m = W.shape
        H = np.empty((n * m, n * m))
        for i in range(n * m):
            E = np.zeros(n * m)
            E[i] = 1e-6
            E = E.reshape(n, m)
            H[:, i] = ((bw_gradient(W + E, S0, tau=cfg.tau) - bw_gradient(W - E, S0, tau=cfg.tau)) / 2e-6).ravel()
        ev = np.linalg.eigvalsh(0.5 * (H + H.T))
        mism += int((ev < -1e-5).sum() != cp.indices[j])
    tau = cfg.tau if cfg.tau > 0 else 1e-3
    start = bw_critical_points(S0, cfg.rank, tau=tau)
    W0 = start.point(0) + 0.02 * rng.standard_normal(start.point(0).shape)
    tr = bw_train(S0, (cfg.rank, cfg.n), tau=tau, init=[W0], t_max=80.0, points=40)
    return [{"critical_points": len(cp.subsets), "global_value": cp.global_value, "second_value": cp.second_value,
             "index_mismatches": mism, "value_error": err, "flow_started_below_second": tr.started_below_second,
             "flow_reached_global": tr.reached_global, "flow_value_error": tr.value_error,
             "balance_drift": tr.balance_drift}]


@dataclass(frozen=True)
class FisherRaoConfig:
    problem: str = "lp"
    constraints: int = 2
    variables: int = 6
    states: int = 3
    actions: int = 2
    gamma: float = 0.9
    seed: int = 0


def _summarize_fisher_rao(rows: list[dict]) -> Summary:
    def draw(ax):
        ax.scatter([r["predicted_rate"] for r in rows], [r["measured_rate"] for r in rows])
        hi = max(r["predicted_rate"] for r in rows) * 1.1
        ax.plot([0, hi], [0, hi], "k--", lw=0.8)
        ax.set_xlabel("Delta from the LP geometry")
        ax.set_ylabel("measured rate of the flow")

    worst = max(abs(r["measured_rate"] / r["predicted_rate"] - 1) for r in rows)
    ent = max(r["entropic_error"] for r in rows)
    return Summary(figures=[("measured against predicted rate", draw)],
                   comparison=[("suboptimality of the Fisher-Rao flow", "decays linearly (exponentially in t)",
                                f"|measured / Delta - 1| <= {worst:.1e} over {len(rows)} problems"),
                               ("flow = entropic-regularization path", "x(t) = argmax t c^T x - KL(x | x0)",
                                f"largest difference {ent:.1e}"),
                               ("KL(x*|x0)/t bound", "holds for every t",
                                f"{sum(r['kl_bound_holds'] for r in rows)} of {len(rows)}")],
                   verdict="agrees" if worst < 1e-2 and ent < 1e-6 and all(r["kl_bound_holds"] for r in rows)
                   else "differs")


@experiment(
    "muller-fisher-rao-rate",
    title="Linear convergence of Fisher-Rao gradient flows of linear programs and state-action NPG",
    paper="Muller, Cayci & Montufar, Fisher-Rao gradient flows of linear programs and state-action natural policy "
          "gradients (2024)",
    claim="The Fisher-Rao gradient flow of a linear program is the entropic-regularization path and converges "
          "linearly, at a rate given by the LP's geometry; state-action natural policy gradient is this flow on the "
          "occupancy polytope of an MDP.",
    full={"problem": ["lp", "mdp"], "seed": list(range(5)), "gamma": [0.5, 0.9]},
    quick={"problem": ["lp", "mdp"], "seed": [0]},
    summarize=_summarize_fisher_rao,
)
def muller_fisher_rao_rate(cfg: FisherRaoConfig) -> list[dict]:
    """A random bounded LP (uniform positive A) or a random MDP (Dirichlet transitions): the flow's rate
    against Delta, the entropic identity at four times, and (MDP) the limit against value iteration."""
    import numpy as np

    from relulab.lp_flows import fisher_rao_flow, random_mdp, state_action_npg

    row = {}
    if cfg.problem == "lp":
        rng = np.random.default_rng(cfg.seed)
        A = rng.uniform(0.1, 1.0, (cfg.constraints, cfg.variables))
        b = A @ rng.uniform(0.5, 1.0, cfg.variables)
        f = fisher_rao_flow(A, b, rng.standard_normal(cfg.variables), points=120, check_entropic=4)
    else:
        P, r = random_mdp(cfg.states, cfg.actions, seed=cfg.seed)
        res = state_action_npg(P, r, cfg.gamma, points=120)
        f = res.flow
        row = {"return_error": abs(res.returns[-1] - res.optimal_return), "policy_error": res.policy_error}
    return [{"measured_rate": f.measured_rate, "predicted_rate": f.predicted_rate, "entropic_error": f.entropic_error,
             "kl_bound_holds": f.kl_bound_holds, "constraint_error": f.constraint_error, **row}]


@dataclass(frozen=True)
class DegeneracyConfig:
    example: str = "redundant"
    n: float = 16.0


def _summarize_degeneracy(rows: list[dict]) -> Summary:
    def draw(ax):
        for name in sorted({r["example"] for r in rows}):
            sub = sorted((r for r in rows if r["example"] == name), key=lambda r: r["n"])
            ax.loglog([r["n"] for r in sub], [max(r["symmetry_distance"], 1e-16) for r in sub], "o-", label=name)
        ax.set_xlabel("n")
        ax.set_ylabel("distance modulo symmetries")
        ax.legend(fontsize=8)

    def trend(name):
        sub = sorted((r for r in rows if r["example"] == name), key=lambda r: r["n"])
        return sub[0]["symmetry_distance"], sub[-1]["symmetry_distance"], max(r["sup_distance"] for r in sub)

    lines = []
    for name in ("redundant", "dead"):
        if any(r["example"] == name for r in rows):
            a, b, s = trend(name)
            lines.append((f"{name}: realizations on [-1, 1] (sup distance)",
                          "equal / converging while the parameters do not, even modulo symmetries",
                          f"sup distance <= {s:.1e}; distance modulo symmetries {a:.3g} -> {b:.3g}"))
    return Summary(figures=[("distance modulo symmetries against n", draw)], comparison=lines, verdict=None)


@experiment(
    "berner-degenerate-parameterization",
    title="Degenerate parameterizations of ReLU networks: realizations converge, parameters do not",
    paper="Berner, Elbrachter, Grohs & Jentzen, How degenerate is the parametrization of neural networks with the "
          "ReLU activation function? (NeurIPS 2019)",
    claim="The realization map of ReLU networks is not inverse stable: realizations can converge (even be equal) "
          "while the parameters diverge, also modulo permutations and positive rescalings; and it is not "
          "continuous into W^{1,inf}.",
    full={"example": ["unbalanced", "redundant", "dead", "w1inf"], "n": [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0]},
    quick={"example": ["redundant", "dead"], "n": [1.0, 64.0]},
    summarize=_summarize_degeneracy,
)
def berner_degenerate_parameterization(cfg: DegeneracyConfig) -> list[dict]:
    """One term theta_n of an example sequence of :func:`relulab.parameterization.degeneracy_examples`."""
    from relulab.parameterization import degeneracy_examples

    row = dict(degeneracy_examples(ns=(cfg.n,), names=(cfg.example,)).rows[0])
    row.pop("example")
    row.pop("n")
    return [row]
