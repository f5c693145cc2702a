"""Affine maps of a ``PLNet``'s pieces under forced winners, with proven float64 error bounds, and
the same maps in exact rational arithmetic.

Every quantity the facet-representation enumeration decides on is an affine function of the cell's
coordinates ``y``: the network input in homogeneous form ``X(y) = X0 + XG y`` (``X = s x``) and the
bias scale ``s(y) = s0 + sg . y`` (``s = 1`` on a box, ``1 - a_k . y`` on a compactification
pyramid, see ``space.py``). With the winners of earlier max layers forced, every piece is
``N_s(X)``, affine in ``y``; a map is stored as ``(d + 1)`` coefficients, column 0 the constant.

Error bounds (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Lemma 3.1 and
Sec. 3.1): with ``gamma_n = n u / (1 - n u)``, ``u = 2^-53``, a computed sum of ``n`` products
``fl(sum_i w_i z_i)`` differs from the exact sum by at most ``gamma_n sum_i |w_i z_i|`` in any
summation order. Propagating through a layer ``z' = W z + b s`` whose inputs carry errors ``E``
(entrywise, per coefficient) gives ``E' = |W| E + gamma_{n+2} (|W| |z| + |b| |s|)``; a piece
``coef * z_i`` adds ``gamma_1 |coef z_i|``; a residual sum adds ``gamma_1 |z1 + z2|``. The bounds
are computed in float64 too and multiplied by ``1 + 2^-40`` (more than their own rounding). So
for the exact network (the float64 weights read as rationals) every exact coefficient lies within
the returned bound of the computed one.

:class:`ExactMaps` computes the same maps with :class:`fractions.Fraction` (no rounding at all) for
the few decisions the error bounds cannot settle.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from relulab.core.errors import DegenerateGeometryError
from relulab.core.layers import Add, AvgPool, Dense, MaxUnits, Reshape
from relulab.regions._exact import exact_affine

U = 2.0**-53
SAFETY = 1.0 + 2.0**-40


def gamma(n: int) -> float:
    return n * U / (1.0 - n * U)


class MapEvaluator:
    """Forced-winner affine maps with error bounds, batched over cells (float64, any device)."""

    def __init__(self, net):
        self.net = net
        self._abs = {}

    def _abs_linear(self, i, layer, z):
        if isinstance(layer, (Reshape, AvgPool)):
            return layer.linear(z)  # non-negative operators
        m = self._abs.get(i)
        if m is None:
            W = layer.weight if isinstance(layer, Dense) else layer.dense()[0]
            m = self._abs[i] = W.abs().T.contiguous()
        return z @ m

    @staticmethod
    def _fan_in(layer) -> int:
        if isinstance(layer, Dense):
            return int(layer.weight.shape[1])
        return int(np.prod(layer.in_shape))

    def maps(self, Z, E, S, pat, upto: int):
        """Pieces of every max layer ``0..upto`` on cells with inputs ``Z`` (C, d_in, m1) (errors
        ``E``, same shape), bias scales ``S`` (C, m1) (exact) and winners ``pat`` (C, n_units) (those
        of layers before ``upto`` are used). Returns a list of ``(P, EP)`` per layer, (C, U, K, m1)."""
        net = self.net
        C, _, m1 = Z.shape
        vals = {0: (Z, E)}
        out = []
        l = -1
        for i, node in enumerate(net.nodes[1:], start=1):
            layer = node.layer
            z, e = vals[node.inputs[0]]
            if isinstance(layer, Add):
                z2, e2 = vals[node.inputs[1]]
                nz = z + z2
                ne = (e + e2 + gamma(1) * nz.abs()) * SAFETY
            elif isinstance(layer, MaxUnits):
                l += 1
                cf = layer.coef[None, :, :, None]
                P = z[:, layer.index] * cf  # (C, U, K, m1)
                EP = (e[:, layer.index] * cf.abs() + gamma(1) * P.abs()) * SAFETY
                out.append((P, EP))
                if l == upto:
                    return out
                w = pat[:, net.layer_slice(l)].long()[:, :, None, None].expand(C, layer.units, 1, m1)
                nz = P.gather(2, w)[:, :, 0]
                ne = EP.gather(2, w)[:, :, 0]
            else:
                F = z.shape[1]
                zt = z.transpose(1, 2).reshape(C * m1, F)
                et = e.transpose(1, 2).reshape(C * m1, F)
                nzt = layer.linear(zt)
                net_ = self._abs_linear(i, layer, et) + gamma(self._fan_in(layer) + 2) * self._abs_linear(i, layer, zt.abs())
                nz = nzt.reshape(C, m1, -1).transpose(1, 2)
                ne = net_.reshape(C, m1, -1).transpose(1, 2)
                if layer.bias is not None:
                    nz = nz + layer.bias[None, :, None] * S[:, None, :]
                    ne = ne + gamma(self._fan_in(layer) + 2) * layer.bias.abs()[None, :, None] * S.abs()[:, None, :]
                ne = ne * SAFETY
            vals[i] = (nz, ne)
            for j in node.inputs:
                if net._last_use.get(j) == i:
                    vals.pop(j, None)
        return out


def rows_of_layer(P, EP, win, valid):
    """Region rows of one layer with winners ``win`` (C, U): ``p_w - p_b`` for every other valid piece
    ``b`` (C, U, K, m1) with error bounds; rows of ``b = w`` and invalid ``b`` are zero with
    ``mask`` False. Returns ``(R, ER, mask)``."""
    C, Uu, K, m1 = P.shape
    w = win.long()[:, :, None, None].expand(C, Uu, 1, m1)
    pw, ew = P.gather(2, w), EP.gather(2, w)
    R = pw - P
    ER = (ew + EP + gamma(1) * R.abs()) * SAFETY
    mask = valid[None].expand(C, -1, -1) & (torch.arange(K, device=P.device)[None, None] != win.long()[:, :, None])
    R = R * mask[..., None]
    ER = ER * mask[..., None]
    return R, ER, mask


class ExactMaps:
    """The maps of :class:`MapEvaluator` in exact rational arithmetic, one cell at a time."""

    def __init__(self, net):
        self.net = net
        self._tabs = {}
        for i, node in enumerate(net.nodes[1:], start=1):
            layer = node.layer
            if isinstance(layer, AvgPool):
                self._tabs = None  # its 1/k weights are not float64 numbers: no exact reading
                break

    def _tab(self, i, layer):
        t = self._tabs.get(i)
        if t is None:
            W, b = layer.dense()
            Wf = _frac(W)
            bf = _frac(b) if layer.bias is not None else np.array([Fraction(0)] * W.shape[0], dtype=object)
            t = self._tabs[i] = (Wf, bf)
        return t

    def maps(self, Z, S, pat, upto: int):
        """``Z`` (d_in, m1) object array of Fractions, ``S`` (m1,) Fractions, ``pat`` (n_units,) ints.
        Returns per layer ``0..upto`` an object array (U, K, m1) (invalid pieces None)."""
        if self._tabs is None:
            raise DegenerateGeometryError("a decision needs exact arithmetic, which this network's average "
                                          "pooling (weights 1/k, not float64 numbers) does not allow")
        net = self.net
        vals = {0: Z}
        out = []
        l = -1
        for i, node in enumerate(net.nodes[1:], start=1):
            layer = node.layer
            z = vals[node.inputs[0]]
            if isinstance(layer, Add):
                nz = z + vals[node.inputs[1]]
            elif isinstance(layer, MaxUnits):
                l += 1
                idx = layer.index.cpu().numpy()
                cf = layer.coef.cpu().numpy()
                valid = layer.valid.cpu().numpy()
                Uu, K = idx.shape
                P = np.empty((Uu, K, z.shape[1]), dtype=object)
                for u in range(Uu):
                    for k in range(K):
                        if valid[u, k]:
                            P[u, k] = z[idx[u, k]] * Fraction(float(cf[u, k]))
                out.append(P)
                if l == upto:
                    return out
                w = pat[net.layer_slice(l)]
                nz = np.stack([P[u, int(w[u])] for u in range(Uu)]) if Uu else z[:0]
            else:
                W, b = self._tab(i, layer)
                nz = W.dot(z) + np.outer(b, S)
            vals[i] = nz
            for j in node.inputs:
                if net._last_use.get(j) == i:
                    vals.pop(j, None)
        return out


def _frac(t) -> np.ndarray:
    a = t.detach().cpu().double().numpy()
    out = np.empty(a.shape, dtype=object)
    flat = out.reshape(-1)
    flat[:] = [Fraction(float(v)) for v in a.reshape(-1)]
    return out


def frac_array(t) -> np.ndarray:
    return _frac(torch.as_tensor(t))


def solve_nonneg(M: list, rhs: list, guess: list):
    """A solution ``mu`` of the exact linear system ``M mu = rhs`` (Fractions; rows of M are lists)
    with the free variables (if any) set to ``guess``; None if inconsistent. Gauss-Jordan."""
    rows = [list(r) + [v] for r, v in zip(M, rhs)]
    ncol = len(guess)
    piv_cols = []
    rk = 0
    for c in range(ncol):
        p = next((i for i in range(rk, len(rows)) if rows[i][c] != 0), None)
        if p is None:
            continue
        rows[rk], rows[p] = rows[p], rows[rk]
        pv = rows[rk][c]
        rows[rk] = [v / pv for v in rows[rk]]
        for i in range(len(rows)):
            if i != rk and rows[i][c] != 0:
                f = rows[i][c]
                rows[i] = [a - f * b for a, b in zip(rows[i], rows[rk])]
        piv_cols.append(c)
        rk += 1
    for i in range(rk, len(rows)):
        if rows[i][-1] != 0:
            return None
    mu = [Fraction(g) for g in guess]
    free = [c for c in range(ncol) if c not in piv_cols]
    for i, c in enumerate(piv_cols):
        mu[c] = rows[i][-1] - sum(rows[i][f] * mu[f] for f in free)
    return mu


class ExactX:
    """Exact forced-winner maps as Python integers over one power of two per layer (dyadic
    rationals: every float64 weight is one), through the integer tables of
    :func:`relulab.regions._exact.exact_chain`; networks that are not chains (residual additions)
    use :class:`ExactMaps` (Fractions). Results are cached by the pattern prefix they depend on."""

    def __init__(self, net):
        from relulab.regions._exact import exact_chain

        self.net = net
        self.tabs = exact_chain(net)  # (x-space maps: the bias enters the constant column only)
        self.frac = ExactMaps(net) if self.tabs is None else None
        self.cache = {}

    def maps(self, Z, e, pat, upto: int, key=None):
        """``Z`` (d, m1) object array of ints, the input's maps times ``2**e``; ``pat`` winners (ints).
        Returns per layer ``0..upto`` ``(P, e_l)``: P (U, K, m1) object (None for invalid pieces), the
        piece maps times ``2**e_l`` (``e_l`` None: P holds Fractions). With ``key`` (the same input
        ``Z, e`` at every call) each layer's maps are cached by the winners of the layers before it,
        which they alone depend on."""
        if key is not None and self.tabs is not None:
            return self._layer_maps(Z, e, pat, upto)
        if key is not None and key in self.cache:
            return self.cache[key]
        if self.tabs is None:
            Zf = np.vectorize(lambda v: Fraction(v, 1 << e), otypes=[object])(Z)
            S = np.array([Fraction(1)] + [Fraction(0)] * (Z.shape[1] - 1), dtype=object)
            out = [(P, None) for P in self.frac.maps(Zf, S, pat, upto)]
        else:
            out = []
            l = -1
            for tab in self.tabs:
                if tab[0] == "affine":
                    Z, e = exact_affine(tab, Z, e)
                else:
                    l += 1
                    _, idx, cf, ec, valid = tab
                    Uu = idx.shape[0]
                    P = _pieces(Z, idx, cf, valid)
                    out.append((P, e + ec))
                    if l == upto:
                        break
                    w = pat[self.net.layer_slice(l)]
                    Z = np.stack([P[u, int(w[u])] for u in range(Uu)]) if Uu else Z[:0]
                    e = e + ec
        if key is not None:
            if len(self.cache) >= 256:
                self.cache.pop(next(iter(self.cache)))  # the oldest entry
            self.cache[key] = out
        return out


    def _layer_maps(self, Z, e, pat, upto):
        if not hasattr(self, "_segs"):
            # the affine tables before each max layer, and that layer's table
            self._segs, cur = [], []
            for tab in self.tabs:
                if tab[0] == "affine":
                    cur.append(tab)
                else:
                    self._segs.append((cur, tab))
                    cur = []
            self.lcache = {}
        out = []
        for l in range(upto + 1):
            lk = (l, pat[:self.net.unit_offsets[l]].tobytes())
            hit = self.lcache.get(lk)
            if hit is None:
                if l:
                    # the input of layer l: the previous layer's winning pieces (built on a miss only)
                    P, e = out[-1]
                    w = pat[self.net.layer_slice(l - 1)].astype(np.int64)
                    Z = P[np.arange(P.shape[0]), w] if P.shape[0] else Z[:0]
                aff, (_, idx, cf, ec, valid) = self._segs[l]
                for tab in aff:
                    Z, e = exact_affine(tab, Z, e)
                hit = (_pieces(Z, idx, cf, valid), e + ec)
                if len(self.lcache) >= 1024:
                    self.lcache.pop(next(iter(self.lcache)))  # the oldest entry
                self.lcache[lk] = hit
            out.append(hit)
        return out


def _pieces(Z, idx, cf, valid):
    """Exact piece maps (U, K, m1) of a max layer (integer coefficients; None for invalid pieces)."""
    Uu, K = idx.shape
    P = np.empty((Uu, K, Z.shape[1]), dtype=object)
    for u in range(Uu):
        for k in range(K):
            if valid[u, k]:
                P[u, k] = Z[idx[u, k]] * cf[u, k]
    return P


def frac_vec(v, e) -> list:
    """An exact map (ints times 2**-e, or Fractions when ``e`` is None) as a list of Fractions."""
    if e is None:
        return list(v)
    den = 1 << e
    return [Fraction(int(x), den) for x in v]


def dyadic_ints(t):
    """``(ints list, e)`` with ``t == ints / 2**e`` exactly (a float64 vector)."""
    from relulab.regions._exact import dyadic

    v, e = dyadic(torch.as_tensor(t).reshape(-1))
    return [int(x) for x in v], e


def int_solve_den(M: list, rhs: list):
    """Exact solution of ``M mu = rhs`` (integer rows) as ``(nums, den)`` with ``mu = nums / den``,
    ``den != 0``, free variables 0; None if inconsistent. Fraction-free elimination (Bareiss 1968:
    every entry after step ``k`` is a ``k + 1`` minor, so each division by the previous pivot is
    exact) followed by back substitution scaled by the last pivot ``den`` (Cramer's rule makes
    ``den * mu`` integral, so those divisions are exact too). No rationals are formed, which is
    several times faster than elimination over Fractions; the result is re-checked against ``M``
    and ``rhs`` in integers, and an inexact division (never expected) falls back to the
    Gauss-Jordan elimination over Fractions of :func:`solve_nonneg`."""
    A = [list(r) + [v] for r, v in zip(M, rhs)]
    nr = len(A)
    nc = len(A[0]) - 1 if A else 0
    prev, r, piv = 1, 0, []
    for c in range(nc):
        p = next((i for i in range(r, nr) if A[i][c] != 0), None)
        if p is None:
            continue
        A[r], A[p] = A[p], A[r]
        pr = A[r]
        pv = pr[c]
        for i in range(r + 1, nr):
            ai = A[i]
            f = ai[c]
            row = []
            for j in range(nc + 1):
                q, rem = divmod(pv * ai[j] - f * pr[j], prev)
                if rem:
                    return _fallback_den(M, rhs)
                row.append(q)
            A[i] = row
        prev = pv
        piv.append(c)
        r += 1
    for i in range(r, nr):
        if A[i][nc] != 0:
            return None
    den = prev
    nums = [0] * nc
    for i in reversed(range(r)):
        c = piv[i]
        q, rem = divmod(den * A[i][nc] - sum(A[i][j] * nums[j] for j in piv[i + 1:]), A[i][c])
        if rem:
            return _fallback_den(M, rhs)
        nums[c] = q
    for row, v in zip(M, rhs):
        if sum(a * b for a, b in zip(row, nums)) != v * den:
            return _fallback_den(M, rhs)
    return nums, den


def _fallback_den(M, rhs):
    mu = _frac_solve(M, rhs)
    if mu is None:
        return None
    import math as _m

    den = _m.lcm(*[v.denominator for v in mu]) if mu else 1
    return [int(v * den) for v in mu], den


def _frac_solve(M, rhs):
    return solve_nonneg([[Fraction(v) for v in r] for r in M], [Fraction(v) for v in rhs], [0] * len(M[0]))


def other_rows(P, EP, win, valid):
    """Region rows ``p_w - p_o`` of one layer for the ``K - 1`` other pieces ``o`` of every unit
    (slot ``s`` is piece ``s + (s >= w)``): (C, U, K-1, m1) with error bounds; rows of invalid
    pieces are zero."""
    C, Uu, K, m1 = P.shape
    win = win.long()
    slot = torch.arange(max(K - 1, 0), device=P.device)
    other = slot[None, None] + (slot[None, None] >= win[:, :, None]).long()  # (C, U, K-1)
    w = win[:, :, None, None].expand(C, Uu, 1, m1)
    o = other[..., None].expand(C, Uu, K - 1, m1)
    R = P.gather(2, w) - P.gather(2, o)
    ER = (EP.gather(2, w) + EP.gather(2, o) + gamma(1) * R.abs()) * SAFETY
    ok = valid[None].expand(C, -1, -1).gather(2, other)
    return R * ok[..., None], ER * ok[..., None]
