r"""Hessian spectra of any torch model and loss: Hessian-vector products, Lanczos eigenpairs at both
ends of the spectrum, inertia, trace, spectral density, and where autograd's Hessian is one-sided.

For a model ``f(theta, x)`` and a loss ``L(theta) = loss(f(theta, X), Y)`` the Hessian
``H = d^2 L / d theta^2`` (P x P, P trainable parameters) is never formed: :class:`HessianOperator`
applies it to a vector by reverse-over-reverse differentiation, ``H v = grad_theta <grad L, v>``
(Pearlmutter 1994); with all data in one batch the gradient's graph is built once and every product
is one backward pass through it.

* :func:`lanczos`: ``m`` steps of the Lanczos recurrence ``H Q_m = Q_m T_m + beta_m q_{m+1} e_m^T``
  with full re-orthogonalization (classical Gram-Schmidt, twice), ``T_m`` tridiagonal.
* :func:`hessian_eigenpairs`: Ritz pairs of ``T_m`` at the largest and/or smallest (most negative)
  end, the Krylov space grown until each wanted pair's residual ``|beta_m s_{m,i}|`` (equal to
  ``||H y_i - theta_i y_i||`` for the computed basis) is below ``tol * ||H||``; the true residuals are
  re-measured with one product per pair. Each Ritz value lies within its residual of an eigenvalue
  (Parlett, The Symmetric Eigenvalue Problem, Thm 11.5.1).
* :func:`hessian_trace`: Hutch++ (Meyer, Musco, Musco, Woodruff 2021): ``tr(H) = tr(Q^T H Q) +
  tr((I - QQ^T) H (I - QQ^T))`` with ``Q`` an orthonormal basis of ``H S`` for a random sign matrix
  ``S``, the second term by Hutchinson's estimator; or, given a Lanczos basis, the same split with
  ``Q = Q_m`` and ``tr(Q_m^T H Q_m) = sum alpha_i`` (deflated Hutchinson). Both are unbiased; the
  standard error comes from the spread of the Hutchinson terms.
* :func:`spectral_density`: stochastic Lanczos quadrature (Golub and Meurant; Ubaru, Chen, Saad
  2017; Ghorbani, Krishnan, Xiao 2019): for random unit vectors ``v``, ``v^T g(H) v ~ sum_i tau_i
  g(theta_i)`` with Ritz values ``theta_i`` of the Lanczos run started at ``v`` and weights
  ``tau_i = s_{1,i}^2``; the density is that sum with Gaussian ``g``, averaged over the vectors.
* :func:`hessian_inertia`: counts of negative, zero and positive eigenvalues, exact from the dense
  Hessian when it is small, else estimated by quadrature; an eigenvalue counts as zero when
  ``|lambda| <= tol``, ``tol = max(P eps ||H||, ||grad L||)``: away from a critical point the small
  eigenvalues say nothing about its type, so inertia is only as sharp as the point is stationary.
* :func:`kink_report`: autograd differentiates a ReLU at 0 (and a max at a tie) one-sidedly, so at
  parameters where a data point sits on a kink the gradient and Hessian above are one-sided. The
  report converts the model to a :class:`~relulab.core.PLNet` and counts, per max layer, the
  (sample, unit) pairs whose two best pieces tie exactly and those within ``rtol`` of a tie.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import nn

from relulab.core.errors import InvalidInputError, RelulabError
from relulab.results import Result

__all__ = ["HessianOperator", "LanczosDecomposition", "lanczos", "HessianEigenpairs", "hessian_eigenpairs",
           "TraceEstimate", "hessian_trace", "SpectralDensity", "spectral_density", "Inertia", "hessian_inertia",
           "KinkReport", "kink_report", "HessianSpectrum", "hessian_spectrum"]

LOSSES = {"mse": lambda: nn.MSELoss(), "cross_entropy": lambda: nn.CrossEntropyLoss()}


# ----------------------------------------------------------------------------------------------------
# the operator
# ----------------------------------------------------------------------------------------------------
class HessianOperator:
    r"""The Hessian of ``L(theta) = loss(model(inputs; theta), targets)`` in the model's trainable
    parameters, flattened in ``model.named_parameters()`` order, as a linear operator.

    ``loss``: a callable ``(output, target) -> scalar``, or ``"mse"`` / ``"cross_entropy"``.
    ``batch_size``: evaluate over the data in batches and add up, weighting each batch by
    ``n_batch / n`` for a loss with ``reduction="mean"`` and by 1 for ``reduction="sum"`` (the
    reduction is read off a torch loss module, or given as ``reduction``); ``None`` takes all data
    at once, exact for any loss. ``dtype``: the model is copied and cast (float64 by default); the
    caller's model is never modified. Products are counted in ``n_products``.

    ``train_mode``: what to do with a model in training mode whose output depends on the mode
    (BatchNorm or Dropout in training mode, or any module whose training-mode output on the first
    batch differs from its eval-mode output): ``"refuse"`` (default) raises, since the Hessian of a
    random or batch-coupled loss is not the one of the evaluated network; ``"eval"`` evaluates an
    eval-mode copy and records the switched modules in ``eval_mode_modules`` (results carry it).
    Models whose output does not depend on the mode are evaluated as they are.
    """

    def __init__(self, model: nn.Module, loss, inputs, targets, *, batch_size: int | None = None,
                 reduction: str | None = None, dtype: torch.dtype | None = torch.float64, device=None,
                 train_mode: str = "refuse"):
        from relulab.core.plnet import PLNet

        if isinstance(model, PLNet):
            model = model.to_torch()
        if not isinstance(model, nn.Module):
            raise InvalidInputError(f"model must be a torch nn.Module or a PLNet, got {type(model).__name__}")
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise InvalidInputError(f"loss {loss!r} is not one of {sorted(LOSSES)} (or pass a callable)")
            loss = LOSSES[loss]()
        if not callable(loss):
            raise InvalidInputError("loss must be a callable (output, target) -> scalar, 'mse' or 'cross_entropy'")
        if reduction is None:
            reduction = getattr(loss, "reduction", None)
        if reduction not in (None, "mean", "sum"):
            raise InvalidInputError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        first = next(iter(model.parameters()), None)
        if first is None:
            raise InvalidInputError("the model has no parameters")
        device = torch.device(device) if device is not None else first.device
        dtype = dtype or first.dtype
        if train_mode not in ("refuse", "eval"):
            raise InvalidInputError(f"train_mode must be 'refuse' or 'eval', got {train_mode!r}")
        self.model = copy.deepcopy(model).to(device=device, dtype=dtype)
        self.train_mode = train_mode
        self.eval_mode_modules: tuple[str, ...] = ()
        self.loss = loss
        self.dtype, self.device = dtype, device
        named = [(k, p) for k, p in self.model.named_parameters() if p.requires_grad]
        if not named:
            raise InvalidInputError("the model has no trainable parameters (requires_grad=True)")
        self.names = [k for k, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self._params = [p for _, p in named]
        self._cached = None
        self._batched_failed = False
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named])
        self.buffers = {k: b for k, b in self.model.named_buffers()}
        x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs))
        y = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(np.asarray(targets))
        if x.shape[0] != y.shape[0]:
            raise InvalidInputError(f"inputs ({x.shape[0]} samples) and targets ({y.shape[0]}) differ in length")
        if x.shape[0] == 0:
            raise InvalidInputError("no data: inputs has zero samples")
        self.inputs = x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)
        self.targets = y.to(device=device, dtype=dtype if y.is_floating_point() else y.dtype)
        n = self.inputs.shape[0]
        if batch_size is None or batch_size >= n:
            self.batches = [(0, n)]
        else:
            if batch_size < 1:
                raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size}")
            if reduction is None:
                raise InvalidInputError("batching needs the loss's reduction ('mean' or 'sum'): pass reduction=")
            weight = getattr(loss, "weight", None)
            ignore = getattr(loss, "ignore_index", None)
            if reduction == "mean" and (weight is not None or (ignore is not None and not self.targets.is_floating_point()
                                                               and bool((self.targets == ignore).any()))):
                raise InvalidInputError(f"{type(loss).__name__} with class weights or ignored labels averages over a "
                                        "weighted count, not over samples: batching would change the loss; use "
                                        "batch_size=None or reduction='sum'")
            self.batches = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        self.weights = [((e - s) / n if reduction == "mean" else 1.0) for s, e in self.batches]
        self.n_products = 0
        x0, y0 = self._batch(0)
        sizes = [max(self.sizes), x0.numel()]

        def note(module, inputs, output):
            if isinstance(output, torch.Tensor):
                sizes.append(output.numel())

        try:  # a first evaluation: shape errors surface here, with the model named
            self._settle_mode(model, x0)
            hooks = [m.register_forward_hook(note) for m in self.model.modules()]
            try:
                with torch.no_grad():
                    out = self.model(x0)
                    self.loss(out, y0)
            finally:
                for h in hooks:
                    h.remove()
            out_shape = tuple(out.shape[1:])
        except RelulabError:
            raise
        except Exception as e:  # noqa: BLE001 - any torch error means model, data and loss do not fit
            raise InvalidInputError(f"model {type(model).__name__} and loss cannot be evaluated on inputs of shape "
                                    f"{tuple(self.inputs.shape)} with targets of shape {tuple(self.targets.shape)}: "
                                    f"{str(e).splitlines()[0]}") from None
        # elements of the largest tensor one product handles: small networks run on one thread (their
        # operations are too small to gain from more, and lose much to waiting on a busy machine)
        self.work = max(sizes + [self.dim])
        if isinstance(loss, (nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.SmoothL1Loss)):
            # these broadcast silently: outputs (n, 1) against targets (n,) would compare every pair
            if out_shape != tuple(self.targets.shape[1:]):
                raise InvalidInputError(f"{type(loss).__name__}: the model's output per sample has shape {out_shape}, "
                                        f"the targets' {tuple(self.targets.shape[1:])}; they must be equal")

    def _settle_mode(self, model: nn.Module, x0: torch.Tensor) -> None:
        """Put the copy in eval mode, refusing (or recording, ``train_mode="eval"``) a model whose
        training-mode output differs: known mode-dependent layers by type, any other by comparing one
        training-mode forward of a throw-away copy (its batch statistics may update) with eval mode."""
        training = [k or type(self.model).__name__ for k, m in self.model.named_modules() if m.training]
        if not training:
            return
        typed = [k or type(self.model).__name__ for k, m in self.model.named_modules() if m.training and (
            isinstance(m, nn.modules.batchnorm._BatchNorm)
            or isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)]
        differs = bool(typed)
        if not differs:
            probe = copy.deepcopy(self.model)
            with torch.no_grad():
                out_train = probe(x0)
                self.model.eval()
                out_eval = self.model(x0)
            differs = not (isinstance(out_train, torch.Tensor) and isinstance(out_eval, torch.Tensor)
                           and out_train.shape == out_eval.shape and torch.equal(out_train, out_eval))
        self.model.eval()
        if not differs:
            return
        names = typed or training
        if self.train_mode == "refuse":
            raise InvalidInputError(
                f"model {type(model).__name__} is in training mode and its output depends on the mode "
                f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): the loss would be random or couple "
                "the samples; call model.eval() first, or pass train_mode='eval' to evaluate it in eval mode")
        self.eval_mode_modules = tuple(names)

    @property
    def dim(self) -> int:
        """P, the number of trainable parameters."""
        return self.theta.numel()

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dim, self.dim)

    def _unflatten(self, flat: torch.Tensor) -> dict:
        return {k: t.view(s) for k, t, s in zip(self.names, flat.split(self.sizes), self.shapes)}

    def _batch(self, i: int):
        s, e = self.batches[i]
        return self.inputs[s:e], self.targets[s:e]

    def _loss(self, params: dict, x, y) -> torch.Tensor:
        out = torch.func.functional_call(self.model, (params, self.buffers), (x,))
        return self.loss(out, y)

    def _gradient_graph(self, i: int) -> tuple:
        """Batch i's gradient with its graph kept (``create_graph``), so that H v is one more backward.
        With one batch the graph is built once and kept for the operator's lifetime."""
        if len(self.batches) == 1 and self._cached is not None:
            return self._cached
        x, y = self._batch(i)
        with torch.enable_grad():
            loss = self.loss(self.model(x), y)
            g = torch.autograd.grad(loss, self._params, create_graph=True)
        if len(self.batches) == 1:
            self._cached = g
        return g

    def _flat(self, parts, lead: tuple = ()) -> torch.Tensor:
        """Per-parameter tensors (None: no dependence) as one tensor (*lead, P)."""
        return torch.cat([torch.zeros(*lead, n, dtype=self.dtype, device=self.device) if t is None
                          else t.reshape(*lead, n) for t, n in zip(parts, self.sizes)], -1)

    def loss_value(self) -> float:
        """L(theta)."""
        with torch.no_grad():
            return float(sum(w * self.loss(self.model(self._batch(i)[0]), self._batch(i)[1])
                             for i, w in enumerate(self.weights)))

    def gradient(self) -> torch.Tensor:
        """grad L(theta), (P,)."""
        return sum(w * self._flat(self._gradient_graph(i)).detach() for i, w in enumerate(self.weights))

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for one vector (P,): reverse-over-reverse, ``d/d theta <grad L, v>``. With one batch the
        gradient's graph is built once and kept (one backward pass per product, the graph's memory for
        the operator's lifetime); with several batches it is rebuilt per batch."""
        v = torch.as_tensor(v, dtype=self.dtype, device=self.device).reshape(-1)
        if v.numel() != self.dim:
            raise InvalidInputError(f"vector has {v.numel()} entries, the Hessian acts on {self.dim}")
        vs = [t.view(s) for t, s in zip(v.split(self.sizes), self.shapes)]
        keep = len(self.batches) == 1
        out = None
        for i, w in enumerate(self.weights):
            with torch.enable_grad():
                hv = self._flat(torch.autograd.grad(self._gradient_graph(i), self._params, vs, retain_graph=keep,
                                                    allow_unused=True))
            hv = hv if w == 1.0 else w * hv
            out = hv if out is None else out + hv
        self.n_products += 1
        return out

    def matmat(self, V: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """H V for the columns of V (P, s): ``chunk`` columns per backward pass through the kept gradient
        graph (``is_grads_batched``, vectorized by vmap) with one batch, else column by column."""
        V = torch.as_tensor(V, dtype=self.dtype, device=self.device)
        if V.dim() != 2 or V.shape[0] != self.dim:
            raise InvalidInputError(f"matrix has shape {tuple(V.shape)}, the Hessian acts on ({self.dim}, s)")
        if len(self.batches) > 1 or self._batched_failed:
            return torch.stack([self.matvec(V[:, j]) for j in range(V.shape[1])], 1)
        g = self._gradient_graph(0)
        out = []
        for s in range(0, V.shape[1], chunk):
            C = V[:, s:s + chunk].T.contiguous()  # (c, P)
            cs = [t.reshape(C.shape[0], *sh) for t, sh in zip(C.split(self.sizes, 1), self.shapes)]
            try:
                with torch.enable_grad():
                    hv = torch.autograd.grad(g, self._params, cs, retain_graph=True, allow_unused=True,
                                             is_grads_batched=True)
            except RuntimeError:  # an op without a batching rule: products one at a time
                self._batched_failed = True
                rest = torch.stack([self.matvec(V[:, j]) for j in range(s, V.shape[1])], 1)
                return torch.cat([torch.cat(out, 0).T, rest], 1) if out else rest
            out.append(self._flat(hv, (C.shape[0],)))  # one batch: its weight is 1
            self.n_products += C.shape[0]
        return torch.cat(out, 0).T

    def __matmul__(self, v):
        v = torch.as_tensor(v, dtype=self.dtype, device=self.device)
        return self.matvec(v) if v.dim() == 1 else self.matmat(v)

    def dense(self, max_dim: int = 8000) -> torch.Tensor:
        """The full Hessian (P, P), symmetrized: ``H I`` by batched products with one batch of data,
        else ``torch.func.hessian`` per batch; refused above ``max_dim`` parameters."""
        if self.dim > max_dim:
            raise InvalidInputError(f"the dense Hessian has {self.dim}^2 entries; dense() is limited to "
                                    f"{max_dim} parameters (raise max_dim, or use the matrix-free functions)")
        if len(self.batches) == 1:
            n0 = self.n_products
            H = self.matmat(torch.eye(self.dim, dtype=self.dtype, device=self.device))
            self.n_products = n0
            return (H + H.T) / 2
        H = torch.zeros(self.dim, self.dim, dtype=self.dtype, device=self.device)
        for i, w in enumerate(self.weights):
            x, y = self._batch(i)
            H += w * torch.func.hessian(lambda f: self._loss(self._unflatten(f), x, y))(self.theta)
        return (H + H.T) / 2

    def to_scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` on float64 NumPy vectors."""
        from scipy.sparse.linalg import LinearOperator

        def mv(v):
            return self.matvec(torch.as_tensor(np.asarray(v).reshape(-1))).double().cpu().numpy()

        return LinearOperator(self.shape, matvec=mv, dtype=np.float64)


class _Matrix:
    """A symmetric torch matrix behind the operator interface, its products counted like the Hessian's."""

    def __init__(self, A: torch.Tensor):
        self.A, self.dtype, self.device, self.dim, self.n_products = A, A.dtype, A.device, A.shape[0], 0
        self.work = A.numel()

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.n_products += 1
        return self.A @ v


def _as_operator(op):
    """A HessianOperator as is; a square matrix wrapped as one."""
    if isinstance(op, (HessianOperator, _Matrix)):
        return op
    if isinstance(op, torch.Tensor) and op.dim() == 2 and op.shape[0] == op.shape[1]:
        return _Matrix(op)
    raise InvalidInputError("expected a HessianOperator or a square symmetric torch matrix")


def _engine_threads(fn):
    """Run an engine function on the thread count its operator's work size calls for
    (:func:`relulab.core.threads.threads_for`); the caller's setting is restored afterwards."""
    import functools

    @functools.wraps(fn)
    def wrapper(op, *args, **kwargs):
        from relulab.core.threads import threads_for

        work = getattr(op, "work", None)
        if work is None and isinstance(op, torch.Tensor):
            work = op.numel()
        if work is None:
            return fn(op, *args, **kwargs)
        with threads_for(int(work)):
            return fn(op, *args, **kwargs)

    return wrapper


def _generator(seed) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def _rademacher(shape, gen, dtype, device) -> torch.Tensor:
    return (torch.randint(0, 2, shape, generator=gen, dtype=torch.int8) * 2 - 1).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------------
# Lanczos
# ----------------------------------------------------------------------------------------------------
@dataclass
class LanczosDecomposition(Result):
    """``H Q^T = Q^T T + beta_m q_{m+1} e_m^T``: basis rows ``Q`` (m, P), ``T = tridiag(beta, alpha,
    beta)``; ``beta`` has m entries, the last one the residual norm ``beta_m``. ``invariant``: the
    recurrence broke down (``beta_m ~ 0``), so the Krylov space is invariant and its Ritz values exact."""

    alpha: np.ndarray
    beta: np.ndarray
    basis: torch.Tensor
    invariant: bool = False

    _summary_fields = ("alpha", "beta", "invariant")

    @property
    def steps(self) -> int:
        return len(self.alpha)

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and the eigenvectors ``S`` of ``T`` (columns)."""
        return eigh_tridiagonal(self.alpha, self.beta[:-1]) if self.steps > 1 else (
            self.alpha.copy(), np.ones((1, 1)))


class _LanczosRun:
    """A Lanczos recurrence that can be extended step by step; the basis grows by doubling.

    ``restart``: when the Krylov space becomes invariant before it spans everything, go on from a
    random vector orthogonal to it (``T`` becomes block diagonal, the coupling ``beta`` is 0);
    ``blocks`` holds the first step of every block. Without a restart a single-vector Krylov method
    never sees a second copy of a repeated eigenvalue.
    """

    def __init__(self, op, v0: torch.Tensor, restart: bool = False, seed: int = 0):
        self.op = op = _as_operator(op)
        self.P = op.dim
        dtype, device = op.dtype, op.device
        v0 = torch.as_tensor(v0, dtype=dtype, device=device).reshape(-1)
        nv = torch.linalg.vector_norm(v0)
        if not nv > 0:
            raise InvalidInputError("the start vector is zero")
        self.Q = torch.empty(min(self.P, 32) + 1, self.P, dtype=dtype, device=device)
        self.Q[0] = v0 / nv
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self.invariant = False
        self.eps = torch.finfo(dtype).eps
        self.restart = restart
        self.blocks = [0]
        self._gen = _generator(seed + 7919)

    @property
    def steps(self) -> int:
        return len(self.alpha)

    def extend(self, to: int) -> None:
        to = min(int(to), self.P)
        while self.steps < to and not self.invariant:
            j = self.steps
            if j + 1 >= self.Q.shape[0]:
                grown = torch.empty(min(2 * self.Q.shape[0], self.P + 1), self.P, dtype=self.Q.dtype,
                                    device=self.Q.device)
                grown[:j + 1] = self.Q[:j + 1]
                self.Q = grown
            w = self.op.matvec(self.Q[j])
            a = float(self.Q[j] @ w)
            basis = self.Q[:j + 1]
            for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
                w = w - basis.T @ (basis @ w)
            b = float(torch.linalg.vector_norm(w))
            self.alpha.append(a)
            self.beta.append(b)
            scale = max(max(abs(x) for x in self.alpha), max(self.beta)) or 1.0
            # a true breakdown leaves rounding, about eps |T|; a missed one only costs a step, because the
            # re-orthogonalized remainder then acts as a restart vector
            if b <= 10 * self.eps * scale or j + 1 == self.P:
                self.beta[-1] = 0.0
                if self.restart and j + 1 < self.P:
                    self.Q[j + 1] = self._orthogonal_start(basis)
                    self.blocks.append(j + 1)
                    break  # the caller sees the breakdown (beta 0) before the new block starts
                self.invariant = True  # invariant, or a full basis: the residual is rounding
                break
            self.Q[j + 1] = w / b

    def _orthogonal_start(self, basis: torch.Tensor) -> torch.Tensor:
        for _ in range(5):
            r = torch.randn(self.P, generator=self._gen, dtype=basis.dtype).to(basis.device)
            for _ in range(2):
                r = r - basis.T @ (basis @ r)
            nr = torch.linalg.vector_norm(r)
            if nr > 1e-8:
                return r / nr
        raise RelulabError("could not draw a start vector orthogonal to the Krylov basis")

    def decomposition(self) -> LanczosDecomposition:
        m = self.steps
        return LanczosDecomposition(np.array(self.alpha), np.array(self.beta), self.Q[:m], self.invariant)


@_engine_threads
def lanczos(op, steps: int, v0: torch.Tensor | None = None, seed: int = 0) -> LanczosDecomposition:
    """``steps`` Lanczos steps with full re-orthogonalization from ``v0`` (Gaussian if None).

    ``op`` is a :class:`HessianOperator` or a symmetric matrix. Stops early when the Krylov space
    becomes invariant (``beta <= 10 eps ||T||``; then the Ritz values are eigenvalues of ``op``).
    """
    op = _as_operator(op)
    P = op.dim
    dtype, device = op.dtype, op.device
    if steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps}")
    if v0 is None:
        v0 = torch.randn(P, generator=_generator(seed), dtype=dtype).to(device)
    run = _LanczosRun(op, v0)
    run.extend(steps)
    return run.decomposition()


# ----------------------------------------------------------------------------------------------------
# eigenpairs
# ----------------------------------------------------------------------------------------------------
@dataclass
class HessianEigenpairs(Result):
    """Extreme eigenpairs of a symmetric operator by Lanczos.

    ``largest`` descending and ``smallest`` ascending (the most negative first); ``*_residuals``:
    measured ``||H y - lambda y||`` (``nan`` when not measured); each value lies within its residual of
    a true eigenvalue. ``converged``: every wanted pair met ``residual <= tol * norm_estimate``.
    ``largest_vectors`` / ``smallest_vectors``: unit eigenvectors as rows (when kept).
    """

    largest: np.ndarray
    smallest: np.ndarray
    largest_residuals: np.ndarray
    smallest_residuals: np.ndarray
    norm_estimate: float
    tol: float
    steps: int
    n_products: int
    converged: bool
    seconds: float
    largest_vectors: torch.Tensor | None = None
    smallest_vectors: torch.Tensor | None = None

    _summary_fields = ("largest", "smallest", "largest_residuals", "smallest_residuals", "norm_estimate", "tol",
                       "steps", "n_products", "converged", "seconds")


def _last_block_settled(dec: LanczosDecomposition, blocks: list, ends, kth: dict, small: float) -> bool:
    """Whether the newest Krylov block can hide a wanted eigenvalue.

    While it grows, its own extreme Ritz values must have converged. Once it has broken down (``beta = 0``
    before P steps) its Ritz values are exact and, its start being random, it has met every eigenvalue
    left in the complement of the earlier blocks: a further restart can only find copies of them. So it
    is settled unless its extreme value at a wanted end is among the wanted (``kth``: the k-th wanted
    value there), where a copy would be wanted too."""
    # a breakdown has already opened the next block (no step in it yet): judge the block that broke down
    start = blocks[-1] if blocks[-1] < dec.steps else blocks[-2]
    a, b = dec.alpha[start:], dec.beta[start:]
    th, S = eigh_tridiagonal(a, b[:-1]) if len(a) > 1 else (a.copy(), np.ones((1, 1)))
    if dec.beta[-1] == 0.0 and not dec.invariant:
        return all((th[-1] <= kth[e] + small) if e == "largest" else (th[0] >= kth[e] - small) for e in ends)
    if start == 0:
        return True
    bnd = np.abs(b[-1] * S[-1, :])
    return all(bnd[-1 if e == "largest" else 0] <= small for e in ends)


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} bytes"


def _steps_within(P: int, dtype: torch.dtype, steps: int, memory_budget: float | None, need: int, what: str) -> int:
    """The number of Lanczos basis vectors (P numbers each) that fit ``memory_budget`` bytes, at most ``steps``;
    an error when not even ``need`` fit."""
    if memory_budget is None:
        return steps
    per = P * torch.finfo(dtype).bits // 8
    fit = int(memory_budget // per) - 1  # one vector more than the steps is held while extending
    if fit < need:
        raise InvalidInputError(f"{what}: {need} Lanczos vectors of {P} parameters need {_size((need + 1) * per)}, "
                                f"more than memory_budget = {_size(memory_budget)}; raise the budget or use float32")
    return min(steps, fit)


@_engine_threads
def hessian_eigenpairs(op, k: int = 5, which: str = "both", tol: float = 1e-8, max_steps: int = 300,
                       seed: int = 0, vectors: bool = True, verify: bool = True, check_every: int = 5,
                       memory_budget: float | None = 2 * 2**30, _return_lanczos: bool = False):
    """The ``k`` largest and/or ``k`` smallest (algebraically: the most negative) eigenpairs.

    ``which``: ``"largest"``, ``"smallest"`` or ``"both"`` (one Krylov space serves both ends).
    The space grows from ``2k + 10`` steps until every wanted Ritz pair has residual bound
    ``|beta_m s_{m,i}| <= tol * ||T_m||`` (checked every ``check_every`` steps) or ``max_steps`` is
    reached (then ``converged=False``). When the space becomes invariant early it restarts orthogonally
    (so exactly repeated eigenvalues and large null spaces are found); a cluster of distinct but
    nearly equal eigenvalues is resolved only as far as rounding lets one Krylov vector see it.
    ``verify``: re-measure each residual with one product. Memory: the basis, up to ``max_steps`` vectors
    of length P, capped by ``memory_budget`` bytes (default 2 GiB; ``None``: no cap); a capped run that
    has not converged says so (``converged=False``).
    """
    if which not in ("largest", "smallest", "both"):
        raise InvalidInputError(f"which must be 'largest', 'smallest' or 'both', got {which!r}")
    op = _as_operator(op)
    P = op.dim
    if not 1 <= k <= P:
        raise InvalidInputError(f"k must be between 1 and the number of parameters {P}, got {k}")
    if not tol > 0:
        raise InvalidInputError(f"tol must be positive, got {tol}")
    t0 = time.perf_counter()
    n0 = op.n_products
    ends = ("largest", "smallest") if which == "both" else (which,)
    dtype, device = op.dtype, op.device
    max_steps = _steps_within(P, dtype, max_steps, memory_budget, min(P, max(2 * k + 10, 20)), "hessian_eigenpairs")
    run = _LanczosRun(op, torch.randn(P, generator=_generator(seed), dtype=dtype).to(device), restart=True,
                      seed=seed)
    run.extend(min(P, max(2 * k + 10, 20), max_steps))
    while True:
        dec = run.decomposition()
        theta, S = dec.ritz()
        m = dec.steps
        bound = np.abs(dec.beta[-1] * S[-1, :])
        norm = float(np.max(np.abs(theta)))
        kk = min(k, m)
        idx = {"largest": np.arange(m - 1, m - 1 - kk, -1), "smallest": np.arange(kk)}
        wanted = np.concatenate([idx[e] for e in ends])
        small = tol * max(norm, 1e-300)
        kth = {"largest": theta[m - kk], "smallest": theta[kk - 1]}
        ok = dec.invariant or (kk == k and bool(np.all(bound[wanted] <= small)) and _last_block_settled(
            dec, run.blocks, ends, kth, small))
        if ok or m >= min(P, max_steps):
            break
        run.extend(min(P, max_steps, m + check_every))
    Sw = torch.as_tensor(S, dtype=dec.basis.dtype, device=dec.basis.device)
    out = {}
    for e in ends:
        ii = idx[e]
        vals = theta[ii]
        Y = (Sw[:, torch.as_tensor(ii.copy())].T @ dec.basis) if (vectors or verify) else None
        res = np.full(len(ii), np.nan)
        if verify:
            for r in range(len(ii)):
                res[r] = float(torch.linalg.vector_norm(op.matvec(Y[r]) - vals[r] * Y[r]))
        else:
            res = bound[ii]
        out[e] = (vals, res, Y if vectors else None)
    empty = (np.zeros(0), np.zeros(0), None)
    lg, sm = out.get("largest", empty), out.get("smallest", empty)
    result = HessianEigenpairs(
        largest=lg[0], smallest=sm[0], largest_residuals=lg[1], smallest_residuals=sm[1], norm_estimate=norm,
        tol=tol, steps=dec.steps, n_products=op.n_products - n0, converged=bool(ok),
        seconds=time.perf_counter() - t0, largest_vectors=lg[2], smallest_vectors=sm[2])
    return (result, dec) if _return_lanczos else result


# ----------------------------------------------------------------------------------------------------
# trace
# ----------------------------------------------------------------------------------------------------
@dataclass
class TraceEstimate(Result):
    """``tr(H) ~ estimate`` with ``stderr`` (from the Hutchinson terms; 0 when exact), the method and
    the number of operator products it took (``n_products``) and the dimension of the exactly
    handled subspace (``deflated``). ``complete`` is False when a time limit stopped the sampling
    before ``queries`` samples (``queries`` then counts the samples used)."""

    estimate: float
    stderr: float
    method: str
    queries: int
    deflated: int
    n_products: int
    seconds: float
    complete: bool = True


class _Welford:
    """Running mean and sum of squared deviations, merged block by block (Chan, Golub, LeVeque 1979):
    the Hutchinson terms are never all held."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, terms: torch.Tensor) -> None:
        nb = terms.numel()
        if nb == 0:
            return
        mb = float(terms.mean())
        m2b = float(((terms - mb) ** 2).sum())
        n = self.n + nb
        delta = mb - self.mean
        self.mean += delta * nb / n
        self.m2 += m2b + delta * delta * self.n * nb / n
        self.n = n


def _hutchinson_terms(op, G: torch.Tensor, Q: torch.Tensor | None) -> torch.Tensor:
    """``g^T (I - QQ^T) H (I - QQ^T) g`` for every row g of G."""
    out = torch.empty(G.shape[0], dtype=torch.float64)
    for i in range(G.shape[0]):
        g = G[i]
        if Q is not None:
            g = g - Q.T @ (Q @ g)
        hg = op.matvec(g)
        out[i] = float(g @ hg)
    return out


def _trace_queries(queries) -> int:
    if isinstance(queries, bool) or not isinstance(queries, (int, np.integer)) or queries < 1:
        raise InvalidInputError(f"queries must be a positive integer, got {queries!r}")
    return int(queries)


@_engine_threads
def hessian_trace(op, queries: int = 99, method: str = "hutch++", seed: int = 0,
                  lanczos_basis: LanczosDecomposition | None = None, *,
                  memory_budget: float | None = 2 * 2**30, time_limit: float | None = None) -> TraceEstimate:
    """Estimate ``tr(H)`` with about ``queries`` operator products.

    ``"hutch++"``: ``queries // 3`` products build ``Q = orth(H S)``, ``queries // 3`` give
    ``tr(Q^T H Q)`` exactly, the rest are Hutchinson samples on the complement of ``Q``.
    ``"hutchinson"``: plain Rademacher samples ``g^T H g``.
    ``"deflated"``: needs ``lanczos_basis``; ``sum alpha`` on its span plus ``queries`` Hutchinson
    samples on the complement. ``"exact"``: P products with the unit vectors (small P only).

    Budgets: the Hutchinson samples are drawn and reduced in blocks (running mean and variance), so
    their memory does not grow with ``queries``; Hutch++'s sketch (``3 (queries // 3) P`` numbers) must
    fit ``memory_budget`` bytes (``None``: no cap) or :class:`~relulab.core.errors.ResourceLimitError`
    is raised before it is allocated. ``time_limit`` (seconds): Hutchinson sampling stops when it is
    reached; the estimate then uses the samples drawn so far (still unbiased; ``queries`` says how many,
    ``complete`` is False).
    """
    from relulab.core.errors import ResourceLimitError

    op = _as_operator(op)
    P = op.dim
    dtype, device = op.dtype, op.device
    queries = _trace_queries(queries)
    if memory_budget is not None and not (isinstance(memory_budget, (int, float)) and memory_budget > 0):
        raise InvalidInputError(f"memory_budget must be a positive number of bytes or None, got {memory_budget!r}")
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise InvalidInputError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + float(time_limit)
    n0 = op.n_products
    gen = _generator(seed)
    item = torch.empty((), dtype=dtype).element_size()
    exact_part, Q = 0.0, None
    if method == "exact" or (method != "deflated" and queries >= P):
        method = "exact"
        total, e = 0.0, torch.zeros(P, dtype=dtype, device=device)
        for i in range(P):  # one unit vector at a time: memory O(P), not P^2
            e[i] = 1.0
            total += float(op.matvec(e)[i])
            e[i] = 0.0
        return TraceEstimate(total, 0.0, method, P, P, op.n_products - n0, time.perf_counter() - t0)
    if method == "hutch++":
        s = max(1, queries // 3)
        need = 3 * s * P * item
        if memory_budget is not None and need > memory_budget:
            raise ResourceLimitError(
                f"hessian_trace: Hutch++ with queries={queries} holds 3 x {s} vectors of {P} numbers "
                f"({_size(need)}), more than memory_budget = {_size(memory_budget)}; use fewer queries, "
                "method='hutchinson' (memory independent of queries) or raise memory_budget")
        S = _rademacher((s, P), gen, dtype, device)
        HS = torch.stack([op.matvec(S[i]) for i in range(s)])
        del S
        Q = torch.linalg.qr(HS.T, mode="reduced")[0].T.contiguous()  # (s, P) orthonormal rows
        del HS
        exact_part = float(sum(float(Q[i] @ op.matvec(Q[i])) for i in range(Q.shape[0])))
        r = max(1, queries - 2 * s)
    elif method == "deflated":
        if lanczos_basis is None:
            raise InvalidInputError("method='deflated' needs lanczos_basis (from lanczos or hessian_eigenpairs)")
        Q = lanczos_basis.basis
        exact_part = float(np.sum(lanczos_basis.alpha))
        r = queries
        if lanczos_basis.invariant and Q.shape[0] >= P:
            return TraceEstimate(exact_part, 0.0, method, 0, Q.shape[0], 0, time.perf_counter() - t0)
    elif method == "hutchinson":
        r = queries
    else:
        raise InvalidInputError(f"method must be 'hutch++', 'hutchinson', 'deflated' or 'exact', got {method!r}")
    # sign vectors in blocks of at most ~1/8 of the budget (and 256 rows); one product each
    cap = 256 if memory_budget is None else max(1, min(256, int(memory_budget // (8 * P * item))))
    stats, done, complete = _Welford(), 0, True
    while done < r:
        if deadline is not None and done > 0 and time.perf_counter() > deadline:
            complete = False
            break
        b = min(cap, r - done)
        G = _rademacher((b, P), gen, dtype, device)
        if deadline is None:
            stats.add(_hutchinson_terms(op, G, Q))
        else:
            for i in range(b):  # check the clock between products
                stats.add(_hutchinson_terms(op, G[i:i + 1], Q))
                if time.perf_counter() > deadline and done + i + 1 < r:
                    b, complete = i + 1, False
                    break
        done += b
        if not complete:
            break
    est = exact_part + stats.mean
    se = math.sqrt(stats.m2 / (stats.n - 1) / stats.n) if stats.n > 1 else float("nan")
    used = op.n_products - n0
    return TraceEstimate(est, se, method, used if method == "hutch++" else stats.n, 0 if Q is None else Q.shape[0],
                         used, time.perf_counter() - t0, complete=complete)


# ----------------------------------------------------------------------------------------------------
# spectral density
# ----------------------------------------------------------------------------------------------------
@dataclass
class SpectralDensity(Result):
    """Stochastic Lanczos quadrature: ``nodes`` (vectors, steps) Ritz values and ``weights`` (each
    row sums to 1). The spectral measure ``(1/P) sum_i delta(t - lambda_i)`` is approximated by
    ``mean_v sum_i weights[v, i] delta(t - nodes[v, i])``; ``density(grid, sigma)`` smooths it.
    ``bounds``: each node's Ritz residual ``|beta_m s_{m,i}|``, the scale below which the quadrature does
    not resolve the spectrum there (0 for nodes of an invariant space)."""

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    steps: int
    n_products: int
    seconds: float
    bounds: np.ndarray | None = None

    _summary_fields = ("dim", "steps", "n_products", "seconds")

    def density(self, grid, sigma: float | None = None) -> np.ndarray:
        """Gaussian-smoothed density on ``grid`` (integrates to about 1); ``sigma`` defaults to 1% of
        the node range."""
        grid = np.asarray(grid, dtype=float)
        lo, hi = float(self.nodes.min()), float(self.nodes.max())
        sigma = sigma or max((hi - lo) / 100, 1e-12)
        z = (grid[:, None] - self.nodes.reshape(-1)[None]) / sigma
        g = np.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))
        return g @ self.weights.reshape(-1) / self.nodes.shape[0]

    def mass_below(self, t: float) -> float:
        """Estimated fraction of eigenvalues below ``t``."""
        return float((self.weights * (self.nodes < t)).sum() / self.nodes.shape[0])

    def plot(self, ax=None, sigma: float | None = None, log: bool = True, **kwargs):
        """The smoothed density (log scale by default); returns the Axes."""
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(5, 3.5))
        lo, hi = float(self.nodes.min()), float(self.nodes.max())
        pad = 0.05 * (hi - lo or 1.0)
        grid = np.linspace(lo - pad, hi + pad, 600)
        d = self.density(grid, sigma)
        (ax.semilogy if log else ax.plot)(grid, np.maximum(d, 1e-12) if log else d, **kwargs)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        ax.set_title(f"Hessian spectral density (SLQ, {self.nodes.shape[0]} vectors x {self.steps} steps)")
        ax.grid(True, alpha=0.3)
        return ax


@_engine_threads
def spectral_density(op, n_vectors: int = 8, steps: int = 80, seed: int = 0,
                     memory_budget: float | None = 2 * 2**30) -> SpectralDensity:
    """Stochastic Lanczos quadrature with ``n_vectors`` Rademacher start vectors of ``steps`` steps each
    (one run at a time: memory ``steps`` vectors of length P, within ``memory_budget`` bytes)."""
    op = _as_operator(op)
    P = op.dim
    dtype, device = op.dtype, op.device
    if n_vectors < 1 or steps < 1:
        raise InvalidInputError("n_vectors and steps must be positive integers")
    t0 = time.perf_counter()
    n0 = op.n_products
    gen = _generator(seed)
    m = min(steps, P)
    _steps_within(P, dtype, m, memory_budget, m, "spectral_density")
    nodes = np.zeros((n_vectors, m))
    weights = np.zeros((n_vectors, m))
    bounds = np.zeros((n_vectors, m))
    for v in range(n_vectors):
        dec = lanczos(op, m, v0=_rademacher((P,), gen, dtype, device))
        th, S = dec.ritz()
        j = len(th)  # an invariant space ends early: pad with zero-weight copies
        nodes[v, :j], weights[v, :j] = th, S[0, :] ** 2
        bounds[v, :j] = np.abs(dec.beta[-1] * S[-1, :])
        nodes[v, j:] = th[-1]
    return SpectralDensity(nodes, weights, P, m, op.n_products - n0, time.perf_counter() - t0,
                           bounds)


# ----------------------------------------------------------------------------------------------------
# inertia
# ----------------------------------------------------------------------------------------------------
@dataclass
class Inertia(Result):
    """Counts of eigenvalues ``< -tol``, within ``[-tol, tol]`` and ``> tol``. ``exact``: from the dense
    Hessian's eigenvalues; otherwise estimated as ``P * mass`` from a spectral density (rounded), a node
    counting as nonzero only beyond ``tol`` plus its Ritz residual (finer structure is not resolved).
    ``tol = max(P eps ||H||, gradient_norm)`` unless given."""

    negative: int
    zero: int
    positive: int
    tol: float
    gradient_norm: float
    spectral_norm: float
    exact: bool
    eigenvalues: np.ndarray | None = None

    _summary_fields = ("negative", "zero", "positive", "tol", "gradient_norm", "spectral_norm", "exact")


@_engine_threads
def hessian_inertia(op: HessianOperator, tol: float | None = None, max_dense: int = 3000,
                    density: SpectralDensity | None = None, seed: int = 0) -> Inertia:
    """Inertia of the Hessian: exact (dense eigenvalues) for ``P <= max_dense``, else from ``density``
    (computed if not given) with ``exact=False``."""
    P = op.dim
    gnorm = float(torch.linalg.vector_norm(op.gradient()))
    eps = torch.finfo(op.dtype).eps
    if P <= max_dense:
        ev = torch.linalg.eigvalsh(op.dense(max_dim=max_dense)).double().cpu().numpy()
        norm = float(np.max(np.abs(ev)))
        t = tol if tol is not None else max(P * eps * norm, gnorm)
        return Inertia(int((ev < -t).sum()), int((np.abs(ev) <= t).sum()), int((ev > t).sum()), t, gnorm, norm,
                       True, ev)
    dens = density or spectral_density(op, seed=seed)
    if dens.dim != P:
        raise InvalidInputError(f"the spectral density is of a {dens.dim}-dimensional operator, the Hessian has {P}")
    norm = float(np.max(np.abs(dens.nodes)))
    t = tol if tol is not None else max(P * eps * norm, gnorm)
    # a node counts as nonzero only when it is farther from 0 than tol plus its own Ritz residual: the
    # quadrature cannot place eigenvalues more finely than that, and unresolved mass near 0 counts as zero
    r = dens.bounds if dens.bounds is not None else np.zeros_like(dens.nodes)
    nv = dens.nodes.shape[0]
    neg = int(round(P * float((dens.weights * (dens.nodes < -(t + r))).sum()) / nv))
    pos = int(round(P * float((dens.weights * (dens.nodes > t + r)).sum()) / nv))
    neg, pos = min(max(neg, 0), P), min(max(pos, 0), P - min(max(neg, 0), P))
    return Inertia(neg, P - neg - pos, pos, t, gnorm, norm, False)


# ----------------------------------------------------------------------------------------------------
# kinks
# ----------------------------------------------------------------------------------------------------
@dataclass
class KinkReport(Result):
    """Where the data sit on kinks of a piecewise-linear model, for the current parameters.

    ``piecewise_linear``: the model converted to a PLNet (else ``reason`` says why and the counts are
    0). ``on_kink``: (sample, unit) pairs whose two best pieces tie exactly, where autograd's
    derivatives are one-sided; ``near_kink``: pairs with ``margin <= rtol * scale`` (``scale``: the
    largest piece magnitude of that layer over the data), where the Hessian is valid only in a tiny
    neighbourhood; ``samples_on_kink``: samples with at least one exact tie. ``min_relative_margin``:
    the smallest ``margin / scale``. ``layers``: the same per max layer. Ties between pieces that are
    the same function of the parameters (two dead ReLUs in a max-pool window, convolutions of identical
    input patches) are no kinks and are not counted: a flagged pair is re-evaluated at randomly moved
    parameters (relative size 1e-4), where a real kink opens and an identity stays closed.
    """

    piecewise_linear: bool
    on_kink: int
    near_kink: int
    samples_on_kink: int
    n_samples: int
    min_relative_margin: float
    rtol: float
    layers: list = field(default_factory=list)
    reason: str = ""

    @property
    def one_sided(self) -> bool:
        return self.on_kink > 0


def _perturbed_copy(module: nn.Module, seed: int = 0, size: float = 1e-4) -> nn.Module:
    """The module with every parameter moved by about ``size`` of its scale in a random direction."""
    other = copy.deepcopy(module)
    gen = torch.Generator().manual_seed(seed)
    ps = [p for p in other.parameters() if p.numel()]
    # a parameter that is 0 (a zeroed bias) must move too: the scale of the whole model, not of the entry
    overall = float(torch.cat([p.detach().abs().reshape(-1).double().cpu() for p in ps]).mean()) if ps else 0.0
    with torch.no_grad():
        for p in ps:
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(device=p.device, dtype=p.dtype)
            p.add_(noise * size * (p.abs() + (overall or 1.0)))
    return other


def kink_report(model, inputs, rtol: float = 1e-9, input_shape=None, seed: int = 0) -> KinkReport:
    """Count the (sample, unit) pairs on and near kinks; see :class:`KinkReport`."""
    from relulab.core.errors import UnsupportedLayerError
    from relulab.core.plnet import PLNet

    x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs))
    n = int(x.shape[0])
    try:
        if isinstance(model, PLNet):
            net, module = model, model.to_torch()
        else:
            module = model
            net = PLNet.from_torch(model, input_shape or tuple(x.shape[1:]))
    except UnsupportedLayerError as e:
        return KinkReport(False, 0, 0, 0, n, float("inf"), rtol, [], str(e).splitlines()[0])
    xs = x.to(dtype=net.dtype, device=net.device)
    with torch.no_grad():
        tr = net.trace(xs)
    moved = None
    on_any = torch.zeros(n, dtype=torch.bool)
    layers, on_total, near_total, min_rel = [], 0, 0, float("inf")
    for l, (node_i, p) in enumerate(zip(net.max_layers, tr.pieces)):
        layer = net.nodes[node_i].layer
        if p.shape[-1] < 2:
            continue
        top2 = p.topk(2, dim=-1)
        margin = top2.values[..., 0] - top2.values[..., 1]
        scale = float(p.masked_fill(~torch.isfinite(p), 0).abs().max()) or 1.0
        flagged = margin <= rtol * scale
        if bool(flagged.any()):
            # pieces that are one and the same function of the parameters (two dead ReLUs in a pool window,
            # a convolution of two identical input patches) tie for every parameter: no kink. They are
            # told apart by moving the parameters: a real kink opens, an identity stays closed.
            if moved is None:
                other = PLNet.from_torch(_perturbed_copy(module, seed), net.input_shape)
                with torch.no_grad():
                    moved = other.trace(xs).pieces
            q = moved[l]
            qa = q.gather(-1, top2.indices[..., :1])[..., 0]
            qb = q.gather(-1, top2.indices[..., 1:])[..., 0]
            qscale = float(q.masked_fill(~torch.isfinite(q), 0).abs().max()) or 1.0
            same = (qa - qb).abs() <= margin + 1e-12 * qscale
            margin = torch.where(flagged & same, torch.full_like(margin, math.inf), margin)
        tie = margin == 0
        near = margin <= rtol * scale
        on_any |= tie.any(1).cpu()
        rel = float((margin / scale).min()) if margin.numel() else float("inf")
        min_rel = min(min_rel, rel)
        layers.append({"layer": l, "kind": layer.kind, "units": int(margin.shape[1]), "on_kink": int(tie.sum()),
                       "near_kink": int(near.sum()), "min_relative_margin": rel})
        on_total += int(tie.sum())
        near_total += int(near.sum())
    return KinkReport(True, on_total, near_total, int(on_any.sum()), n, min_rel, rtol, layers)


# ----------------------------------------------------------------------------------------------------
# one call for the whole picture
# ----------------------------------------------------------------------------------------------------
@dataclass
class HessianSpectrum(Result):
    """Hessian of a model's loss at its current parameters: loss, gradient norm, extreme eigenpairs,
    trace, spectral density, inertia and the kink report (see the functions of the same names)."""

    n_parameters: int
    n_samples: int
    loss: float
    gradient_norm: float
    eigenpairs: HessianEigenpairs
    trace: TraceEstimate | None
    density: SpectralDensity | None
    inertia: Inertia | None
    kinks: KinkReport | None
    dtype: str
    device: str
    n_products: int
    seconds: float
    eval_mode_modules: tuple = ()

    def to_dict(self, summary: bool = False) -> dict:
        d = super().to_dict(summary=False)
        if summary:
            d["eigenpairs"] = self.eigenpairs.to_dict(summary=True)
            if self.density is not None:
                d["density"] = self.density.to_dict(summary=True)
            if self.inertia is not None:
                d["inertia"] = self.inertia.to_dict(summary=True)
        else:
            for k in ("largest_vectors", "smallest_vectors"):
                d["eigenpairs"].pop(k, None)
        return d

    def table(self) -> str:
        e = self.eigenpairs
        lines = [f"P = {self.n_parameters} parameters, n = {self.n_samples} samples, loss = {self.loss:.6g}, "
                 f"|grad| = {self.gradient_norm:.3g}"]
        if self.eval_mode_modules:
            lines.append("evaluated in eval mode (the model was in training mode): "
                         + ", ".join(self.eval_mode_modules))
        if len(e.largest):
            lines.append("largest:  " + "  ".join(f"{v:.6g}" for v in e.largest))
        if len(e.smallest):
            lines.append("smallest: " + "  ".join(f"{v:.6g}" for v in e.smallest))
        lines.append(f"Lanczos: {e.steps} steps, {'converged' if e.converged else 'NOT converged'} "
                     f"(tol {e.tol:g}), max residual {np.nanmax(np.r_[e.largest_residuals, e.smallest_residuals]):.2g}")
        if self.trace is not None:
            lines.append(f"trace ~ {self.trace.estimate:.6g} +- {self.trace.stderr:.2g} ({self.trace.method}"
                         + ("" if self.trace.complete else f"; time limit: {self.trace.queries} samples") + ")")
        if self.inertia is not None:
            i = self.inertia
            lines.append(f"inertia ({'exact' if i.exact else 'estimated'}, tol {i.tol:.2g}): "
                         f"{i.negative} negative, {i.zero} zero, {i.positive} positive")
        if self.kinks is not None:
            k = self.kinks
            if not k.piecewise_linear:
                lines.append(f"kinks: not checked ({k.reason})")
            else:
                lines.append(f"kinks: {k.on_kink} (sample, unit) pairs exactly on a kink in {k.samples_on_kink} of "
                             f"{k.n_samples} samples" + (" -> autograd's Hessian is one-sided there" if k.on_kink
                                                         else "") + f"; {k.near_kink} within rtol {k.rtol:g}")
        return "\n".join(lines)

    def plot(self, ax=None):
        """The spectral density with the computed extreme eigenvalues marked; returns the Axes."""
        if self.density is None:
            raise InvalidInputError("no spectral density was computed (density=False)")
        ax = self.density.plot(ax=ax)
        for v in np.r_[self.eigenpairs.largest, self.eigenpairs.smallest]:
            ax.axvline(v, color="C3", lw=0.6, alpha=0.7)
        return ax


def hessian_spectrum(model: nn.Module, loss, inputs, targets, *, top: int = 5, bottom: int = 5,
                     tol: float = 1e-6, max_steps: int = 300, trace_queries: int = 60, density: bool = True,
                     density_vectors: int = 4, density_steps: int = 60, inertia: bool = True,
                     max_dense: int = 3000, kinks: bool = True, batch_size: int | None = None,
                     dtype: torch.dtype | None = torch.float64, device=None, seed: int = 0,
                     memory_budget: float | None = 2 * 2**30, train_mode: str = "refuse",
                     trace_time_limit: float | None = None) -> HessianSpectrum:
    """Everything :mod:`relulab.landscape.hessian` measures, at the model's current parameters.

    One Lanczos run gives the ``top`` largest and ``bottom`` smallest eigenvalues; its basis deflates
    the trace estimate (``trace_queries`` Hutchinson samples on the complement). ``bottom=0`` or
    ``top=0`` skips an end; ``trace_queries=0``, ``density=False``, ``inertia=False``, ``kinks=False``
    skip those parts. ``memory_budget``: bytes for a Lanczos basis (default 2 GiB, see
    :func:`hessian_eigenpairs`). ``train_mode``: ``"refuse"`` (default) raises for a model in training
    mode whose output depends on the mode, ``"eval"`` evaluates it in eval mode and lists the switched
    modules in the result's ``eval_mode_modules`` (see :class:`HessianOperator`).
    ``trace_time_limit`` (seconds): stop the trace's sampling there (see :func:`hessian_trace`).
    """
    t0 = time.perf_counter()
    op = HessianOperator(model, loss, inputs, targets, batch_size=batch_size, dtype=dtype, device=device,
                         train_mode=train_mode)
    from relulab.core.threads import threads_for

    with threads_for(op.work):
        return _spectrum(op, t0, top, bottom, tol, max_steps, trace_queries, density, density_vectors, density_steps,
                         inertia, max_dense, kinks, seed, memory_budget, trace_time_limit)


def _spectrum(op, t0, top, bottom, tol, max_steps, trace_queries, density, density_vectors, density_steps, inertia,
              max_dense, kinks, seed, memory_budget, trace_time_limit) -> HessianSpectrum:
    if top < 0 or bottom < 0 or top + bottom == 0:
        raise InvalidInputError("top and bottom must be non-negative and not both zero")
    which = "both" if top and bottom else ("largest" if top else "smallest")
    eig, dec = hessian_eigenpairs(op, k=max(top, bottom), which=which, tol=tol, max_steps=max_steps, seed=seed,
                                  memory_budget=memory_budget, _return_lanczos=True)
    eig.largest, eig.largest_residuals = eig.largest[:top], eig.largest_residuals[:top]
    eig.smallest, eig.smallest_residuals = eig.smallest[:bottom], eig.smallest_residuals[:bottom]
    if eig.largest_vectors is not None:
        eig.largest_vectors = eig.largest_vectors[:top]
    if eig.smallest_vectors is not None:
        eig.smallest_vectors = eig.smallest_vectors[:bottom]
    tr = hessian_trace(op, trace_queries, method="deflated", seed=seed + 1, lanczos_basis=dec,
                       memory_budget=memory_budget, time_limit=trace_time_limit) if trace_queries else None
    del dec  # the Krylov basis is the large part; the density's runs reuse its memory budget
    dens = spectral_density(op, density_vectors, density_steps, seed=seed + 2, memory_budget=memory_budget) \
        if density else None
    inert = hessian_inertia(op, max_dense=max_dense, density=dens, seed=seed + 3) \
        if inertia and (op.dim <= max_dense or dens is not None) else None
    g = float(torch.linalg.vector_norm(op.gradient()))
    kr = kink_report(op.model, op.inputs) if kinks else None
    return HessianSpectrum(op.dim, int(op.inputs.shape[0]), op.loss_value(), g, eig, tr, dens, inert, kr,
                           str(op.dtype), str(op.device), op.n_products, time.perf_counter() - t0,
                           eval_mode_modules=op.eval_mode_modules)
