"""Filtered exact predicates shared by the region engines.

Every region count rests on sign decisions: on which side of a hyperplane a point lies, which of two
breakpoints comes first along a segment, whether three points turn left. Each such quantity here is
a *sum of products* of float64 numbers,

    S = sum_i prod_j f_ij        (n terms, k factors each),

and every float64 is a dyadic rational, so ``sign(S)`` has one exact answer. It is decided in two
stages (the "floating-point filter" of Fortune and Van Wyk, ACM TOG 1996; Shewchuk, "Adaptive
precision floating-point arithmetic and fast robust geometric predicates", DCG 1997):

1. **float64, vectorized.** With unit roundoff ``u = 2^-53`` and ``gamma_m = m u / (1 - m u)``
   (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Lemma 3.1 and Sec. 4.2), a
   product of ``k`` normal floats has relative error at most ``gamma_{k-1}``, and any order of
   summing ``n`` terms adds at most ``gamma_{n-1} sum |p_i|``; hence the computed ``S^`` obeys
   ``|S^ - S| <= gamma_{n+k} sum_i |p^_i| (1 + gamma_{n+k})``. The sign of ``S^`` is certain
   when ``|S^|`` exceeds twice that bound (the factor 2 absorbs the rounding of the bound itself).
   The bound needs every partial product to be a normal number or an exact zero: a product that
   underflows (|p| < 2^-1022) or any non-finite intermediate marks the entry *uncertain*.
2. **exact, only for the uncertain entries.** Each factor is split into an integer mantissa and a
   power of two (``float.as_integer_ratio``), and ``S`` is summed in Python integers over a common
   power-of-two denominator. No rounding happens anywhere, at any scale (1e-300 or 1e300,
   subnormals included).

Every predicate returns the signs (-1, 0, +1) together with the number of entries that needed the
exact stage, so engines can report how many decisions went exact. A zero sign is an exact tie; an
engine that cannot resolve a tie raises :class:`~relulab.core.errors.DegenerateGeometryError`
(:func:`require_nonzero`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from relulab.core.errors import DegenerateGeometryError, InvalidInputError

__all__ = ["U", "gamma", "product_sum_signs", "affine_signs", "compare_ratios", "orient2d",
           "line_side", "exact_product_sum", "require_nonzero", "ExactTally", "exact_map"]

U = 2.0**-53  # unit roundoff of float64 (round to nearest)
_TINY = 2.0**-1022  # smallest normal float64


def gamma(m: int) -> float:
    """Higham's ``gamma_m = m u / (1 - m u)``."""
    return m * U / (1.0 - m * U)


class ExactTally:
    """Running totals of decisions: ``filtered`` settled in float64 under the error bound, ``exact``
    settled in rational arithmetic. ``add(n_total, n_exact)`` after each predicate call."""

    __slots__ = ("filtered", "exact")

    def __init__(self):
        self.filtered = 0
        self.exact = 0

    def add(self, n_total: int, n_exact: int) -> None:
        self.filtered += int(n_total) - int(n_exact)
        self.exact += int(n_exact)

    def __repr__(self) -> str:
        return f"ExactTally(filtered={self.filtered}, exact={self.exact})"


def _as_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise InvalidInputError(f"exact predicates take real numbers, got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def _signs_out(signs: np.ndarray, like):
    if isinstance(like, torch.Tensor):
        return torch.from_numpy(signs).to(like.device)
    return signs


def exact_product_sum(factors) -> tuple[int, int]:
    """``sum_i prod_j factors[i][j]`` exactly, as ``(numerator, e)`` meaning ``numerator / 2**e``.

    ``factors``: a sequence of terms, each a sequence of finite floats."""
    terms = []
    for term in factors:
        num, e = 1, 0
        for f in term:
            f = float(f)
            if not math.isfinite(f):
                raise InvalidInputError(f"exact arithmetic needs finite numbers, got {f!r}")
            p, q = f.as_integer_ratio()  # q is a power of two
            num *= p
            e += q.bit_length() - 1
        terms.append((num, e))
    if not terms:
        return 0, 0
    E = max(e for _, e in terms)
    return sum(num << (E - e) for num, e in terms), E


def product_sum_signs(F, like=None):
    """Signs of ``S = sum_i prod_j F[..., i, j]`` for a float array ``F`` (..., n, k).

    Returns ``(signs, n_exact)``: ``signs`` (...,) int8 in {-1, 0, 1} (a numpy array, or a tensor on
    ``like``'s device when ``F`` or ``like`` is a tensor), ``n_exact`` how many entries the float64
    filter could not certify and exact integer arithmetic decided."""
    like = F if like is None else like
    A = _as_numpy(F)
    if A.ndim < 2:
        raise InvalidInputError(f"product_sum_signs expects (..., n, k) factors, got shape {A.shape}")
    n, k = A.shape[-2], A.shape[-1]
    batch = A.shape[:-2]
    A = A.reshape(-1, n, k)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        P = A[..., 0].copy()
        ok = np.isfinite(P) & (np.abs(P) >= _TINY) if k > 1 else np.isfinite(P)
        for j in range(1, k):
            P = P * A[..., j]
            # an underflowed partial product breaks the relative bound (unless a factor is zero)
            ok &= np.isfinite(P) & (np.abs(P) >= _TINY)
        zero = (A == 0).any(-1)
        ok |= zero & np.isfinite(A).all(-1)
        P = np.where(zero, 0.0, P)
        S = P.sum(-1)
        mag = np.abs(P).sum(-1)
        g = gamma(n + k)
        bound = 2.0 * g * mag * (1.0 + g)
        certain = ok.all(-1) & np.isfinite(S) & np.isfinite(mag) & (np.abs(S) > bound)
    # an exactly zero sum of exactly zero products is certain too
    certain |= (mag == 0) & ok.all(-1)
    signs = np.sign(np.where(certain, S, 0.0)).astype(np.int8)
    todo = np.flatnonzero(~certain)
    if todo.size and not np.isfinite(A[todo]).all():
        raise InvalidInputError("exact predicates need finite inputs; got inf or nan")
    for i in todo.tolist():
        num, _ = exact_product_sum(A[i].tolist())
        signs[i] = (num > 0) - (num < 0)
    return _signs_out(signs.reshape(batch), like), int(todo.size)


def affine_signs(w, x, b=None):
    """Signs of the affine forms ``w . x + b`` (batched; ``w``, ``x`` broadcast to (..., n), ``b``
    to (...)). Returns ``(signs, n_exact)`` as :func:`product_sum_signs`."""
    W, X = np.broadcast_arrays(_as_numpy(w), _as_numpy(x))
    F = np.stack([W, X], -1)  # (..., n, 2)
    if b is not None:
        B = np.broadcast_to(_as_numpy(b), F.shape[:-2])
        F = np.concatenate([F, np.stack([B, np.ones_like(B)], -1)[..., None, :]], -2)
    like = next((t for t in (w, x, b) if isinstance(t, torch.Tensor)), None)
    return product_sum_signs(F, like=like)


def compare_ratios(p1, q1, p2, q2):
    """Signs of ``p1 / q1 - p2 / q2`` (batched), exactly; every ``q`` must be nonzero.

    For breakpoints ``t = -b / a`` of affine functions ``a t + b`` along a segment, pass
    ``(-b1, a1, -b2, a2)`` (negation is exact). Returns ``(signs, n_exact)``."""
    p1, q1, p2, q2 = np.broadcast_arrays(*(_as_numpy(v) for v in (p1, q1, p2, q2)))
    if (q1 == 0).any() or (q2 == 0).any():
        raise DegenerateGeometryError("compare_ratios: a denominator is zero (the affine function is "
                                      "constant along the segment; it has no breakpoint)")
    # sign(p1/q1 - p2/q2) = sign(p1 q2 - p2 q1) * sign(q1 q2)
    F = np.stack([np.stack([p1, q2], -1), np.stack([-p2, q1], -1)], -2)
    like = next((t for t in (p1, q1, p2, q2) if isinstance(t, torch.Tensor)), None)
    s, n_exact = product_sum_signs(F)
    s = s * (np.sign(q1) * np.sign(q2)).astype(np.int8)
    return _signs_out(s.astype(np.int8), like), n_exact


def orient2d(p, q, r):
    """Orientation of the triangles ``(p, q, r)`` (batched (..., 2) points): +1 counter-clockwise,
    -1 clockwise, 0 collinear, exactly. The determinant ``(q - p) x (r - p)`` is expanded into six
    products of the input coordinates (the differences would round). Returns ``(signs, n_exact)``."""
    P, Q, R = np.broadcast_arrays(*(_as_numpy(v) for v in (p, q, r)))
    px, py, qx, qy, rx, ry = P[..., 0], P[..., 1], Q[..., 0], Q[..., 1], R[..., 0], R[..., 1]
    a = np.stack([px, -px, -py, py, qx, -qy], -1)
    b = np.stack([qy, ry, qx, rx, ry, rx], -1)
    like = next((t for t in (p, q, r) if isinstance(t, torch.Tensor)), None)
    return product_sum_signs(np.stack([a, b], -1), like=like)


def line_side(l1, l2, l3):
    """Side of line ``l3`` on which the intersection point of lines ``l1`` and ``l2`` lies.

    Lines are (..., 3) coefficients ``(a, b, c)`` of ``a s + b t + c = 0``. The intersection is
    ``(s, t) = (x / w, y / w)`` with ``(x, y, w) = l1 x l2``, so ``sign(l3 at it)`` is
    ``sign(det[l1; l2; l3]) * sign(w)``; both are sums of products of the line coefficients and are
    decided exactly. Raises :class:`DegenerateGeometryError` when ``l1`` and ``l2`` are parallel
    (no intersection point). Returns ``(signs, n_exact)``."""
    A, B, C = np.broadcast_arrays(*(_as_numpy(v) for v in (l1, l2, l3)))
    a1, b1, c1 = A[..., 0], A[..., 1], A[..., 2]
    a2, b2, c2 = B[..., 0], B[..., 1], B[..., 2]
    a3, b3, c3 = C[..., 0], C[..., 1], C[..., 2]
    w = np.stack([np.stack([a1, b2], -1), np.stack([-a2, b1], -1)], -2)
    sw, e1 = product_sum_signs(w)
    if (sw == 0).any():
        raise DegenerateGeometryError("line_side: the first two lines are parallel (no intersection point)")
    det = np.stack([np.stack(t, -1) for t in (
        (a1, b2, c3), (-a1, c2, b3), (-b1, a2, c3), (b1, c2, a3), (c1, a2, b3), (-c1, b2, a3))], -2)
    sd, e2 = product_sum_signs(det)
    like = next((t for t in (l1, l2, l3) if isinstance(t, torch.Tensor)), None)
    return _signs_out((sd * sw).astype(np.int8), like), e1 + e2


def require_nonzero(signs, what: str) -> None:
    """Raise :class:`DegenerateGeometryError` if an exactly decided sign is a tie the caller cannot
    handle; ``what`` says which decision (it is put in the message)."""
    s = signs.cpu().numpy() if isinstance(signs, torch.Tensor) else np.asarray(signs)
    if (s == 0).any():
        k = int((s == 0).sum())
        raise DegenerateGeometryError(f"{what}: {k} exact tie(s) in exact rational arithmetic; the "
                                      f"geometry is degenerate at this point")


# ---------------------------------------------------------------------------- exact networks
def dyadic(t) -> tuple[np.ndarray, int]:
    """Float64 numbers as integers over one power of two: ``(ints, e)`` with ``t == ints / 2**e``
    exactly (an object array of Python integers shaped like ``t``)."""
    a = _as_numpy(t)
    if not np.isfinite(a).all():
        raise InvalidInputError("exact arithmetic needs finite numbers; the network or the inputs "
                                "hold inf or nan")
    ratios = [x.as_integer_ratio() for x in a.ravel().tolist()]
    e = max((q.bit_length() - 1 for _, q in ratios), default=0)
    out = np.empty(len(ratios), dtype=object)
    out[:] = [p << (e - (q.bit_length() - 1)) for p, q in ratios]
    return out.reshape(a.shape), e


def exact_chain(net):
    """The layers of a chain network (every node reads the one before) as exact integer tables:
    ``("affine", W, eW, b, eb)`` or ``("max", index, coef, ec, valid)``; None for other graphs
    (residual additions) or layers without an affine matrix."""
    if not all(nd.inputs == (i - 1,) for i, nd in enumerate(net.nodes) if i > 0):
        return None
    tabs = exact_tables(net, max_entries=math.inf)
    # a reshape is the identity on flattened features
    return None if tabs is None else [t for t in tabs[1:] if t[0] != "reshape"]


def exact_affine(tab, Z: np.ndarray, e: int) -> tuple[np.ndarray, int]:
    """Push exact affine maps ``Z / 2**e`` (rows: features; column 0 the constant term, the others
    linear coefficients) through ``("affine", W, eW, b, eb)``."""
    _, W, eW, b, eb = tab
    Y = W.dot(Z)
    E = max(e + eW, eb)
    if E > e + eW:
        Y = Y * (1 << (E - e - eW))
    Y[:, 0] = Y[:, 0] + b * (1 << (E - eb))
    return Y, E


# ---------------------------------------------------------------------------- exact networks (DAGs)
_EXACT_TABLE_ENTRIES = 5 * 10**6  # dense weight entries the exact tables may hold (Python integers)


def exact_tables(net, max_entries: int = _EXACT_TABLE_ENTRIES):
    """Every node of a network (chains and residual DAGs) as exact integer tables, for pushing
    exact affine functions through it: ``("input",)``, ``("affine", W, eW, b, eb)`` (``W`` dense,
    integers over ``2**eW``), ``("max", index, coef, ec, valid)``, ``("add",)``. None when the dense
    weights would exceed ``max_entries`` entries (convolutions are expanded to their matrices)."""
    from relulab.core.layers import Add, Affine, MaxUnits, Reshape

    total = sum(int(math.prod(nd.layer.in_shape)) * int(math.prod(nd.layer.out_shape))
                for nd in net.nodes[1:] if isinstance(nd.layer, Affine) and not isinstance(nd.layer, Reshape))
    if total > max_entries:
        return None
    tabs = [("input",)]
    for nd in net.nodes[1:]:
        lay = nd.layer
        if isinstance(lay, MaxUnits):
            cf, ec = dyadic(lay.coef)
            tabs.append(("max", lay.index.cpu().numpy(), cf, ec, lay.valid.cpu().numpy()))
        elif isinstance(lay, Add):
            tabs.append(("add",))
        elif isinstance(lay, Reshape):
            tabs.append(("reshape",))
        elif isinstance(lay, Affine):
            W, b = lay.dense()
            Wi, eW = dyadic(W)
            bi, eb = dyadic(b)
            tabs.append(("affine", Wi, eW, bi, eb))
        else:
            return None
    return tabs


def _align(Z: np.ndarray, e: int, E: int) -> np.ndarray:
    return Z if E == e else Z * (1 << (E - e))


def exact_pieces(net, tabs, a, b, pattern, layer: int):
    """Exact pieces of max layer ``layer`` along the segment ``x(t) = a + t (b - a)`` under the
    activation pattern ``pattern`` (winners of the earlier max layers are taken from it).

    Returns ``(P, e)``: ``P`` (units, K, 2) Python integers with piece ``k`` of unit ``j`` equal to
    ``(P[j, k, 0] + t P[j, k, 1]) / 2**e`` exactly (invalid pieces hold zeros; see ``tabs``'s
    ``valid``). ``tabs`` from :func:`exact_tables`."""
    A, ea = dyadic(a)
    B, eb = dyadic(b)
    e = max(ea, eb)
    A, B = _align(A.reshape(-1), ea, e), _align(B.reshape(-1), eb, e)
    out = _push(net, tabs, np.stack([A, B - A], 1), e, pattern, layer)
    if out is None:
        raise InvalidInputError(f"the network has no max layer {layer}")
    return out


def exact_map(net, tabs, pattern):
    """The exact affine map of the network on the region of ``pattern``: ``(M, e)`` with output ``i``
    equal to ``(M[i, 0] + sum_k M[i, k] x_k) / 2**e`` exactly (Python integers), from the float64
    weights (``tabs`` from :func:`exact_tables`). Every max unit takes the piece the pattern names."""
    d = int(net.input_dim)
    Z = np.zeros((d, d + 1), dtype=object)
    Z[:, 1:] = np.identity(d, dtype=np.int64).astype(object)
    return _push(net, tabs, Z, 0, pattern, None)


def _push(net, tabs, Z0, e0, pattern, layer):
    """Push exact affine maps ``Z0 / 2**e0`` of the input (rows: input features) through the network
    with the winners of ``pattern``: the pieces of max layer ``layer`` (see :func:`exact_pieces`),
    for ``layer="all"`` the list of every max layer's pieces, or for ``layer=None`` the output's
    maps; None when there is no such max layer."""
    vals = {0: (Z0, e0)}
    pat = [int(x) for x in (pattern.tolist() if hasattr(pattern, "tolist") else pattern)]
    offs = net.unit_offsets
    last_use = {}
    for i, nd in enumerate(net.nodes):
        for j in nd.inputs:
            last_use[j] = i
    m = 0
    every = [] if layer == "all" else None
    for i, nd in enumerate(net.nodes[1:], 1):
        tab = tabs[i]
        kind = tab[0]
        if kind == "add":
            (Za, ea_), (Zb, eb_) = vals[nd.inputs[0]], vals[nd.inputs[1]]
            E = max(ea_, eb_)
            vals[i] = (_align(Za, ea_, E) + _align(Zb, eb_, E), E)
        elif kind == "reshape":
            vals[i] = vals[nd.inputs[0]]
        elif kind == "affine":
            Z, ez = vals[nd.inputs[0]]
            vals[i] = exact_affine(tab, Z, ez)
        else:
            _, index, coef, ec, valid = tab
            Z, ez = vals[nd.inputs[0]]
            if m == layer or every is not None:
                P = Z[index] * coef[..., None]  # (U, K, columns)
                P[~valid] = 0
                if every is None:
                    return P, ez + ec
                every.append((P, ez + ec))
            U = index.shape[0]
            w = np.array(pat[offs[m]:offs[m] + U], dtype=np.int64)
            r = np.arange(U)
            vals[i] = (Z[index[r, w]] * coef[r, w][:, None], ez + ec)
            m += 1
        for j in nd.inputs:
            if last_use.get(j) == i:
                vals.pop(j, None)
    if every is not None:
        return every
    return vals[len(net.nodes) - 1] if layer is None else None


def exact_layer_pieces(net, tabs, Z, e, pattern) -> list:
    """Every max layer's exact pieces under ``pattern`` for exact input maps ``Z / 2**e`` (rows:
    input features, any number of columns): a list of ``(P, e)`` as :func:`exact_pieces` gives for
    one layer, from one pass through the network."""
    return _push(net, tabs, Z, e, pattern, "all")


# ---------------------------------------------------------------------------- sparse: one unit's cone
def affine_rows(layer, rows, chunk: int = 256):
    """Rows ``rows`` of an affine layer's matrix (len(rows), in_numel) without building the whole
    matrix: ``L^T e_i`` by a vector-Jacobian product of ``layer.linear`` (a convolution's row holds its
    kernel taps, each a weight exactly as in :meth:`Affine.dense`)."""
    import torch

    like = layer._like()
    n_in, n_out = int(math.prod(layer.in_shape)), int(math.prod(layer.out_shape))
    out = []
    for s in range(0, len(rows), chunk):
        r = torch.as_tensor(rows[s:s + chunk], dtype=torch.long, device=like.device)
        cot = torch.zeros(r.numel(), n_out, dtype=like.dtype, device=like.device)
        cot[torch.arange(r.numel(), device=like.device), r] = 1.0
        with torch.enable_grad():  # callers may run under no_grad
            z = torch.zeros(r.numel(), n_in, dtype=like.dtype, device=like.device, requires_grad=True)
            (g,) = torch.autograd.grad(layer.linear(z), z, cot)
        out.append(g.detach())
    return torch.cat(out) if out else torch.zeros(0, n_in, dtype=like.dtype, device=like.device)


def exact_unit_pieces(net, a, b, pattern, layer: int, units, max_entries: float = 2 * 10**7):
    """:func:`exact_pieces` for some units of max layer ``layer`` only, computed over the units'
    dependency cone (the features they read, transitively) with rows taken one by one
    (:func:`affine_rows`) instead of dense tables: for convolutional networks, whose dense tables
    are too large, each unit reads a small receptive field. Returns ``(P, e)`` with ``P`` (len(units),
    K, 2) Python integers over ``2**e``, as :func:`exact_pieces` for those rows; None when the cone
    would hold more than ``max_entries`` weight entries."""
    from relulab.core.layers import Add, Affine, MaxUnits, Reshape

    nodes = net.nodes
    target = net.max_layers[layer]
    tl = nodes[target].layer
    units = [int(u) for u in units]
    pat = [int(x) for x in (pattern.tolist() if hasattr(pattern, "tolist") else pattern)]
    max_of = {n: m for m, n in enumerate(net.max_layers)}
    idx_t = tl.index.cpu().numpy()
    val_t = tl.valid.cpu().numpy()
    need = {i: set() for i in range(len(nodes))}
    need[nodes[target].inputs[0]].update(int(idx_t[u, k]) for u in units for k in range(idx_t.shape[1]) if val_t[u, k])
    rows = {}
    entries = 0
    for i in range(target - 1, 0, -1):  # nodes are in topological order
        if not need[i]:
            continue
        nd, lay = nodes[i], nodes[i].layer
        want = sorted(need[i])
        if isinstance(lay, Add):
            for j in nd.inputs:
                need[j].update(want)
        elif isinstance(lay, Reshape):
            need[nd.inputs[0]].update(want)
        elif isinstance(lay, MaxUnits):
            off = net.unit_offsets[max_of[i]]
            idx = lay.index.cpu().numpy()
            need[nd.inputs[0]].update(int(idx[o, pat[off + o]]) for o in want)
        elif isinstance(lay, Affine):
            R = affine_rows(lay, want).cpu()
            nz = R.nonzero()
            cols = sorted(set(nz[:, 1].tolist()))
            entries += len(want) * len(cols)
            if entries > max_entries:
                return None
            rows[i] = (want, cols, R[:, cols])
            need[nd.inputs[0]].update(cols)
        else:
            return None
    # forward over the cone: per node, {feature: position} and exact values (n, 2) over 2**e
    A, ea = dyadic(a)
    B, eb = dyadic(b)
    e0 = max(ea, eb)
    A, B = _align(A.reshape(-1), ea, e0), _align(B.reshape(-1), eb, e0)
    f0 = sorted(need[0])
    vals = {0: ({f: p for p, f in enumerate(f0)}, np.stack([A[f0], B[f0] - A[f0]], 1) if f0 else
                np.zeros((0, 2), dtype=object), e0)}
    for i in range(1, target):
        if not need[i]:
            continue
        nd, lay = nodes[i], nodes[i].layer
        want = sorted(need[i])
        pos = {f: p for p, f in enumerate(want)}
        if isinstance(lay, Add):
            (pa, Za, e1), (pb, Zb, e2) = vals[nd.inputs[0]], vals[nd.inputs[1]]
            E = max(e1, e2)
            Z = _align(Za[[pa[f] for f in want]], e1, E) + _align(Zb[[pb[f] for f in want]], e2, E)
            vals[i] = (pos, Z, E)
        elif isinstance(lay, Reshape):
            pz, Z, e = vals[nd.inputs[0]]
            vals[i] = (pos, Z[[pz[f] for f in want]], e)
        elif isinstance(lay, MaxUnits):
            off = net.unit_offsets[max_of[i]]
            pz, Z, e = vals[nd.inputs[0]]
            cf, ec = dyadic(lay.coef)
            idx = lay.index.cpu().numpy()
            w = [pat[off + o] for o in want]
            src = [pz[int(idx[o, k])] for o, k in zip(want, w)]
            vals[i] = (pos, Z[src] * np.array([cf[o, k] for o, k in zip(want, w)], dtype=object)[:, None], e + ec)
        else:
            rw, cols, Rm = rows[i]
            pz, Z, e = vals[nd.inputs[0]]
            Wi, eW = dyadic(Rm)
            Y = Wi.dot(Z[[pz[c] for c in cols]]) if cols else np.zeros((len(rw), 2), dtype=object)
            bias = lay.bias
            if bias is None:
                vals[i] = (pos, Y, e + eW)
                continue
            bi, eb_ = dyadic(bias.reshape(-1)[torch_index(rw, bias)])
            E = max(e + eW, eb_)
            Y = _align(Y, e + eW, E)
            Y[:, 0] = Y[:, 0] + _align(bi, eb_, E)
            vals[i] = (pos, Y, E)
    pz, Z, e = vals[nodes[target].inputs[0]]
    cf, ec = dyadic(tl.coef)
    K = idx_t.shape[1]
    P = np.zeros((len(units), K, 2), dtype=object)
    for n, u in enumerate(units):
        for k in range(K):
            if val_t[u, k]:
                P[n, k] = Z[pz[int(idx_t[u, k])]] * cf[u, k]
    return P, e + ec


def torch_index(rows, like):
    import torch

    return torch.as_tensor(rows, dtype=torch.long, device=like.device)


class ConePieces:
    """Exact pieces of max layer ``layer`` along ``a + t (b - a)`` under ``pattern``, computed unit by
    unit on first use over the unit's dependency cone (:func:`exact_unit_pieces`):
    ``P[u, k, c]`` as from :func:`exact_pieces`, except that the power of two is per unit (every
    comparison of the line certificate stays within one unit, where it cancels). ``spent``: a
    one-element list counting the units evaluated, shared between instances; past ``max_units``, or
    for a cone of more than ``max_entries`` weight entries, ``over`` is raised."""

    def __init__(self, net, a, b, pattern, layer: int, spent: list, max_units: int = 10**5,
                 max_entries: float = 10**6, over=RuntimeError):
        self.args = (net, a, b, pattern, layer)
        self.spent, self.max_units, self.max_entries, self.over = spent, max_units, max_entries, over
        self.units: dict = {}

    def __getitem__(self, key):
        u, k, c = key
        u = int(u)
        if u not in self.units:
            self.spent[0] += 1
            if self.spent[0] > self.max_units:
                raise self.over
            net, a, b, pattern, layer = self.args
            r = exact_unit_pieces(net, a, b, pattern, layer, [u], max_entries=self.max_entries)
            if r is None:
                raise self.over
            self.units[u] = r[0][0]
        return self.units[u][k, c]


def exact_witness(net, tabs, x, pattern) -> bool:
    """Whether the float64 point ``x`` lies strictly inside the region of ``pattern``, decided in
    exact arithmetic on the float64 weights: at every max unit the pattern's piece is strictly
    larger than every other valid piece (so every nearby point has the same pattern).
    ``tabs`` from :func:`exact_tables`."""
    X, e = dyadic(x)
    pat = [int(v) for v in (pattern.tolist() if hasattr(pattern, "tolist") else pattern)]
    max_tabs = [t for t in tabs if t[0] == "max"]
    offs = net.unit_offsets
    for m, ((P, _), tab) in enumerate(zip(exact_layer_pieces(net, tabs, X.reshape(-1, 1), e, pat), max_tabs)):
        P, valid = P[..., 0], tab[4]  # (U, K) values of every piece, over a common power of two
        U = P.shape[0]
        w = np.array(pat[offs[m]:offs[m] + U], dtype=np.int64)
        best = P[np.arange(U), w]
        for k in range(P.shape[1]):
            other = valid[:, k] & (k != w)
            if other.any() and not all(b > p for b, p in zip(best[other], P[other, k])):
                return False
    return True


def exact_max_margin(rows, bound, max_pivots: int = 10_000):
    """``max t`` subject to ``c_j + g_j . y >= t`` for every row ``[c_j, g_j...]`` (integers or
    Fractions), ``|y_i| <= bound_i`` and ``t <= 1``, solved exactly: ``(t*, y*)`` as Fractions.
    ``t* > 0`` proves the open set ``{y : every row > 0}`` non-empty (``y*`` lies in it);
    ``t* <= 0`` proves it empty (a point in it would make ``t = min_j row_j > 0`` feasible).

    Primal simplex on a dense rational tableau with Bland's rule (which cannot cycle; Bland, "New
    finite pivoting rules for the simplex method", Math. Oper. Res. 1977). Variables are shifted to
    be non-negative (``w = y + bound``, ``t' = t + T0`` with ``T0`` making the origin feasible), so
    the slack basis starts the search. Meant for the few small LPs float64 cannot settle."""
    from fractions import Fraction as F

    rows = [[F(v) for v in r] for r in rows]
    # each row scaled by a power of two to gradient entries in [1/2, 1): the margin t is then a
    # distance up to a factor 2 sqrt(d) (unscaled rows of very different sizes would put the optimum
    # as far as possible from the small rows' walls and a hair from the big rows')
    for r in rows:
        top = max((abs(v) for v in r[1:]), default=F(0)) or abs(r[0])
        if top:
            sh = top.numerator.bit_length() - top.denominator.bit_length() + 1
            f = F(1, 1 << sh) if sh >= 0 else F(1 << -sh)
            r[:] = [v * f for v in r]
    M = [F(b) for b in bound]
    d = len(M)
    # constraints  -g.w + t' <= c - g.M + T0  (i.e. c + g.y >= t);  w_i <= 2 M_i;  t' <= 1 + T0
    base = [r[0] - sum(g * m for g, m in zip(r[1:], M)) for r in rows]
    T0 = max([F(0)] + [-v for v in base]) + 1
    A = [[-g for g in r[1:]] + [F(1)] for r in rows]
    b = [v + T0 for v in base]
    for i in range(d):
        A.append([F(1) if j == i else F(0) for j in range(d)] + [F(0)])
        b.append(2 * M[i])
    A.append([F(0)] * d + [F(1)])
    b.append(1 + T0)
    m, n = len(A), d + 1
    # tableau: rows [A | I | b], objective: maximize t' (column d)
    T = [A[i] + [F(1) if j == i else F(0) for j in range(m)] + [b[i]] for i in range(m)]
    z = [F(0)] * d + [F(-1)] + [F(0)] * m + [F(0)]  # reduced costs of "minimize -t'"
    basis = [n + i for i in range(m)]
    for _ in range(max_pivots):
        enter = next((j for j in range(n + m) if z[j] < 0), None)  # Bland: lowest index
        if enter is None:
            break
        best, leave = None, None
        for i in range(m):
            a = T[i][enter]
            if a > 0:
                r = T[i][-1] / a
                if best is None or r < best or (r == best and basis[i] < basis[leave]):
                    best, leave = r, i
        if leave is None:
            raise ArithmeticError("unbounded exact LP")  # cannot happen: every variable is bounded
        piv = T[leave][enter]
        T[leave] = [v / piv for v in T[leave]]
        for i in range(m):
            if i != leave and T[i][enter] != 0:
                f = T[i][enter]
                T[i] = [v - f * w for v, w in zip(T[i], T[leave])]
        if z[enter] != 0:
            f = z[enter]
            z = [v - f * w for v, w in zip(z, T[leave])]
        basis[leave] = enter
    else:
        raise ArithmeticError("exact LP: pivot budget spent")
    x = [F(0)] * (n + m)
    for i, j in enumerate(basis):
        x[j] = T[i][-1]
    return x[d] - T0, [x[i] - M[i] for i in range(d)]
