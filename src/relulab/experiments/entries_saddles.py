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

Exact saddles and escape neurons. A plateau of gradient descent is only near a saddle (its gradient is
small, not zero), so each plateau is refined to an exact stationary point: the hidden layer is rotated
(an orthogonal change of the hidden basis is a symmetry of a linear network) so that the k learned
directions are the first k hidden units, the other ``n - k`` units are set to zero (input and output
weights), and the reduced stationarity system of the width-k network is solved by Newton's method
(least-squares steps: the reduced critical set is a GL(k) orbit, so its Hessian is singular along the
orbit). The result has zero gradient up to rounding; its loss is ``sum_{i > k} s_i^2 / 2`` and its
smallest Hessian eigenvalue ``-s_{k+1}`` to rounding, not to the ``O(init)`` distance of the plateau.
The escape-neuron criterion of Wu, Simsek and Ged (arXiv 2402.05626) is then applied by relulab's
landscape engine (:func:`relulab.landscape.kink_stationarity.directional_stationarity`), which takes
ReLU-like networks: each linear unit is written as the pair ``relu(w . x) - relu(-w . x)`` on data
symmetric under ``x -> -x`` (``x = +-sqrt(n) e_i``, targets ``T x``), where the loss equals the
population loss above and, because each pair ``+-x`` contributes equally, a point is stationary for the
ReLU network iff it is for the linear one. At a rank-k saddle the ``n - k`` zero units (``2 (n - k)``
ReLU units) have zero output weight and ``h_j(u) = (1/N) sum_i r_i relu(x_i . u) = (P - T) u / 2``,
which vanishes identically only when the residual ``P - T`` does: every zero unit is an escape neuron
until the last singular value is learned, and the engine's second-order direction through it lowers
the loss (verified). In the linear network the best escape through a zero unit (unit input and output
directions) changes the loss by ``t^2 min_{|u| = |a| = 1} a^T (P - T) u = -t^2 s_{k+1}``.
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
          "are learned one at a time, largest first. Each saddle has escape neurons (Wu, Simsek & Ged): units "
          "with zero output weight through which a second-order descent direction leaves it.",
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
        exact = _exact_saddle(thetas[t], T, n, k)
        escape = _escape_neurons(exact.pop("_theta"), T, n)
        rows.append({"plateau": len(rows), "rank": k, "step": t, "loss": float(losses[t]),
                     "loss_theory": theory[k], "grad_norm": float(gnorm[t]),
                     "hessian_min_eig": float(torch.linalg.eigvalsh(H)[0]),
                     "hessian_min_theory": -float(s[k]) if k < n else 0.0, "final": last,
                     "steps_total": steps, **exact, **escape})
    return rows


def _exact_saddle(theta, T, n: int, k: int) -> dict:
    """Refine a plateau point to an exact stationary point with k learned hidden directions (module
    docstring): rotate the hidden basis, zero the unused units, Newton on the width-k network."""
    import torch

    W1, W2 = theta[: n * n].reshape(n, n), theta[n * n:].reshape(n, n)
    # learned hidden directions: the top-k eigenvectors of W1 W1^T + W2^T W2 (balanced from small init)
    _, Q = torch.linalg.eigh(W1 @ W1.T + W2.T @ W2)
    O = Q.flip(1).T  # orthogonal, largest first
    A, B = (O @ W1)[:k].clone(), (W2 @ O.T)[:, :k].clone()

    def reduced(x):
        return 0.5 * ((x[k * n:].reshape(n, k) @ x[: k * n].reshape(k, n) - T) ** 2).sum()

    x = torch.cat([A.reshape(-1), B.reshape(-1)])
    scale = float(T.norm()) ** 2
    it = 0
    for it in range(1, 51):
        if k == 0:
            break
        g = torch.autograd.functional.jacobian(reduced, x)
        if float(g.norm()) <= 1e-14 * scale:
            break
        H = torch.autograd.functional.hessian(reduced, x)
        # least-squares Newton step: the reduced critical set is an orbit of GL(k), H is singular along it
        x = x - torch.linalg.pinv(H, hermitian=True, rtol=1e-10) @ g
    Z1, Z2 = torch.zeros(n, n, dtype=T.dtype), torch.zeros(n, n, dtype=T.dtype)
    Z1[:k], Z2[:, :k] = x[: k * n].reshape(k, n), x[k * n:].reshape(n, k)
    full = torch.cat([Z1.reshape(-1), Z2.reshape(-1)])
    rotated = torch.cat([(O @ W1).reshape(-1), (W2 @ O.T).reshape(-1)])  # theta in the rotated basis
    grad = torch.autograd.functional.jacobian(lambda th: _loss(th, T, n), full)
    Hf = torch.autograd.functional.hessian(lambda th: _loss(th, T, n), full)
    return {"exact_loss": float(_loss(full, T, n)), "exact_grad_norm": float(grad.norm()),
            "exact_hessian_min_eig": float(torch.linalg.eigvalsh(Hf)[0]),
            "exact_distance": float((full - rotated).norm()), "newton_iterations": it, "_theta": full}


def _relu_realization(W1, W2, T):
    """The ReLU network ``sum_j a_j relu(w_j . x) - a_j relu(-w_j . x)`` equal to ``x -> W2 W1 x``, and the
    symmetric data ``x = +-sqrt(n) e_i``, ``y = T x`` on which its loss is ``||W2 W1 - T||_F^2 / 2``."""
    import torch

    from relulab.landscape.shallow import ShallowNet

    n = T.shape[1]
    X = math.sqrt(n) * torch.cat([torch.eye(n, dtype=T.dtype), -torch.eye(n, dtype=T.dtype)])
    return ShallowNet(torch.cat([W1, -W1]), torch.cat([W2.T, -W2.T]), None, None, "relu"), X, X @ T.T


def _escape_neurons(theta, T, n: int) -> dict:
    """The escape-neuron verdict of relulab's landscape engine at an exact stationary point of the linear
    network, through its ReLU realization ``relu(w . x) - relu(-w . x)`` on symmetric data (module
    docstring), and the best escape rate through a zero unit of the linear network itself."""
    import torch

    from relulab.landscape.kink_stationarity import directional_stationarity

    W1, W2 = theta[: n * n].reshape(n, n), theta[n * n:].reshape(n, n)
    zero = [j for j in range(n) if float(W1[j].abs().max()) == 0.0 and float(W2[:, j].abs().max()) == 0.0]
    E = W2 @ W1 - T
    if float(E.abs().max()) <= 64 * torch.finfo(T.dtype).eps * float(T.abs().max()):
        # zero residual to rounding: a global minimum; the engine's relative stationarity tolerance is
        # scaled by the residual and cannot judge rounding-level gradients there
        return {"engine_verdict": "zero loss (global minimum)", "engine_stationary": True, "zero_units": len(zero),
                "escape_units": 0, "escape_relu_units": 0, "escape_units_are_zero_units": not zero,
                "escape_verified": False, "escape_second_order": 0.0, "escape_rate_linear": 0.0}
    net, X, Y = _relu_realization(W1, W2, T)
    res = directional_stationarity(net, X, Y, n_probe=50)
    units = sorted({j % n for j in res.escape_neurons})
    return {"engine_verdict": res.verdict, "engine_stationary": bool(res.stationary),
            "zero_units": len(zero), "escape_units": len(units), "escape_relu_units": len(res.escape_neurons),
            "escape_units_are_zero_units": units == zero,
            "escape_verified": bool(res.saddle_verified) if res.saddle_direction is not None else False,
            "escape_second_order": res.saddle_second_order if res.saddle_second_order is not None else 0.0,
            # min over unit a, u of a^T (P - T) u: the loss changes by this times t^2 along (t u, t a)
            "escape_rate_linear": -float(torch.linalg.svdvals(E)[0]) if zero else 0.0}


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
    worst = lambda xs: max(xs, default=float("nan"))  # noqa: E731
    ex_grad = worst([r["exact_grad_norm"] for r in rows])
    ex_dist = worst([r["exact_distance"] for r in plateaus])
    ex_loss = worst([abs(r["exact_loss"] - r["loss_theory"]) / r["loss_theory"] for r in plateaus])
    ex_eig = worst([abs(r["exact_hessian_min_eig"] / r["hessian_min_theory"] - 1) for r in plateaus])
    escaping = sum(r["engine_verdict"] == "strict saddle" and r["escape_units"] == r["n"] - r["rank"]
                   and r["escape_units_are_zero_units"] and r["escape_verified"] for r in plateaus)
    rate = worst([abs(r["escape_rate_linear"] / r["hessian_min_theory"] - 1) for r in plateaus])
    no_escape_at_end = sum(r["escape_units"] == 0 and r["engine_verdict"].startswith("zero loss") for r in finals)
    comparison = [
        ("plateaus visited in order k = 0, 1, ..., n (every singular value learned, largest first)",
         "one plateau per rank, in order", f"{in_order} of {len(runs)} runs"),
        ("plateau loss against sum_{i>k} s_i^2 / 2", "equal in the small-initialization limit",
         f"largest relative gap {rel:.2e} over {len(plateaus)} plateaus"),
        ("plateaus that are saddles (Hessian eigenvalue < 0)", "every plateau before the last",
         f"{saddles} of {len(plateaus)}"),
        ("smallest Hessian eigenvalue at plateau k against -s_{k+1}", "close (equal at the exact saddle, below)",
         f"largest relative gap {eig:.2e}"),
        ("end of training: Hessian positive semidefinite (global minimum)", "yes", f"{psd} of {len(finals)} runs"),
        ("exact stationary point near each plateau (Newton on the reduced stationarity system)",
         "the plateaus are near saddles (critical points)",
         f"gradient norm <= {ex_grad:.1e}; distance from the plateau <= {ex_dist:.1e}"),
        ("loss and smallest Hessian eigenvalue at the exact saddles", "sum_{i>k} s_i^2 / 2 and -s_{k+1}",
         f"largest relative gaps {ex_loss:.1e} and {ex_eig:.1e}"),
        ("escape neurons at each exact saddle (relulab landscape engine, Wu-Simsek-Ged criterion)",
         "every saddle before the last has escape neurons (here the n - k unused units) and a second-order "
         "descent direction through them",
         f"{escaping} of {len(plateaus)} saddles (escape units = unused units, descent verified)"),
        ("best escape through an unused unit: loss change / t^2", "-s_{k+1}",
         f"largest relative gap {rate:.1e}"),
        ("end of training: escape neurons", "none (global minimum)", f"{no_escape_at_end} of {len(finals)} runs"),
    ]
    ok = (in_order == len(runs) and saddles == len(plateaus) and psd == len(finals) and rel < 0.05 and eig < 0.05
          and escaping == len(plateaus) and no_escape_at_end == len(finals) and ex_eig < 1e-8 and ex_loss < 1e-10)
    return Summary(figures=[("plateau loss against the rank-k approximation loss", draw)], comparison=comparison,
                   verdict="agrees: a staircase of saddles at the rank-k approximation losses, each with escape "
                           "neurons" if ok
                   else "does not agree in every run (see the table)")
