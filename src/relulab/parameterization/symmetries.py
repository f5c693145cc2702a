r"""The symmetry group of ReLU network parameterizations, canonical balanced representatives, and the
distance between parameter vectors modulo the symmetries.

Berner, Elbrachter, Grohs and Jentzen, *How degenerate is the parametrization of neural networks with
the ReLU activation function?* (NeurIPS 2019). A fully connected ReLU network with layers
(W_1, b_1), ..., (W_L, b_L) (ReLU after every layer but the last) computes the same function after

* **permuting** the neurons of a hidden layer l (rows of W_l and b_l, columns of W_{l+1}), and
* **positive rescaling** of a hidden neuron: (row i of W_l, b_l[i]) -> lambda (row, b_l[i]) and column i of
  W_{l+1} -> column / lambda, lambda > 0 (relu is positively homogeneous).

These generate the symmetry group G = prod_l (S_{h_l} x (R_{>0})^{h_l}) (a semidirect product). Other
realization-preserving changes (dead neurons, neurons whose kink lies outside the domain, splitting a
neuron into parallel copies) are *not* symmetries: they are the degeneracies the paper studies.

**Balanced representative.** Along a rescaling orbit, with s = log lambda per hidden neuron,
|g theta|^2 = sum_l sum_{i,j} W_l[i, j]^2 e^{2 (s_{l,i} - s_{l-1,j})} + sum_l b_l[i]^2 e^{2 s_{l,i}} (s of the
input and output layers 0) is a sum of exponentials of linear forms: convex in s, and strictly convex with
a minimizer when every hidden neuron has non-zero incoming (weights and bias) and outgoing weights. Its
stationarity condition is |incoming_i|^2 = |outgoing_i|^2 for every hidden neuron: the minimizer is the
**balanced** representative, unique in the rescaling orbit. Sorting the neurons of each layer then fixes
the permutations: :func:`canonical` is a canonical form of the orbit (neurons with a zero incoming or
outgoing vector contribute nothing and are set to zero entirely, which is reported: that step leaves
the orbit but not the realization).

**Distance modulo symmetries.** d(theta, eta) = min over permutations pi of |bal(theta) - pi bal(eta)|,
a pseudo-metric on orbits (permutations are isometries and bal is constant on orbits). With one hidden
layer the minimum is a linear assignment problem (exact, Hungarian method); deeper networks are searched
over all products of permutations when there are at most ``max_permutations`` of them, else matched
layer by layer (an upper bound, reported as not exact).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import Result

__all__ = ["ReluParams", "relu_params", "rescale", "permute", "balance", "canonical", "CanonicalForm",
           "symmetry_distance", "SymmetryDistance"]


@dataclass
class ReluParams:
    """Parameters of a fully connected ReLU network: ``weights[l]`` (d_{l+1}, d_l), ``biases[l]`` (d_{l+1},),
    ReLU after every layer but the last."""

    weights: list
    biases: list

    @property
    def widths(self) -> tuple:
        return (self.weights[0].shape[1],) + tuple(W.shape[0] for W in self.weights)

    def vector(self) -> np.ndarray:
        """All parameters as one vector (layer by layer: W_l row-major, then b_l)."""
        return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(self.weights, self.biases)])

    def __call__(self, x) -> np.ndarray:
        h = np.asarray(x, dtype=np.float64)
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ W.T + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h

    def to_torch(self) -> torch.nn.Sequential:
        mods = []
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(W))
                lin.bias.copy_(torch.as_tensor(b))
            mods.append(lin)
            if i < len(self.weights) - 1:
                mods.append(torch.nn.ReLU())
        return torch.nn.Sequential(*mods)

    def copy(self) -> "ReluParams":
        return ReluParams([W.copy() for W in self.weights], [b.copy() for b in self.biases])


def relu_params(net) -> ReluParams:
    """``ReluParams`` from a list of (W, b) pairs, or a ``torch.nn.Sequential`` of Linear and ReLU layers
    (Linear, ReLU, Linear, ..., Linear). Shapes are checked."""
    if isinstance(net, ReluParams):
        return net.copy()
    if isinstance(net, torch.nn.Sequential):
        layers = list(net)
        pairs = []
        for i, m in enumerate(layers):
            want_linear = i % 2 == 0
            if want_linear and not isinstance(m, torch.nn.Linear):
                raise InvalidInputError(f"net: layer {i} must be Linear (expected Linear, ReLU, Linear, ...), got "
                                        f"{type(m).__name__}")
            if not want_linear and not isinstance(m, torch.nn.ReLU):
                raise InvalidInputError(f"net: layer {i} must be ReLU, got {type(m).__name__}")
            if want_linear:
                b = m.bias if m.bias is not None else torch.zeros(m.out_features)
                pairs.append((m.weight.detach().double().numpy(), b.detach().double().numpy()))
        if len(layers) % 2 == 0:
            raise InvalidInputError("net must end with a Linear layer")
        net = pairs
    try:
        pairs = [(np.array(W, dtype=np.float64), np.array(b, dtype=np.float64).reshape(-1)) for W, b in net]
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"net must be a list of (W, b) pairs or a torch Sequential: {e}") from None
    if not pairs:
        raise InvalidInputError("net must have at least one layer")
    for i, (W, b) in enumerate(pairs):
        if W.ndim != 2 or W.size == 0 or b.shape != (W.shape[0],):
            raise InvalidInputError(f"layer {i}: W must be 2-D and b must have W.shape[0] entries, got {W.shape}, "
                                    f"{b.shape}")
        if i and W.shape[1] != pairs[i - 1][0].shape[0]:
            raise InvalidInputError(f"layer {i}: W has {W.shape[1]} columns but layer {i - 1} has "
                                    f"{pairs[i - 1][0].shape[0]} outputs")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise InvalidInputError(f"layer {i}: weights and biases must be finite")
    return ReluParams([W for W, _ in pairs], [b for _, b in pairs])


def _hidden(p: ReluParams) -> list:
    return [W.shape[0] for W in p.weights[:-1]]


def rescale(params, scales) -> ReluParams:
    """Apply positive rescalings: ``scales[l]`` (h_l,) > 0 multiplies hidden layer l's incoming weights and
    biases and divides its outgoing weights. The realization is unchanged."""
    p = relu_params(params)
    hs = _hidden(p)
    if len(scales) != len(hs):
        raise InvalidInputError(f"scales must hold one vector per hidden layer ({len(hs)}), got {len(scales)}")
    for l, (lam, h) in enumerate(zip(scales, hs)):
        lam = np.asarray(lam, dtype=np.float64).reshape(-1)
        if lam.shape != (h,) or not np.isfinite(lam).all() or (lam <= 0).any():
            raise InvalidInputError(f"scales[{l}] must hold {h} finite positive numbers")
        p.weights[l] = p.weights[l] * lam[:, None]
        p.biases[l] = p.biases[l] * lam
        p.weights[l + 1] = p.weights[l + 1] / lam[None, :]
    return p


def permute(params, perms) -> ReluParams:
    """Apply permutations: neuron i of hidden layer l moves to position ``perms[l][i]``."""
    p = relu_params(params)
    hs = _hidden(p)
    if len(perms) != len(hs):
        raise InvalidInputError(f"perms must hold one permutation per hidden layer ({len(hs)}), got {len(perms)}")
    for l, (pi, h) in enumerate(zip(perms, hs)):
        pi = np.asarray(pi, dtype=np.int64).reshape(-1)
        if sorted(pi.tolist()) != list(range(h)):
            raise InvalidInputError(f"perms[{l}] must be a permutation of range({h})")
        inv = np.argsort(pi)
        p.weights[l] = p.weights[l][inv]
        p.biases[l] = p.biases[l][inv]
        p.weights[l + 1] = p.weights[l + 1][:, inv]
    return p


def _degenerate(p: ReluParams, tol: float) -> list:
    """Per hidden layer, the neurons with zero incoming (weights and bias) or zero outgoing weights."""
    out = []
    for l in range(len(p.weights) - 1):
        inn = np.sqrt((p.weights[l] ** 2).sum(1) + p.biases[l] ** 2)
        outn = np.sqrt((p.weights[l + 1] ** 2).sum(0))
        out.append(np.nonzero((inn <= tol) | (outn <= tol))[0].tolist())
    return out


def balance(params, *, tol: float = 1e-12, max_iter: int = 10000) -> tuple[ReluParams, list]:
    """The balanced representative of the rescaling orbit (module docstring) and the degenerate neurons
    that were set to zero (per hidden layer). Minimizes the convex function of the log-scales by exact
    coordinate updates (neuron i of layer l: lambda^4 = |outgoing|^2 / |incoming|^2), which converge to the
    unique minimizer; stops when every neuron is balanced to relative ``tol``."""
    p = relu_params(params)
    scale = max(float(np.abs(p.vector()).max()), 1e-300)
    zeroed = _degenerate(p, 1e-14 * scale)
    for l, idx in enumerate(zeroed):
        p.weights[l][idx] = 0.0
        p.biases[l][idx] = 0.0
        p.weights[l + 1][:, idx] = 0.0
    L = len(p.weights)
    for _ in range(max_iter):
        worst = 0.0
        for l in range(L - 1):
            inn = (p.weights[l] ** 2).sum(1) + p.biases[l] ** 2
            outn = (p.weights[l + 1] ** 2).sum(0)
            live = (inn > 0) & (outn > 0)
            lam = np.ones_like(inn)
            lam[live] = (outn[live] / inn[live]) ** 0.25
            # a whole layer at once is an exact block update: the neurons of one layer do not interact
            worst = max(worst, float(np.abs(lam[live] - 1).max()) if live.any() else 0.0)
            p.weights[l] *= lam[:, None]
            p.biases[l] *= lam
            p.weights[l + 1] /= lam[None, :]
        if worst <= tol:
            break
    return p, zeroed


@dataclass
class CanonicalForm(Result):
    """A canonical representative of a parameter orbit: ``params`` balanced and with each hidden layer's
    neurons sorted (lexicographically by incoming weights, bias, outgoing weights); ``zeroed``:
    degenerate neurons set to zero (per hidden layer, original indices); ``perms``: the sorting
    permutation per hidden layer; ``balance_residual``: max | |in_i|^2 - |out_i|^2 | / max norm^2."""

    params: ReluParams
    zeroed: list
    perms: list
    balance_residual: float

    def vector(self) -> np.ndarray:
        return self.params.vector()


def canonical(params, *, tol: float = 1e-12) -> CanonicalForm:
    """Balanced representative with sorted neurons (module docstring)."""
    p, zeroed = balance(params, tol=tol)
    perms = []
    for l in range(len(p.weights) - 1):
        keys = np.column_stack([p.weights[l], p.biases[l], p.weights[l + 1].T])
        order = np.lexsort(keys.T[::-1])
        pi = np.empty_like(order)
        pi[order] = np.arange(len(order))
        perms.append(pi.tolist())
        p = permute(p, [np.arange(W.shape[0]) if k != l else pi for k, W in enumerate(p.weights[:-1])])
    res = 0.0
    top = max(float((p.vector() ** 2).max()), 1e-300)
    for l in range(len(p.weights) - 1):
        inn = (p.weights[l] ** 2).sum(1) + p.biases[l] ** 2
        outn = (p.weights[l + 1] ** 2).sum(0)
        res = max(res, float(np.abs(inn - outn).max()) / top)
    return CanonicalForm(params=p, zeroed=zeroed, perms=perms, balance_residual=res)


@dataclass
class SymmetryDistance(Result):
    """Distance modulo symmetries. ``distance``: min over permutations of |bal(theta) - pi bal(eta)|;
    ``plain_distance``: |theta - eta| without symmetries; ``perms``: the minimizing permutation of eta's
    balanced neurons per hidden layer; ``exact``: the minimum over permutations is exact (one hidden layer,
    or exhaustive search), else an upper bound from layer-by-layer matching."""

    distance: float
    plain_distance: float
    perms: list
    exact: bool
    method: str


def symmetry_distance(theta, eta, *, max_permutations: int = 40320) -> SymmetryDistance:
    """d(theta, eta) modulo permutations and positive rescalings (module docstring)."""
    from scipy.optimize import linear_sum_assignment

    p, q = relu_params(theta), relu_params(eta)
    if p.widths != q.widths:
        raise InvalidInputError(f"theta and eta must have the same widths, got {p.widths} and {q.widths}")
    plain = float(np.linalg.norm(p.vector() - q.vector()))
    bp, _ = balance(p)
    bq, _ = balance(q)
    hs = _hidden(bp)
    if not hs:
        return SymmetryDistance(distance=plain, plain_distance=plain, perms=[], exact=True, method="no hidden layer")
    if len(hs) == 1:
        # cost of sending eta's neuron j to theta's slot i: incoming (weights, bias) and outgoing column
        A = np.column_stack([bp.weights[0], bp.biases[0], bp.weights[1].T])
        B = np.column_stack([bq.weights[0], bq.biases[0], bq.weights[1].T])
        cost = ((A[:, None, :] - B[None, :, :]) ** 2).sum(2)
        rows, cols = linear_sum_assignment(cost)
        pi = np.empty(hs[0], dtype=np.int64)
        pi[cols] = rows
        d2 = float(cost[rows, cols].sum()) + float(((bp.biases[1] - bq.biases[1]) ** 2).sum())
        return SymmetryDistance(distance=math.sqrt(max(d2, 0.0)), plain_distance=plain, perms=[pi.tolist()],
                                exact=True, method="linear assignment")
    total = math.prod(math.factorial(h) for h in hs)
    target = bp.vector()
    if total <= max_permutations:
        best, best_perms = math.inf, None
        for combo in itertools.product(*[itertools.permutations(range(h)) for h in hs]):
            d = float(np.linalg.norm(target - permute(bq, [np.array(c) for c in combo]).vector()))
            if d < best:
                best, best_perms = d, [list(c) for c in combo]
        return SymmetryDistance(distance=best, plain_distance=plain, perms=best_perms, exact=True,
                                method=f"exhaustive ({total} permutations)")
    # layer by layer: match layer l's neurons by incoming (given the earlier matching) and outgoing weights
    cur = bq
    perms = []
    for l, h in enumerate(hs):
        A = np.column_stack([bp.weights[l], bp.biases[l], bp.weights[l + 1].T])
        B = np.column_stack([cur.weights[l], cur.biases[l], cur.weights[l + 1].T])
        if A.shape[1] * h * h > 10**8:
            raise ResourceLimitError(f"matching layer {l} needs a {h} x {h} cost matrix of {A.shape[1]}-vectors")
        cost = ((A[:, None, :] - B[None, :, :]) ** 2).sum(2)
        rows, cols = linear_sum_assignment(cost)
        pi = np.empty(h, dtype=np.int64)
        pi[cols] = rows
        perms.append(pi.tolist())
        cur = permute(cur, [pi if k == l else np.arange(hh) for k, hh in enumerate(hs)])
    d = float(np.linalg.norm(target - cur.vector()))
    return SymmetryDistance(distance=d, plain_distance=plain, perms=perms, exact=False,
                            method="layer-by-layer assignment (upper bound)")
