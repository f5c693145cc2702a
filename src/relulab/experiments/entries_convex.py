"""Registry entries on :mod:`relulab.convex`: the convex optimum of two-layer ReLU networks against
random-start gradient descent."""

from __future__ import annotations

from dataclasses import dataclass

from relulab.experiments.registry import Summary, experiment


@dataclass(frozen=True)
class ConvexGDConfig:
    n: int = 12
    d: int = 2
    beta: float = 0.1
    bn: bool = False
    runs: int = 32
    steps: int = 5000
    width: int = 0
    seed: int = 0
    data: str = "gaussian"   # or "moons": relulab's two moons, targets +-1


def _summarize(rows: list[dict]) -> Summary:
    def draw(ax):
        for bn in sorted({r["bn"] for r in rows}):
            sub = [r for r in rows if r["bn"] == bn]
            ax.scatter([r["optimum"] for r in sub], [r["best_gd"] for r in sub],
                       label="batch-normalized" if bn else "plain")
        lo = min(r["optimum"] for r in rows)
        hi = max(r["best_gd"] for r in rows)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_xlabel("convex optimum (certified)")
        ax.set_ylabel("best of the GD runs")
        ax.legend(fontsize=8)

    below = sum(r["below_bound"] for r in rows)
    gaps = max(r["gap"] / max(abs(r["optimum"]), 1e-12) for r in rows)
    reached = sum(r["reached"] > 0 for r in rows)
    return Summary(
        figures=[("best gradient-descent run against the convex optimum", draw)],
        comparison=[("GD runs below the certified lower bound", "none (weak duality)", str(below)),
                     ("largest relative duality gap of the rebuilt optimal network", "0 (strong duality)",
                      f"{gaps:.2e}"),
                     ("problems where some GD run reaches the optimum (rel. 1e-3)", "GD may stall",
                      f"{reached} of {len(rows)}"),
                     ("best GD run above the optimum, relative (largest over problems)", ">= 0",
                      f"{max((r['best_gd'] - r['optimum']) / max(abs(r['optimum']), 1e-12) for r in rows):.3g}")],
        verdict=("holds: no run below the bound, gap ~0" if below == 0 and gaps < 1e-5 else "does not hold"))


@experiment(
    "pilanci-ergen-convex",
    title="Two-layer ReLU networks as convex programs: certified optimum against gradient descent",
    paper="Pilanci & Ergen, Neural Networks are Convex Regularizers (ICML 2020); Ergen, Sahiner, Ozturkler, "
          "Pauly, Mardani & Pilanci, Demystifying Batch Normalization in ReLU Networks (ICLR 2022)",
    claim="Weight-decay-regularized two-layer ReLU networks (also with batch normalization) are exactly convex "
          "group-lasso programs over the data's activation patterns: the optimum is certified by a zero duality "
          "gap, no gradient-descent run goes below it, and the best runs reach it when GD does not stall.",
    full={"n": [8, 16, 24], "d": [1, 2], "bn": [False, True], "seed": [0, 1, 2], "runs": [32], "steps": [5000]},
    quick={"n": [6], "d": [2], "bn": [False, True], "runs": [8], "steps": [300]},
    summarize=_summarize,
    requires=("cvxpy",),
)
def pilanci_ergen_convex(cfg: ConvexGDConfig) -> list[dict]:
    """:func:`relulab.convex.compare_gd` on Gaussian inputs and targets (seeded)."""
    import numpy as np

    from relulab.convex import compare_gd

    if cfg.data == "moons":
        from relulab import data

        ds = data.make("moons", n=cfg.n, seed=cfg.seed)
        X, y = ds.x.numpy().astype(np.float64), 2.0 * ds.y.numpy().astype(np.float64) - 1
    else:
        rng = np.random.default_rng(cfg.seed)
        X = rng.normal(size=(cfg.n, cfg.d))
        y = rng.normal(size=cfg.n)
    c = compare_gd(X, y, cfg.beta, bn=cfg.bn, runs=cfg.runs, steps=cfg.steps, width=cfg.width or None,
                   seed=cfg.seed)
    s = c.solution
    return [{"optimum": s.objective, "lower_bound": s.lower_bound, "gap": s.gap, "neurons": s.neurons,
             "patterns": s.patterns_used, "complete": s.complete, "best_gd": c.best_gd, "reached": c.reached,
             "stalled": c.stalled, "below_bound": c.below_bound, "solve_seconds": s.seconds}]


@experiment(
    "pilanci-ergen-moons",
    title="Certified convex optimum against gradient descent on two moons",
    paper="Pilanci & Ergen, Neural Networks are Convex Regularizers (ICML 2020); Ergen, Sahiner, Ozturkler, "
          "Pauly, Mardani & Pilanci, Demystifying Batch Normalization in ReLU Networks (ICLR 2022)",
    claim="On a data set (relulab's two moons, targets +-1, beta = 0.1) the convex program gives the certified "
          "global optimum; random-start gradient descent ends at or above it, and the gap of its best run is "
          "measured.",
    full={"n": [20], "data": ["moons"], "bn": [False, True], "runs": [16], "steps": [3000]},
    quick={"n": [12], "data": ["moons"], "bn": [False], "runs": [8], "steps": [400]},
    summarize=_summarize,
    requires=("cvxpy",),
)
def pilanci_ergen_moons(cfg: ConvexGDConfig) -> list[dict]:
    """:func:`pilanci_ergen_convex` on two moons (the data set of the closing figures)."""
    return pilanci_ergen_convex(cfg)


@dataclass(frozen=True)
class VectorConfig:
    n: int = 6
    d: int = 1
    k: int = 2
    beta: float = 0.1
    seed: int = 0


def _summarize_vector(rows: list[dict]) -> Summary:
    def draw(ax):
        ax.scatter([r["relaxation"] for r in rows], [r["objective"] for r in rows], label="rebuilt network")
        ax.scatter([r["relaxation"] for r in rows], [r["lower_bound"] for r in rows], marker="x",
                   label="certified bound")
        lo, hi = min(r["lower_bound"] for r in rows), max(r["objective"] for r in rows)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_xlabel("relaxation value")
        ax.set_ylabel("objective")
        ax.legend(fontsize=8)

    bad = sum(r["lower_bound"] > r["objective"] + 1e-9 * abs(r["objective"]) for r in rows)
    tight = sum(r["relative_gap"] < 1e-6 for r in rows)
    return Summary(
        figures=[("rebuilt network and certified bound against the relaxation", draw)],
        comparison=[("certified bound above the rebuilt network's objective", "never", str(bad)),
                    ("problems where the relaxation is tight (relative gap < 1e-6)", "exact in some classes",
                     f"{tight} of {len(rows)}"),
                    ("largest relative gap", "-", f"{max(r['relative_gap'] for r in rows):.3g}")],
        verdict="holds: every bound below its network" if bad == 0 else "does not hold")


@experiment(
    "sahiner-vector-output-relaxation",
    title="Vector-output two-layer ReLU networks: a convex relaxation, the rebuilt network and its certified gap",
    paper="Sahiner, Ergen, Pauly & Pilanci, Vector-output ReLU Neural Network Problems are Copositive Programs "
          "(ICLR 2021)",
    claim="The weight-decay problem of a vector-output two-layer ReLU network is a copositive program; its doubly "
          "nonnegative relaxation over the activation patterns gives a network and a certified gap, zero when the "
          "relaxation is tight.",
    full={"n": [6, 8], "d": [1, 2], "k": [2, 3], "seed": [0, 1]},
    quick={"n": [6], "d": [1], "k": [2]},
    summarize=_summarize_vector,
    requires=("cvxpy",),
)
def sahiner_vector_output(cfg: VectorConfig) -> list[dict]:
    """:func:`relulab.convex.solve` on Gaussian inputs and (n, k) targets (seeded)."""
    import numpy as np

    from relulab.convex import solve

    rng = np.random.default_rng(cfg.seed)
    X, Y = rng.normal(size=(cfg.n, cfg.d)), rng.normal(size=(cfg.n, cfg.k))
    s = solve(X, Y, cfg.beta)
    return [{"relaxation": s.optimum, "objective": s.objective, "lower_bound": s.lower_bound, "gap": s.gap,
             "relative_gap": s.relative_gap, "neurons": s.neurons, "patterns": s.patterns_used,
             "solve_seconds": s.seconds}]
