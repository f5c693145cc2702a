"""Certificates for the activation regions met by segments (filtered predicates at any scale).

The float64 walk of :mod:`relulab.regions.line` returns, per segment, intervals ``[t_i, t_{i+1}]``
with activation patterns ``p_i``. The sequence is the exact one (exact rational arithmetic on the
float64 weights and segment ends) iff on every open interval ``(r_i, r_{i+1})`` between the *exact*
breakpoints every unit's winner under ``p_i`` beats each other piece: ``g_w(t) - g_k(t) > 0`` for
``k < w`` and ``>= 0`` for ``k > w`` (ties go to the lowest index, as in :meth:`PLNet.pattern`).
Every such difference is affine in ``t`` and depends only on the winners of earlier max layers, so
it suffices to check it

* at the ends of each *run* of intervals on which the earlier layers' pattern is constant (one
  forward pass per run, not per interval), and
* at the breakpoints inside the run where the unit itself changes its winner.

A breakpoint where max layer ``l`` first differs is the root ``r`` of the difference ``h`` of the
changing unit's two winners; from ``h`` at the float breakpoint ``tau`` and its error bound,
``|r - tau| <= delta = (|h(tau)| + E) / (|h'| - E')``. A check at ``r`` then holds when the
difference is certainly positive on the whole window ``[tau - delta, tau + delta]``: ``h(tau) - E -
(|h'| + E') delta > 0``. Consecutive windows must be disjoint, so the exact intervals keep their
order and none is empty.

No interval's pattern is derived from its neighbour's: several units may change at one breakpoint
(a ReLU and every later unit whose pieces it separates, e.g. a max-pool over a padded convolution
whose features all equal the bias while the ReLUs before it are off, a tie that breaks either way
where one turns on), and each interval's winners are checked on their own. Only the breakpoint's
position comes from the first changed layer, whose changing units must then share one root.

Error bounds (Higham, *Accuracy and Stability of Numerical Algorithms*, Sec. 3.1 and 3.5): every
node carries ``N``, a bound on its magnitude over the segment under the pattern (``|a|, |b|`` at the
input, ``|L| N + |b|`` through affine maps, ``|coef| N`` through the winning piece); if the computed
values satisfy ``|z^ - z| <= c N`` then an affine layer with fan-in ``n`` gives ``c' = c +
gamma_{n+1} (1 + c)`` and a max unit ``c' = c + u (1 + c)``. Values at ``t = 0`` and slopes (``|z'|
<= 2 N``) both follow. Structurally zero pieces (``N = 0``, e.g. dead ReLUs feeding a max-pool)
are exact zeros.

Checks the bound cannot settle go to exact integer arithmetic
(:func:`relulab.regions._exact.exact_pieces`, which handles residual networks too): the exact
pieces at the run, the exact breakpoint as a rational number, exact signs. Returns whether the
float sequence is exact, and how many checks needed the exact stage.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from relulab.core.layers import Add, MaxUnits
from relulab.regions._exact import U as _U
from relulab.regions._exact import ConePieces, exact_pieces, exact_tables, gamma

_SAFE = 1.0 + 1e-6  # slack on every computed bound (the bounds themselves are rounded)
_MAX_EXACT_ENTRIES = 2 * 10**7  # weight entries (Python-integer multiply-adds) the exact stage may spend
_MAX_TABLE = 10**6  # dense weight entries above which the exact stage is not attempted


class CertOutcome:
    """``ok`` True (certified), False (the float sequence is wrong somewhere) or None (undecided:
    the exact stage is unavailable or over budget); ``filtered`` / ``exact`` decisions."""

    __slots__ = ("ok", "filtered", "exact", "reason")

    def __init__(self, ok, filtered=0, exact=0, reason=""):
        self.ok, self.filtered, self.exact, self.reason = ok, filtered, exact, reason


def _error_factors(net):
    """Per node, ``c`` with ``|z^ - z| <= c N`` for the computed values (see the module docstring)."""
    c = [_U]  # the input's slope b - a is rounded once
    for nd in net.nodes[1:]:
        lay = nd.layer
        if isinstance(lay, Add):
            m = max(c[j] for j in nd.inputs)
            c.append(m + _U * (1 + m))
        elif isinstance(lay, MaxUnits):
            m = c[nd.inputs[0]]
            c.append(m + _U * (1 + m))
        else:
            m = c[nd.inputs[0]]
            n = int(math.prod(lay.in_shape))
            c.append(m + gamma(n + 2) * (1 + m))
    return [2.0 * x for x in c]  # the magnitude bounds are rounded too: a factor 2 covers them


def _pre_max(net, a, D, N0):
    """Values, slopes and magnitude bounds of the nodes before the first max layer (they do not
    depend on the pattern), per segment: ``{node: (x, t, n)}`` for those read later."""
    first = net.max_layers[0] if net.max_layers else len(net.nodes)
    out = _forward_pieces(net, -1, a, D, N0, None, stop=first)
    return {j: v for j, v in out.items() if any(j in nd.inputs for nd in net.nodes[first:])}


def _forward_pieces(net, l: int, a, D, N0, P, pre=None, rows=None, stop=None):
    """Pieces of max layer ``l`` under the patterns ``P`` (R, n_units) on rows with inputs
    ``x(t) = a + t D`` and input magnitude bounds ``N0``: values at ``t = 0``, slopes and magnitude
    bounds, each (R, U, K). ``pre`` (from :func:`_pre_max`, per segment) with ``rows`` the rows'
    segments skips the pattern-free start. With ``stop``, returns the node values before it."""
    if pre is not None:
        vals = {j: tuple(x[rows] for x in v) for j, v in pre.items()}
        start = net.max_layers[0]
        R = rows.numel()
    else:
        vals = {0: (a, D, N0)}
        start = 1
        R = a.shape[0]
    last_use = {}
    for i, nd in enumerate(net.nodes):
        for j in nd.inputs:
            last_use[j] = i
    m = 0
    for i, nd in enumerate(net.nodes[start:], start):
        if stop is not None and i >= stop:
            return vals
        lay = nd.layer
        if isinstance(lay, Add):
            (xa, ta, na), (xb, tb, nb) = vals[nd.inputs[0]], vals[nd.inputs[1]]
            vals[i] = (xa + xb, ta + tb, lay.magnitude(na, nb))
        elif isinstance(lay, MaxUnits):
            x, t, n = vals[nd.inputs[0]]
            if m == l:
                valid = lay.valid
                pa = x[:, lay.index] * lay.coef
                pt = t[:, lay.index] * lay.coef
                pn = lay.piece_magnitudes(n)
                return pa.masked_fill(~valid, 0.0), pt.masked_fill(~valid, 0.0), pn
            sl = net.layer_slice(m)
            w = P[:, sl].long()
            y, _, cf = lay.select(x, w)
            yt, _, _ = lay.select(t, w)
            yn = lay.piece_magnitudes(n).gather(2, w[..., None])[..., 0]
            vals[i] = (y, yt, yn)
            m += 1
        else:
            x, t, n = vals[nd.inputs[0]]
            Y = lay.linear(torch.cat([x, t], 0))
            y = Y[:R] if lay.bias is None else Y[:R] + lay.bias
            vals[i] = (y, Y[R:], lay.magnitude(n))
        for j in nd.inputs:
            if last_use.get(j) == i and stop is None:
                vals.pop(j, None)
    if stop is not None:
        return vals
    raise ValueError(f"no max layer {l}")


def _patterns_at(base, deltas, rows, n_cols):
    """Dense patterns (len(rows), n_cols) of the given sorted rows (first ``n_cols`` units)."""
    dev = base.device
    R = rows.numel()
    acc = torch.zeros(R + 1, n_cols, dtype=torch.int32, device=dev)
    if deltas.numel():
        sel = deltas[:, 1] < n_cols
        d = deltas[sel]
        bucket = torch.searchsorted(rows, d[:, 0].contiguous(), right=False)
        acc.index_put_((bucket, d[:, 1]), d[:, 2].to(torch.int32), accumulate=True)
    return base[:n_cols].to(torch.int32)[None] + acc[:R].cumsum(0, dtype=torch.int32)


def certify_segments(net, a, b, seg, t0, t1, base, deltas, *, chunk: int = 4096,
                     max_work: float = 1e8) -> CertOutcome:
    """Check the float walk's intervals (``seg``, ``t0``, ``t1`` flattened and sorted by segment,
    then ``t``) and patterns (``base`` plus sparse ``deltas`` rows (interval, unit, change))
    against exact arithmetic; see the module docstring. ``max_work``: the most (run x units) checks
    plus (run x layer inputs) forward entries to spend; beyond it the outcome is undecided."""
    dev, dt = t0.device, t0.dtype
    Nn = t0.numel()
    L = len(net.max_layers)
    if Nn == 0 or L == 0:
        return CertOutcome(True)
    D = b - a
    N0 = torch.maximum(a.abs(), b.abs())
    if not (bool(torch.isfinite(D).all()) and bool(torch.isfinite(N0).all())):
        return CertOutcome(None, reason="segment ends overflow float64")
    cfac = _error_factors(net)
    pre = _pre_max(net, a, D, N0)
    offs = torch.tensor(net.unit_offsets, device=dev)
    unit_layer = torch.repeat_interleave(torch.arange(L, device=dev), offs[1:] - offs[:-1])
    base = base.long()
    deltas = deltas.long() if deltas.numel() else torch.zeros(0, 3, dtype=torch.long, device=dev)
    # interior boundaries: row r > 0 whose segment is the previous row's
    interior = torch.zeros(Nn, dtype=torch.bool, device=dev)
    interior[1:] = seg[1:] == seg[:-1]
    dl = deltas[interior[deltas[:, 0]]] if deltas.numel() else deltas
    INF = L + 1
    first_layer = torch.full((Nn,), INF, dtype=torch.long, device=dev)
    if dl.numel():
        first_layer.scatter_reduce_(0, dl[:, 0], unit_layer[dl[:, 1]], reduce="amin")
    # windows about the float breakpoints: delta[r] for the boundary at the start of row r
    delta = torch.zeros(Nn, dtype=dt, device=dev)
    n_changes = torch.zeros(Nn, dtype=torch.long, device=dev)
    if dl.numel():
        n_changes.index_add_(0, dl[:, 0], (unit_layer[dl[:, 1]] == first_layer[dl[:, 0]]).long())
    unsure = []  # (row of the run's pattern, layer, unit, winner, point row, side, excluded piece)
    unsure_bp = set()  # boundary rows whose exact breakpoint must be computed and compared
    filtered = 0
    last_row = torch.ones(Nn, dtype=torch.bool, device=dev)
    last_row[:-1] = seg[1:] != seg[:-1]
    # the work ahead: one forward pass per run of each layer and a check of each of its units
    work = 0
    for l in range(L):
        runs = int((~interior | (first_layer < l)).sum())
        work += runs * (net.max_units[l].index.numel() + sum(
            int(math.prod(getattr(nd.layer, "in_shape", (1,)))) for nd in net.nodes[1:net.max_layers[l]]))
    if work > max_work:
        return CertOutcome(None, reason=f"the certificate's work ({work:.3g}) is over its budget ({max_work:.3g})")
    for l in range(L):
        layer = net.max_units[l]
        U, K = layer.index.shape
        lo, hi = net.unit_offsets[l], net.unit_offsets[l + 1]
        gs = ~interior | (first_layer < l)
        reps = gs.nonzero()[:, 0]
        gid = torch.cumsum(gs.long(), 0) - 1
        ends = torch.cat([reps[1:] - 1, torch.tensor([Nn - 1], device=dev)])
        cp = cfac[net.max_layers[l]]
        # this layer's interior changes: (row, unit) with the run's rows, sorted by (unit, row)
        chg = dl[(unit_layer[dl[:, 1]] == l)] if dl.numel() else dl
        chg = chg[~gs[chg[:, 0]]] if chg.numel() else chg
        for g0 in range(0, reps.numel(), chunk):
            g1 = min(reps.numel(), g0 + chunk)
            rr = reps[g0:g1]
            C = rr.numel()
            P = _patterns_at(base, deltas, rr, hi)
            s_ = seg[rr]
            pa, pt, pn = _forward_pieces(net, l, None, None, None, P, pre=pre, rows=s_)
            if not (bool(torch.isfinite(pa).all()) and bool(torch.isfinite(pt).all())
                    and bool(torch.isfinite(pn).all())):
                return CertOutcome(None, reason="float64 overflow in the network's values")
            valid = layer.valid
            w_first = P[:, lo:hi].long()
            # the run's changes of this layer
            if chg.numel():
                cg = gid[chg[:, 0]]
                sel = (cg >= g0) & (cg < g1)
                cr, cu, cd = chg[sel, 0], chg[sel, 1] - lo, chg[sel, 2]
                cgl = cg[sel] - g0
                # sort by (run, unit, row)
                key = (cgl * U + cu) * (Nn + 1) + cr
                order = torch.argsort(key)
                cr, cu, cd, cgl = cr[order], cu[order], cd[order], cgl[order]
                csum = torch.cumsum(cd, 0)
                newk = torch.ones_like(cr, dtype=torch.bool)
                newk[1:] = (cgl[1:] != cgl[:-1]) | (cu[1:] != cu[:-1])
                kstart = torch.cummax(torch.where(newk, torch.arange(cr.numel(), device=dev), 0), 0).values
                before = csum - cd - (csum[kstart] - cd[kstart])  # changes before this one in its run
                w_old = w_first[cgl, cu] + before
                w_new = w_old + cd
                w_last = w_first.clone()
                w_last.index_put_((cgl, cu), cd, accumulate=True)
            else:
                cr = cu = cgl = w_old = w_new = torch.zeros(0, dtype=torch.long, device=dev)
                w_last = w_first
            # windows of this layer's breakpoints: from the changing unit's own difference
            if cr.numel():
                ha = pa[cgl, cu, w_old] - pa[cgl, cu, w_new]
                hb = pt[cgl, cu, w_old] - pt[cgl, cu, w_new]
                nn_ = pn[cgl, cu, w_old] + pn[cgl, cu, w_new]
                E = (3 * cp * nn_ + 4 * _U * (ha.abs() + hb.abs())) * _SAFE
                Eb = (2 * cp * nn_ + 2 * _U * hb.abs()) * _SAFE
                tau = t0[cr]
                val = ha + tau * hb
                dec = hb < -Eb
                dlt = torch.where(dec, (val.abs() + E) / (hb.abs() - Eb).clamp_min(1e-300) * _SAFE,
                                  torch.full_like(val, math.inf))
                delta.scatter_reduce_(0, cr, dlt, reduce="amax")
                for r in cr[~dec | (n_changes[cr] > 1)].tolist():
                    unsure_bp.add(r)

            two = K == 2 and bool(valid.all())
            if two:  # the difference p0 - p1 of every (run, unit), once
                d_a = (pa[..., 0] - pa[..., 1]).reshape(-1)
                d_t = (pt[..., 0] - pt[..., 1]).reshape(-1)
                d_n = (pn[..., 0] + pn[..., 1]).reshape(-1)

            def check(g, u, w, prow, side, excl, flat=None):
                """Items (run g, unit u, winner w) at the breakpoint of row ``prow`` (the start of
                ``prow`` if side > 0, its end if side < 0); ``excl`` a piece not to compare.
                ``flat``: the items are every (run, unit) in order (no gathering needed)."""
                nonlocal filtered
                if g.numel() == 0:
                    return
                if side > 0:
                    tau, dd = t0[prow], torch.where(interior[prow], delta[prow], torch.zeros_like(t0[prow]))
                else:
                    nxt = (prow + 1).clamp_max(Nn - 1)
                    tau = t1[prow]
                    dd = torch.where(last_row[prow], torch.zeros_like(tau), delta[nxt])
                if two:
                    sgn = (1 - 2 * w).to(dt)
                    j = None if flat else g * U + u
                    ha = sgn * (d_a if flat else d_a[j])
                    hb = sgn * (d_t if flat else d_t[j])
                    nn_ = d_n if flat else d_n[j]
                    E = (3 * cp * nn_ + 4 * _U * (ha.abs() + hb.abs())) * _SAFE
                    Eb = (2 * cp * nn_ + 2 * _U * hb.abs()) * _SAFE
                    good = (ha + tau * hb) - E - (hb.abs() + Eb) * dd * _SAFE > 0
                    zero = (ha == 0) & (hb == 0) & (nn_ == 0) & (w == 0)
                    ok = (good | zero | (excl >= 0)) & torch.isfinite(dd)
                else:
                    wa, wt, wn = pa[g, u].gather(1, w[:, None]), pt[g, u].gather(1, w[:, None]), pn[g, u].gather(1, w[:, None])
                    ha, hb, nn_ = wa - pa[g, u], wt - pt[g, u], wn + pn[g, u]  # (I, K)
                    E = (3 * cp * nn_ + 4 * _U * (ha.abs() + hb.abs())) * _SAFE
                    Eb = (2 * cp * nn_ + 2 * _U * hb.abs()) * _SAFE
                    val = ha + tau[:, None] * hb
                    good = val - E - (hb.abs() + Eb) * dd[:, None] * _SAFE > 0
                    kk = torch.arange(K, device=dev)[None]
                    zero = (ha == 0) & (hb == 0) & (nn_ == 0) & (kk > w[:, None])
                    skip = (kk == w[:, None]) | ~valid[u] | (kk == excl[:, None])
                    ok = (good | zero | skip).all(1) & torch.isfinite(dd)
                filtered += int(ok.sum()) * max(K - 1, 1)
                bad = (~ok).nonzero()[:, 0]
                if bad.numel():
                    gg = (g[bad] + g0).tolist()
                    for gi, ui, wi, pr, ex in zip(gg, u[bad].tolist(), w[bad].tolist(), prow[bad].tolist(),
                                                  excl[bad].tolist()):
                        unsure.append((int(reps[gi]), l, ui, wi, pr, side, ex))

            ar = torch.arange(C, device=dev)
            gg = ar[:, None].expand(C, U).reshape(-1)
            uu = torch.arange(U, device=dev)[None].expand(C, U).reshape(-1)
            none = torch.full_like(gg, -1)
            check(gg, uu, w_first.reshape(-1), rr[gg], +1, none, flat=True)
            check(gg, uu, w_last.reshape(-1), ends[g0:g1][gg], -1, none, flat=True)
            if cr.numel():
                check(cgl, cu, w_old, cr - 1, -1, w_new)
                check(cgl, cu, w_new, cr, +1, w_old)
    # consecutive windows disjoint: every exact interval keeps its place and is not empty
    left = torch.where(interior, t0 + delta, t0)
    nxt_delta = torch.zeros_like(delta)
    nxt_delta[:-1] = torch.where(interior[1:], delta[1:], torch.zeros_like(delta[1:]))
    right = t1 - nxt_delta
    tight = ~(left + 4 * _U * (t0.abs() + t1.abs()) < right)  # a few ulps for the rounded ends
    for r in tight.nonzero()[:, 0].tolist():
        if interior[r]:
            unsure_bp.add(r)
        if r + 1 < Nn and interior[r + 1]:
            unsure_bp.add(r + 1)
    if not unsure and not unsure_bp:
        return CertOutcome(True, filtered, 0)
    return _exact_stage(net, a, b, seg, t0, interior, base, deltas, unit_layer, first_layer, unsure,
                        unsure_bp, tight, filtered)


def _exact_stage(net, a, b, seg, t0, interior, base, deltas, unit_layer, first_layer, unsure, unsure_bp,
                 tight, filtered) -> CertOutcome:
    from relulab.regions.line import _pattern_row

    tabs = exact_tables(net, max_entries=_MAX_TABLE)
    # dense tables too large (convolutions expanded): each unit's exact pieces over its own
    # dependency cone instead, on first use. Their power of two is per unit, which cancels in every
    # comparison below (a root -A/B of one unit, the sign of one unit's piece difference)
    cone = tabs is None
    spent = [0]
    budget = [0]
    cache: dict = {}
    # weight entries pushed through before each max layer (the exact stage's cost per evaluation)
    upto = [0] * len(net.max_layers) if cone else \
        [sum(t[1].size for t in tabs[1:i] if t[0] == "affine") for i in net.max_layers]

    def pieces(row: int, l: int):
        key = (row, l)
        if key not in cache:
            budget[0] += upto[l] + 1
            if budget[0] > _MAX_EXACT_ENTRIES:
                raise _OverBudget
            s = int(seg[row])
            pattern = _pattern_row(base, deltas, row)
            cache[key] = ((ConePieces(net, a[s], b[s], pattern, l, spent, over=_OverBudget), 0) if cone
                          else exact_pieces(net, tabs, a[s], b[s], pattern, l))
        return cache[key]

    bps: dict = {}
    Nn = t0.numel()

    def breakpoint(r: int):
        """The exact breakpoint at the start of row ``r`` (0 at a segment's start); None if the
        units changing there disagree (the float sequence is wrong)."""
        if not bool(interior[r]):
            return Fraction(0)
        if r in bps:
            return bps[r]
        l = int(first_layer[r])
        if l > len(net.max_layers):
            bps[r] = None  # no change at a boundary: not a walk the certificate knows
            return None
        prev, cur = _pattern_row(base, deltas, r - 1), _pattern_row(base, deltas, r)
        P, _ = pieces(r, l)
        lo = net.unit_offsets[l]
        roots = set()
        for u in ((prev != cur).nonzero()[:, 0]).tolist():
            if int(unit_layer[u]) != l:
                continue
            wo, wn = int(prev[u]), int(cur[u])
            A = P[u - lo, wo, 0] - P[u - lo, wn, 0]
            B = P[u - lo, wo, 1] - P[u - lo, wn, 1]
            if not B < 0:  # the old winner must fall below the new one, through a root
                bps[r] = None
                return None
            roots.add(Fraction(-A, B))
        bps[r] = roots.pop() if len(roots) == 1 else None
        return bps[r]

    def end_point(r: int):
        """The exact end of row ``r``: the next row's breakpoint, or 1 at a segment's end."""
        if r + 1 < Nn and bool(interior[r + 1]):
            return breakpoint(r + 1)
        return Fraction(1)

    n_exact = 0
    try:
        for r in sorted(unsure_bp):
            n_exact += 1
            if breakpoint(r) is None:
                return CertOutcome(False, filtered, n_exact, reason=f"breakpoint at interval {r}")
        for r in tight.nonzero()[:, 0].tolist():
            lo_, hi_ = breakpoint(r), end_point(r)
            n_exact += 1
            if lo_ is None or hi_ is None or not lo_ < hi_:
                return CertOutcome(False, filtered, n_exact, reason=f"interval {r} is empty")
        for rep, l, u, w, prow, side, excl in unsure:
            n_exact += 1
            P, _ = pieces(rep, l)
            pt = breakpoint(prow) if side > 0 else end_point(prow)
            if pt is None:
                return CertOutcome(False, filtered, n_exact, reason=f"breakpoint near interval {prow}")
            valid = net.max_units[l].valid[u].tolist()
            for k in range(len(valid)):
                if k == w or k == excl or not valid[k]:
                    continue
                A = P[u, w, 0] - P[u, k, 0]
                B = P[u, w, 1] - P[u, k, 1]
                v = A * pt.denominator + B * pt.numerator  # sign of h at pt (denominator > 0)
                if v > 0 or (v == 0 and side * B > 0) or (A == 0 and B == 0 and k > w):
                    continue
                return CertOutcome(False, filtered, n_exact,
                                   reason=f"unit {u + net.unit_offsets[l]} at interval {prow}")
    except _OverBudget:
        return CertOutcome(None, filtered, n_exact, reason="too many decisions for the exact stage")
    return CertOutcome(True, filtered, n_exact)


class _OverBudget(Exception):
    pass
