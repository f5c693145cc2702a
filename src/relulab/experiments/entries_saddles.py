"""Registry entry: saddle-to-saddle dynamics of a two-layer linear network trained from small
initialization (plain torch, population loss, no data sampling).

The student ``x -> W2 W1 x`` (``W1, W2`` of size n x n, entries N(0, init^2)) is fitted by gradient
descent to a teacher ``T = U diag(s) V^T`` under whitened inputs, i.e. on the population loss
``L = ||W2 W1 - T||_F^2 / 2``. From a small initialization the origin is a saddle, and so is every
point where the product equals the best rank-k approximation ``T_k`` of the teacher (with the
remaining directions at zero): there ``L = sum_{i > k} s_i^2 / 2`` (Eckart-Young), the gradient
vanishes, and the Hessian has a negative eigenvalue unless ``k = rank T``. Gradient descent passes
these saddles in order ``k = 0, 1, ..., n``, learning the singular values from largest to smallest,
and lingers near each for a time ``~ log(1/init^2) (1/s_{k+1} - 1/s_k)``: the loss curve is a
staircase (Saxe, McClelland and Ganguli, ICLR 2014; Jacot, Ged, Simsek, Hongler and Gabriel,
"Saddle-to-Saddle Dynamics in Deep Linear Networks and Small Initialization Training", 2021). The
shallow ReLU analogue, with the saddles' escape directions carried by "escape neurons", is in Wu,
Simsek and Ged (arXiv 2402.05626).

Measured per run: for each plateau (the step of least gradient norm between two consecutive
changes of the learned rank, the rank counting singular values of ``W2 W1`` above half of the
smallest teacher singular value), the loss against ``sum_{i > k} s_i^2 / 2``, the gradient norm,
the smallest Hessian eigenvalue (dense Hessian of the 2 n^2 parameters, float64; at the exact
rank-k saddle it is ``-s_{k+1}``: moving along the next singular pair ``(u_{k+1}, v_{k+1})`` in both
layers lowers the loss at rate ``s_{k+1}``) and the step; and the same at the end of training (the
global minimum: Hessian positive semidefinite up to rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from relulab.experiments.registry import Summary, experiment


@dataclass(frozen=True)
class SaddleToSaddleConfig:
    n: int = 4  # input, hidden and output width
    init: float = 1e-6  # standard deviation of the initial weights
    ratio: float = 2.0  # s_i = 4 / ratio^i: consecutive teacher singular values differ by this factor
    lr: float = 0.05
    steps: int = 0  # 0: enough to learn every singular value (1.5 x the predicted time of the last one)
    seed: int = 0


def _teacher(cfg: SaddleToSaddleConfig, g):
    import torch

    s = torch.tensor([4.0 / cfg.ratio ** i for i in range(cfg.n)], dtype=torch.float64)
    U, _ = torch.linalg.qr(torch.randn(cfg.n, cfg.n, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(cfg.n, cfg.n, generator=g, dtype=torch.float64))
    return s, U @ torch.diag(s) @ V.T


def _loss(theta, T, n):
    W1, W2 = theta[: n * n].reshape(n, n), theta[n * n:].reshape(n, n)
    return 0.5 * ((W2 @ W1 - T) ** 2).sum()


@experiment(
    "saddle-to-saddle",
    title="Saddle-to-saddle dynamics from small initialization (two-layer linear network)",
    paper="Jacot, Ged, Simsek, Hongler & Gabriel, Saddle-to-Saddle Dynamics in Deep Linear Networks and Small "
          "Initialization Training (2021); Saxe, McClelland & Ganguli (ICLR 2014); ReLU analogue: Wu, Simsek & "
          "Ged (arXiv 2402.05626)",
    claim="From a small initialization, gradient descent visits a sequence of saddles: the loss is a staircase "
          "whose k-th plateau sits at the loss of the best rank-k approximation of the teacher, "
          "sum_{i>k} s_i^2 / 2; each plateau is a saddle (negative Hessian eigenvalue) and the singular values "
          "are learned one at a time, largest first.",
    full={"n": [3, 4, 5], "init": [1e-4, 1e-6, 1e-8], "seed": [0, 1, 2]},
    quick={"n": [4], "init": [1e-6], "seed": [0]},
    summarize=lambda rows: _summarize(rows),
)
def saddle_to_saddle(cfg: SaddleToSaddleConfig) -> list[dict]:
    import torch

    from relulab.core.errors import InvalidInputError

    if not (1 <= cfg.n <= 12 and 0 < cfg.init < 1 and cfg.ratio > 1 and 0 < cfg.lr and cfg.steps >= 0):
        raise InvalidInputError("saddle-to-saddle needs 1 <= n <= 12, 0 < init < 1, ratio > 1, lr > 0, steps >= 0")
    g = torch.Generator().manual_seed(cfg.seed)
    s, T = _teacher(cfg, g)
    n = cfg.n
    if cfg.lr * float(s[0]) > 0.5:
        raise InvalidInputError(f"lr {cfg.lr} is too large for the teacher's largest singular value {float(s[0])} "
                                "(gradient descent would not follow the flow): use lr <= 0.5 / 4")
    # mode i escapes after about log(s_i / init^2) / s_i time units (Saxe et al.)
    steps = cfg.steps or math.ceil(1.5 * math.log(float(s[-1]) / cfg.init ** 2) / float(s[-1]) / cfg.lr) + 50
    theta = torch.randn(2 * n * n, generator=g, dtype=torch.float64) * cfg.init
    # the trajectory: loss, gradient norm, learned rank (vectorized over steps afterwards)
    losses = torch.empty(steps, dtype=torch.float64)
    gnorm = torch.empty(steps, dtype=torch.float64)
    thetas = torch.empty(steps, 2 * n * n, dtype=torch.float64)
    W1, W2 = theta[: n * n].reshape(n, n).clone(), theta[n * n:].reshape(n, n).clone()
    for t in range(steps):
        E = W2 @ W1 - T  # dL/dW1 = W2^T E, dL/dW2 = E W1^T
        g1, g2 = W2.T @ E, E @ W1.T
        losses[t], gnorm[t] = 0.5 * (E * E).sum(), (g1.square().sum() + g2.square().sum()).sqrt()
        thetas[t, : n * n], thetas[t, n * n:] = W1.reshape(-1), W2.reshape(-1)
        W1, W2 = W1 - cfg.lr * g1, W2 - cfg.lr * g2
    P = thetas[:, n * n:].reshape(steps, n, n) @ thetas[:, : n * n].reshape(steps, n, n)
    rank = (torch.linalg.svdvals(P) > 0.5 * float(s[-1])).sum(1)
    change = (rank[1:] != rank[:-1]).nonzero().squeeze(1) + 1
    bounds = [0] + change.tolist() + [steps]
    rows = []
    theory = [0.5 * float((s[k:] ** 2).sum()) for k in range(n + 1)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        k = int(rank[a])
        last = b == steps
        # a plateau is where the gradient is least between two escapes; the end of training is the minimum
        t = steps - 1 if last else a + int(gnorm[a:b].argmin())
        H = torch.autograd.functional.hessian(lambda th: _loss(th, T, n), thetas[t])
        rows.append({"plateau": len(rows), "rank": k, "step": t, "loss": float(losses[t]),
                     "loss_theory": theory[k], "grad_norm": float(gnorm[t]),
                     "hessian_min_eig": float(torch.linalg.eigvalsh(H)[0]),
                     "hessian_min_theory": -float(s[k]) if k < n else 0.0, "final": last,
                     "steps_total": steps})
    return rows


def _summarize(rows: list[dict]) -> Summary:
    def draw(ax):
        for r in rows:
            ax.scatter([r["loss_theory"] + 1e-16], [r["loss"] + 1e-16], c="C3" if r["final"] else "C0", s=14)
        lim = [1e-16, max(r["loss_theory"] for r in rows) * 2]
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("best rank-k approximation loss sum_{i>k} s_i^2 / 2")
        ax.set_ylabel("loss at the plateau (red: end of training)")

    runs = {}
    for r in rows:
        runs.setdefault((r["n"], r["init"], r["seed"]), []).append(r)
    plateaus = [r for r in rows if not r["final"]]
    in_order = sum(all(x["rank"] == i for i, x in enumerate(rs)) and rs[-1]["rank"] == rs[-1]["n"]
                   for rs in runs.values())
    rel = max((abs(r["loss"] - r["loss_theory"]) / r["loss_theory"] for r in plateaus), default=float("nan"))
    saddles = sum(r["hessian_min_eig"] < -1e-6 for r in plateaus)
    eig = max((abs(r["hessian_min_eig"] / r["hessian_min_theory"] - 1) for r in plateaus), default=float("nan"))
    finals = [r for r in rows if r["final"]]
    psd = sum(r["hessian_min_eig"] > -1e-8 for r in finals)
    comparison = [
        ("plateaus visited in order k = 0, 1, ..., n (every singular value learned, largest first)",
         "one plateau per rank, in order", f"{in_order} of {len(runs)} runs"),
        ("plateau loss against sum_{i>k} s_i^2 / 2", "equal in the small-initialization limit",
         f"largest relative gap {rel:.2e} over {len(plateaus)} plateaus"),
        ("plateaus that are saddles (Hessian eigenvalue < 0)", "every plateau before the last",
         f"{saddles} of {len(plateaus)}"),
        ("smallest Hessian eigenvalue at plateau k against -s_{k+1}", "equal at the exact saddle",
         f"largest relative gap {eig:.2e}"),
        ("end of training: Hessian positive semidefinite (global minimum)", "yes", f"{psd} of {len(finals)} runs"),
    ]
    ok = in_order == len(runs) and saddles == len(plateaus) and psd == len(finals) and rel < 0.05 and eig < 0.05
    return Summary(figures=[("plateau loss against the rank-k approximation loss", draw)], comparison=comparison,
                   verdict="agrees: a staircase of saddles at the rank-k approximation losses" if ok
                   else "does not agree in every run (see the table)")
