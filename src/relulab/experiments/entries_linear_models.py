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
