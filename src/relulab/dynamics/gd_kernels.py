r"""Gradient descent against kernel methods on the teacher a^T |W* x|.

Li, Ma and Zhang (*Learning over-parametrized two-layer ReLU neural networks beyond NTK*, COLT 2020)
take x ~ N(0, I_d), labels f*(x) = a^T |W* x| with a *nonnegative* vector a and an orthonormal
W* (d x d), and prove that an over-parameterized two-layer ReLU network trained by gradient
descent from random initialization learns f* to population loss o(1/d) with polynomially many
samples, while every kernel method (the NTK included) with polynomially many samples stays at
Omega(1/d). Here a_i = 1/k (k = d rows by default; random signs on request), so that the loss
scale is 1/d: with z = W* x ~ N(0, I_k) and the Hermite expansion
|z| = sqrt(2/pi) + (1/sqrt(pi)) He_2(z)/sqrt(2) + (degree >= 4),

* the constant predictor E f* has loss Var f* = |a|^2 (1 - 2/pi) = (1 - 2/pi)/k;
* the best predictor of degree <= 3 has loss |a|^2 (1 - 3/pi) = (1 - 3/pi)/k (odd Hermite parts of
  |z| vanish; components of independent z_i are orthogonal).

A rotation-invariant kernel method with n ~ d^p samples learns about the polynomials of degree < p,
so with n = O(d^3) samples it cannot go below the second line: that is the Omega(1/d) floor drawn
in :meth:`GDvsKernels.plot` (derived here from the Hermite expansion, for this normalization).
Everything here is *finite-size evidence*: the population loss of each fitted predictor is a Monte
Carlo average over fresh Gaussian inputs with its standard error, at small d.

Compared at the same n samples: full-batch gradient descent on a two-layer ReLU network from a
small initialization (:func:`train_student`), kernel ridge regression with the analytic
infinite-width NTK of a two-layer ReLU network (:func:`relulab.kernels.analytic_ntk`), and ridge
regression on random ReLU features; the ridge is chosen by exact leave-one-out error over a grid
(one eigendecomposition). The training recipe is ours, not the paper's algorithm (whose
statement we could not retrieve): plain full-batch GD on the empirical square loss, standard
parameterization without biases, units started in +-w pairs at scale 1e-2, every layer trained.
A large-initialization network in the NTK parameterization (the recipe tried first) stays close to
its kernel and overfits at n = 4 d^2: d x loss 0.15-0.30.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import Result

__all__ = ["Teacher", "abs_teacher", "kernel_ridge", "population_loss", "train_student", "gd_vs_kernels",
           "GDvsKernels"]


@dataclass
class Teacher:
    """f*(x) = a^T |W x| with orthonormal rows W (k, d); ``constant_loss`` and ``quadratic_loss`` are the
    closed-form losses of the best constant and best degree-<=3 predictors."""

    a: np.ndarray
    W: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(x) @ self.W.T) @ self.a

    @property
    def d(self) -> int:
        return self.W.shape[1]

    @property
    def constant_loss(self) -> float:
        return float(self.a @ self.a) * (1 - 2 / math.pi)

    @property
    def quadratic_loss(self) -> float:
        return float(self.a @ self.a) * (1 - 3 / math.pi)

    def sample(self, n: int, seed: int):
        x = np.random.default_rng(seed).standard_normal((n, self.d))
        return x, self(x)


def abs_teacher(d: int, k: int | None = None, *, signs: str = "positive", seed: int = 0) -> Teacher:
    """A random teacher: W the first k rows of a Haar orthogonal matrix, a_i = 1/k (``signs``
    ``"positive"``, the paper's nonnegative a) or +-1/k with random signs (``"random"``)."""
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 4096:
        raise InvalidInputError(f"d must be an integer in [1, 4096], got {d!r}")
    k = d if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
        raise InvalidInputError(f"k must be an integer in [1, d], got {k!r}")
    if signs not in ("positive", "random"):
        raise InvalidInputError(f"signs must be 'positive' or 'random', got {signs!r}")
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    sgn = np.where(rng.random(k) < 0.5, -1.0, 1.0) if signs == "random" else np.ones(k)
    return Teacher(a=sgn / k, W=q[:k].copy())


def population_loss(predict, teacher: Teacher, *, samples: int = 20000, seed: int = 12345, block: int = 4096):
    """E (predict(x) - f*(x))^2 over x ~ N(0, I) by Monte Carlo on ``samples`` fresh points:
    (mean, standard error)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 10:
        raise InvalidInputError(f"samples must be an integer >= 10, got {samples!r}")
    rng = np.random.default_rng(seed)
    errs = []
    for i in range(0, samples, block):
        x = rng.standard_normal((min(block, samples - i), teacher.d))
        errs.append((np.asarray(predict(x)).reshape(-1) - teacher(x)) ** 2)
    e = np.concatenate(errs)
    return float(e.mean()), float(e.std(ddof=1) / math.sqrt(e.size))


def kernel_ridge(K: np.ndarray, y: np.ndarray, ridges=None):
    """Kernel ridge regression alpha = (K + lam I)^{-1} (y - mean y) with lam chosen from ``ridges``
    (default: 10^-8 .. 10^1 times the mean diagonal) by the exact leave-one-out error
    r_i / (1 - H_ii), H = K (K + lam I)^{-1}, from one eigendecomposition of K. Returns
    (alpha, offset, lam, loo_error)."""
    K = np.asarray(K, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if K.ndim != 2 or K.shape != (y.size, y.size) or not np.isfinite(K).all():
        raise InvalidInputError("K must be a finite (n, n) matrix matching y")
    scale = float(np.mean(np.diag(K)))
    ridges = scale * 10.0 ** np.arange(-8, 1.5, 0.5) if ridges is None else np.asarray(ridges, dtype=np.float64)
    evals, Q = np.linalg.eigh(0.5 * (K + K.T))
    evals = np.maximum(evals, 0.0)
    off = float(y.mean())
    yt = Q.T @ (y - off)
    best = None
    for lam in ridges:
        h = evals / (evals + lam)
        fit = Q @ (h * yt)
        Hdiag = (Q * Q) @ h
        loo = float(np.mean(((y - off - fit) / np.maximum(1 - Hdiag, 1e-12)) ** 2))
        if best is None or loo < best[1]:
            best = (float(lam), loo)
    lam = best[0]
    alpha = Q @ (yt / (evals + lam))
    return alpha, off, lam, best[1]


def train_student(x, y, *, width: int, steps: int = 6000, lr: float = 1.0, init_scale: float = 1e-2,
                  weight_decay: float = 0.0, symmetric: bool = True, seed: int = 0, rel_loss_tol: float = 0.0,
                  loss_target: float = 0.0, time_limit: float | None = None):
    r"""Full-batch gradient descent on L = 1/(2n) sum (f(x_i) - y_i)^2 for the two-layer ReLU network

        f(x) = c + sum_{j=1}^{M} a_j relu(<w_j, x>)      (standard parameterization, no biases),

    every parameter trained, from a *small* initialization w_j ~ N(0, init_scale^2 I / d),
    a_j = init_scale, c = 0. With ``symmetric`` the M = 2 ``width`` units start in pairs (w, a), (-w, a)
    (an even function at the start, like the teacher; GD then moves each unit freely); otherwise
    M = ``width`` units. Small initialization puts the network far from its kernel regime: the
    first steps grow the units along the top directions of the data's second-moment structure
    before the higher-order terms align them with the teacher's rows - the staged behaviour Li, Ma
    and Zhang analyse. ``weight_decay`` adds (weight_decay / 2) |theta|^2 (not on c). Stops after
    ``steps`` steps, at ``rel_loss_tol`` times the initial training loss, at the training loss
    ``loss_target``, or after ``time_limit`` seconds. Returns (predict, final training loss, steps run)."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidInputError(f"width must be an integer >= 1, got {width!r}")
    for name, v in (("lr", lr), ("init_scale", init_scale)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InvalidInputError(f"{name} must be a finite number > 0, got {v!r}")
    if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
        raise InvalidInputError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidInputError(f"steps must be an integer >= 0, got {steps!r}")
    if not (isinstance(loss_target, (int, float)) and math.isfinite(loss_target) and loss_target >= 0):
        raise InvalidInputError(f"loss_target must be a finite number >= 0, got {loss_target!r}")
    X = torch.as_tensor(np.asarray(x, dtype=np.float64))
    Y = torch.as_tensor(np.asarray(y, dtype=np.float64)).reshape(-1)
    if X.ndim != 2 or X.shape[0] != Y.numel() or not (bool(torch.isfinite(X).all()) and bool(torch.isfinite(Y).all())):
        raise InvalidInputError("x must be a finite (n, d) array and y must hold n finite values")
    n, d = X.shape
    g = torch.Generator().manual_seed(int(seed))
    W = init_scale * torch.randn(width, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    a = torch.full((width,), float(init_scale), dtype=torch.float64)
    if symmetric:
        W, a = torch.cat([W, -W]), torch.cat([a, a])
    W.requires_grad_(True)
    a.requires_grad_(True)
    c = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def f(Z):
        return c + torch.relu(Z @ W.T) @ a

    start = time.perf_counter()
    k = 0
    loss0 = None
    for k in range(steps):
        loss = 0.5 * ((f(X) - Y) ** 2).mean()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise InvalidInputError("gradient descent diverged: lower lr")
        if loss0 is None:
            loss0 = value
        if value <= rel_loss_tol * loss0 or value <= loss_target:
            break
        gW, ga, gc = torch.autograd.grad(loss, (W, a, c))
        with torch.no_grad():
            W -= lr * (gW + weight_decay * W)
            a -= lr * (ga + weight_decay * a)
            c -= lr * gc
        if time_limit is not None and time.perf_counter() - start > time_limit:
            k += 1
            break
    else:
        k = steps

    def predict(Z):
        with torch.no_grad():
            return f(torch.as_tensor(np.asarray(Z, dtype=np.float64))).numpy()

    with torch.no_grad():
        final = float(0.5 * ((f(X) - Y) ** 2).mean())
    return predict, final, k


@dataclass
class GDvsKernels(Result):
    """One row per (d, seed): population losses (Monte Carlo mean and standard error) of the GD-trained
    network, NTK ridge regression and random-features ridge regression at ``n = samples_factor d^2``
    samples, with the closed-form constant and degree-<=3 losses. All numbers are finite-size evidence."""

    rows: list
    seconds: float
    settings: dict = field(default_factory=dict)

    def plot(self, ax=None):
        """d x loss against d: a method at o(1/d) falls, one at Omega(1/d) stays level."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 4))
        ds = sorted({r["d"] for r in self.rows})
        for key, lab, mk in (("gd", "GD network", "o-"), ("ntk", "NTK ridge", "s-"), ("rf", "random features", "^-")):
            mean = [d * np.mean([r[f"{key}_loss"] for r in self.rows if r["d"] == d]) for d in ds]
            se = [d * np.sqrt(np.mean([r[f"{key}_se"] ** 2 for r in self.rows if r["d"] == d])) for d in ds]
            ax.errorbar(ds, mean, yerr=se, fmt=mk, ms=4, label=lab)
        ax.axhline(1 - 2 / math.pi, color="k", ls=":", lw=0.8, label="constant predictor")
        ax.axhline(1 - 3 / math.pi, color="k", ls="--", lw=0.8, label="best degree <= 3 (kernel floor)")
        if all(r[f"{k}_loss"] > 0 for r in self.rows for k in ("gd", "ntk", "rf")):
            ax.set_yscale("log")  # the network's loss sits orders of magnitude below the kernels'
        ax.set_xlabel("input dimension d")
        ax.set_ylabel("d x population loss")
        ax.set_title(f"n = {self.settings.get('samples_factor')} d^2 samples (finite-size evidence)", fontsize=9)
        ax.legend(fontsize=7)
        return ax


def gd_vs_kernels(*, ds=(6, 8, 12, 16), seeds=(0,), samples_factor: float = 16.0, width_factor: int = 4,
                  steps: int = 6000, lr: float = 1.0, init_scale: float = 1e-2, weight_decay: float = 0.0,
                  signs: str = "positive", features_factor: float = 2.0, test_samples: int = 20000,
                  max_samples: int = 6000, train_target: float | None = None, time_limit: float | None = None,
                  progress=None) -> GDvsKernels:
    """For each d and seed: a teacher (:func:`abs_teacher`, k = d, ``signs``), n = samples_factor d^2
    training points, the three predictors and their population losses. The network is
    :func:`train_student` with ``width_factor`` d pairs of units (2 ``width_factor`` d ReLUs), at most
    ``steps`` full-batch steps of size ``lr`` from scale ``init_scale``.

    ``train_target`` is the stopping rule that makes dimensions comparable: GD stops as soon as
    d x training loss <= ``train_target`` (the same fraction of the 1/d loss scale at every d), so
    the population loss measures what the trained network generalizes, not how far a fixed step
    budget got (``gd_reached_target`` says whether the step cap came first). Each row also records
    the CPU seconds of the GD run (``gd_cpu_seconds``)."""
    from relulab.kernels import analytic_ntk

    if not ds or not seeds:
        raise InvalidInputError("ds and seeds must each hold at least one value")
    if train_target is not None and not (isinstance(train_target, (int, float)) and math.isfinite(train_target)
                                         and train_target > 0):
        raise InvalidInputError(f"train_target must be a finite number > 0, got {train_target!r}")
    settings = [(int(d), int(s)) for d in ds for s in seeds]
    for d, _ in settings:
        if int(samples_factor * d * d) > max_samples:
            raise ResourceLimitError(f"n = {int(samples_factor * d * d)} samples at d = {d} is over max_samples = "
                                     f"{max_samples} (an n x n kernel solve)")
    rows = []
    start = time.perf_counter()
    for i, (d, s) in enumerate(settings):
        teacher = abs_teacher(d, signs=signs, seed=s)
        n = int(samples_factor * d * d)
        x, y = teacher.sample(n, seed=1000 + s)
        # the NTK of the student's architecture (one hidden layer, weight and bias variance 1)
        K = analytic_ntk(x, depth=1, weight_var=[1.0, 1.0], bias_var=[1.0, 0.0])[1].numpy()
        alpha, off, lam, _ = kernel_ridge(K, y)

        def ntk_predict(z, x=x, alpha=alpha, off=off):
            return analytic_ntk(z, x, depth=1, weight_var=[1.0, 1.0], bias_var=[1.0, 0.0])[1].numpy() @ alpha + off

        ntk = population_loss(ntk_predict, teacher, samples=test_samples)
        rng = np.random.default_rng(77 + s)
        nf = int(features_factor * n)
        Wf, bf = rng.standard_normal((nf, d)), rng.standard_normal(nf)

        def feats(z, Wf=Wf, bf=bf, nf=nf, d=d):
            return np.maximum(np.asarray(z) @ Wf.T / math.sqrt(d) + bf, 0.0) / math.sqrt(nf)

        Phi = feats(x)
        a_rf, off_rf, lam_rf, _ = kernel_ridge(Phi @ Phi.T, y)
        w_rf = Phi.T @ a_rf
        rf = population_loss(lambda z, w_rf=w_rf, off_rf=off_rf: feats(z) @ w_rf + off_rf, teacher,
                             samples=test_samples)
        left = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - start))
        cpu0 = time.process_time()
        predict, train_loss, done = train_student(x, y, width=width_factor * d, steps=steps, lr=lr,
                                                  init_scale=init_scale, weight_decay=weight_decay, seed=s,
                                                  loss_target=0.0 if train_target is None else train_target / d,
                                                  time_limit=left)
        gd_cpu = time.process_time() - cpu0
        gd = population_loss(predict, teacher, samples=test_samples)
        rows.append({"d": d, "seed": s, "n": n, "gd_loss": gd[0], "gd_se": gd[1], "gd_train_loss": train_loss,
                     "gd_steps": done, "gd_cpu_seconds": gd_cpu,
                     "gd_reached_target": None if train_target is None else bool(d * train_loss <= train_target),
                     "ntk_loss": ntk[0], "ntk_se": ntk[1], "ntk_ridge": lam, "rf_loss": rf[0],
                     "rf_se": rf[1], "rf_ridge": lam_rf, "rf_features": nf, "constant_loss": teacher.constant_loss,
                     "quadratic_loss": teacher.quadratic_loss})
        if progress is not None:
            progress(i + 1, len(settings), d=d)
    return GDvsKernels(rows=rows, seconds=time.perf_counter() - start,
                       settings={"samples_factor": samples_factor, "width_factor": width_factor, "steps": steps,
                                 "lr": lr, "init_scale": init_scale, "weight_decay": weight_decay, "signs": signs,
                                 "train_target": train_target, "features_factor": features_factor, "test_samples": test_samples})
