"""A proof of the vertex engine's result from its own cells: filtered exact vertices and facets.

The vertex engine (:mod:`relulab.regions.space`) refines the ``d + 1`` compactification pyramids
``P_k`` of R^d into cells, each kept as a list of vertices with, per vertex, the set ``T(v)`` of
constraints (bits) tight there. Its sign decisions use an estimated tolerance. This module proves,
without a second enumeration, that its cells are exactly the pieces ``region ∩ P_k``, hence that
its patterns are exactly the regions of R^d and its facet pairs exactly their adjacency.

Every quantity below is an affine function of the chart coordinates ``y`` computed in float64 with a
proven error bound (the forced-winner maps of :class:`relulab.regions._enum_maps.MapEvaluator`, in
compactified form ``s p(x) = N_s(R0 y)``, ``s = 1 - a_k . y``; every float64 datum is a rational, so
the exact rows are those of the float64 network). A cell with pattern ``p`` in pyramid ``k`` has the
H-description ``H(p, k)``: the pyramid's rows (``s >= 0``, ``(a_k - a_j) . y >= 0``) and, for every
unit ``q`` and every other valid piece ``b``, ``p_{w_q} - p_b >= 0``. Checks:

1. **Vertices.** Every listed vertex is simple (``|T(v)| = d``). Its exact position ``v*`` solves the
   ``d`` exact rows of ``T(v)``; with ``A`` their float gradients (errors ``E_A``), ``X ~ A^-1`` and
   ``alpha = ||I - X A*||_inf < 1`` bounded rigorously, ``||A*^-1||_inf <= ||X||_inf / (1 - alpha)``
   (Rump, "Verification methods", Acta Numerica 2010, Sec. 10), so ``|v* - v|_inf <= delta`` with
   ``delta = ||A*^-1|| ||rho||`` for the proven residual bound ``rho`` of the float vertex ``v``.
   Every row of ``H(p, k)`` not in ``T(v)`` must be positive at ``v*``: its value at ``v`` minus its
   evaluation error, its coefficients' error and ``|grad|_1 delta`` must stay > 0. Then ``v*`` is a
   vertex of the polytope ``H(p, k)`` with exactly the tight set ``T(v)``.
2. **Edges.** In a simple polytope, the edge at ``v`` leaving row ``i`` is the segment on which
   ``T(v) - {i}`` stays tight; its other end ``u*`` has ``T(u) ⊇ T(v) - {i}``, ``u* != v*``. The check:
   every ``(cell, T(v) - {i})`` occurs for exactly two listed vertices. Then every neighbour of a
   listed vertex is listed, and since the graph of a polytope is connected (Balinski), the listed
   vertices are all of them: the cell's closure is exactly ``conv(v*)``, full-dimensional, and its
   facets are the rows occurring in some ``T(v)`` (simple polytope).
3. **Facets.** On the relative interior of a facet ``F`` only its own row vanishes (any other row
   vanishing on ``F`` would be tight at ``F``'s vertices, which are simple). Across a facet on the
   row ``p_w - p_b`` of unit ``q`` the pattern is ``p`` with ``q``'s winner ``b`` (every other margin
   is continuous and positive there); across a wall of ``P_k`` it is ``p`` in the neighbouring
   pyramid; the outer facet ``s = 0`` is at infinity. Every such cell must be listed.

Completeness: let ``U`` be the union of the listed cells' closures, ``z`` a point of the simplex
outside ``U`` and ``c`` an interior point of a listed cell, chosen so that the segment ``[c, z]``
avoids every face of codimension 2 of every cell of the true subdivision (finitely many; a generic
``c`` does). Where the segment leaves ``U`` it crosses the relative interior of a facet of a listed
cell that is not on the outer facet, and by 3 the cell across is listed: a contradiction. So the
cells cover the simplex and every region of R^d has a listed cell. Every listed cell's interior
has all margins of its pattern positive (each row is >= 0 at every vertex and > 0 at some), so
every listed pattern is a region. The region adjacency (pairs of regions sharing a facet) is exactly
the set of pairs found in 3.

Anything the float64 filters cannot settle (non-simple vertices, ties, a sign within its error
bound), and boxes, return a reason instead of a proof; the caller then proves the result by the
facet engine's enumeration.
"""

from __future__ import annotations

import torch

from relulab.regions._enum_maps import SAFETY, MapEvaluator, gamma, rows_of_layer
from relulab.regions._enum_poly import bitmask, popcount, unpack_bits

# vertices whose rows are evaluated at once (memory: chunk x rows x (d + 1) floats, a few times)
CHUNK = 8192


class NotProven(Exception):
    """The float64 filters cannot settle the proof; the message says why."""


def prove_cells(eng, cells) -> torch.Tensor:
    """Prove the vertex engine's complete R^d result from its emitted cells (see the module
    docstring). ``cells``: the emitted batches' ``(X, cid, inc, pat, pyr, tie)`` in emission order;
    the cells' region ids are ``eng.cell_rid``. Returns the proven region adjacency, (E, 2) pairs
    ``i < j``; raises :class:`NotProven` with the reason where the filters cannot decide."""
    if eng.box is not None or not eng.compact:
        raise NotProven("boxes are proven by the facet engine")
    if eng.net.n_units == 0 or not eng.net.max_units:
        raise NotProven("no units: one region, proven by the facet engine")
    d, dev, dt = eng.d, eng.dev, eng.dt
    net = eng.net
    Xs, cids, incs, pats, pyrs = [], [], [], [], []
    off = 0
    for X, cid, inc, pat, pyr, tie in cells:
        if bool(tie.any()):
            raise NotProven("a unit is tied on a whole cell")
        Xs.append(X)
        cids.append(cid + off)
        incs.append(inc)
        pats.append(pat)
        pyrs.append(pyr)
        off += pat.shape[0]
    if off == 0:
        raise NotProven("no cells")
    X, cid, inc = torch.cat(Xs), torch.cat(cids), torch.cat(incs)
    pat, pyr = torch.cat(pats).long(), torch.cat(pyrs)
    C, NV, n = pat.shape[0], X.shape[0], net.n_units
    if not bool((popcount(inc) == d).all()):
        raise NotProven("a vertex is not simple")
    u = eng.units
    A = eng.A
    m1 = d + 1
    Kmax = max(int(m.valid.shape[1]) for m in net.max_units) if net.max_units else 1
    # the largest tensors below: every cell's unit rows with their error bounds (and their copies as
    # one row list), and every vertex's d tight rows with their inverses and error terms
    need = 8 * (5 * C * (max(n, 1) * Kmax + m1) * m1 + 8 * NV * d * m1)
    if need > eng.memory_budget:
        raise NotProven(f"the proof needs about {need / 2**30:.3g} GiB for {NV} vertices of {C} cells, over "
                        f"memory_budget={eng.memory_budget / 2**30:.3g} GiB")

    # ------------------------------------------------------------ rows of every cell (chart coordinates)
    Z = torch.zeros(C, d, m1, dtype=dt, device=dev)
    Z[:, :, 1:] = eng.R0 * torch.eye(d, dtype=dt, device=dev)
    S = torch.cat([torch.ones(C, 1, dtype=dt, device=dev), -A[pyr]], 1)  # s = 1 - a_k . y, exact
    L = len(net.max_units)
    R = torch.zeros(C, max(n, 1), Kmax, m1, dtype=dt, device=dev)
    ER = torch.zeros_like(R)
    RM = torch.zeros(C, max(n, 1), Kmax, dtype=torch.bool, device=dev)
    if L:
        maps = MapEvaluator(net).maps(Z, torch.zeros_like(Z), S, pat, L - 1)
        for l, (P, EP) in enumerate(maps):
            sl = net.layer_slice(l)
            r, er, mask = rows_of_layer(P, EP, pat[:, sl], net.max_units[l].valid)
            K = r.shape[2]
            R[:, sl, :K], ER[:, sl, :K], RM[:, sl, :K] = r, er, mask
    # bit of every unit row (q, other piece k): the pair (winner, k) of unit q
    k_idx = torch.arange(Kmax, device=dev)[None, None]
    w = pat[:, :, None]
    lo, hi = torch.minimum(w, k_idx), torch.maximum(w, k_idx)
    Kq = u.k[None, :, None]
    base = u.base[None, :, None]
    rowbit = torch.where(RM, base + lo * Kq - lo * (lo + 1) // 2 + (hi - lo - 1), -1)  # (C, n, Kmax)
    # chart rows: bit 0 the outer facet s >= 0; bit 1 + (j if j < k else j - 1) the wall (a_k - a_j) . y >= 0
    K1 = d + 1
    jj = torch.arange(d, device=dev)
    js = jj[None] + (jj[None] >= pyr[:, None]).long()  # (C, d): the pyramid across each wall
    walls = A[pyr][:, None, :] - A[js]  # (C, d, d)
    CR = torch.cat([S[:, None, :], torch.cat([torch.zeros(C, d, 1, dtype=dt, device=dev), walls], 2)], 1)
    CE = torch.cat([torch.zeros(C, 1, m1, dtype=dt, device=dev),
                    torch.cat([torch.zeros(C, d, 1, dtype=dt, device=dev), gamma(1) * walls.abs() * SAFETY], 2)], 1)
    if eng.n_dom != K1:
        raise NotProven("unexpected domain bits")

    # ------------------------------------------------------------ the tight rows of every vertex
    bits = unpack_bits(inc).nonzero()  # (NV d, 2), sorted by vertex then bit
    T = bits[:, 1].reshape(NV, d)
    vc = cid[:, None].expand(NV, d)
    is_dom = T < K1
    q = torch.where(is_dom, torch.zeros_like(T), u.bit_unit[T.clamp_max(u.n_ids - 1)])
    a_, b_ = u.bit_a[T.clamp_max(u.n_ids - 1)], u.bit_b[T.clamp_max(u.n_ids - 1)]
    wq = pat[vc, q]
    other = torch.where(a_ == wq, b_, torch.where(b_ == wq, a_, torch.full_like(a_, -1)))
    if bool(((other < 0) & ~is_dom).any()):
        raise NotProven("a tight pair of pieces does not hold the winner")
    other = other.clamp_min(0)
    Trow = torch.where(is_dom[..., None], CR[vc, T.clamp_max(K1 - 1)], R[vc, q, other])  # (NV, d, m1)
    Terr = torch.where(is_dom[..., None], CE[vc, T.clamp_max(K1 - 1)], ER[vc, q, other])

    # ------------------------------------------------------------ exact vertices: |v* - v| <= delta
    Ag, Ac = Trow[..., 1:], Trow[..., 0]
    EA, Ec = Terr[..., 1:], Terr[..., 0]
    ax = X.abs()
    res = Ac + (Ag * X[:, None, :]).sum(-1)
    rho = (res.abs() + gamma(d + 2) * (Ac.abs() + (Ag.abs() * ax[:, None, :]).sum(-1))
           + Ec + (EA * ax[:, None, :]).sum(-1)) * SAFETY
    try:
        Xi = torch.linalg.inv(Ag)
    except RuntimeError:
        raise NotProven("a vertex's tight rows are singular in float64")
    if not bool(torch.isfinite(Xi).all()):
        raise NotProven("a vertex's tight rows are singular in float64")
    eye = torch.eye(d, dtype=dt, device=dev)
    Rm = eye - Xi @ Ag
    Rb = (Rm.abs() + gamma(d + 2) * eye + Xi.abs() @ (gamma(d + 2) * Ag.abs() + EA)) * SAFETY
    alpha = Rb.sum(-1).amax(-1)
    if not bool((alpha < 0.5).all()):
        raise NotProven("a vertex's tight rows are too ill-conditioned for float64")
    ninv = Xi.abs().sum(-1).amax(-1) / (1 - alpha) * SAFETY
    delta = ninv * rho.amax(-1) * (1 + 4 * gamma(d + 2))  # (NV,)

    # ------------------------------------------------------------ every other row positive at v*
    # first per cell, on a box around the cell holding every v* (centre c, half-widths rho + delta):
    # rows positive on that box need nothing more; the few others (the cell's facets and rows that
    # pass close) are checked at every vertex of the cell
    rows = torch.cat([CR, R.reshape(C, -1, m1)], 1)  # (C, nr, m1)
    erows = torch.cat([CE, ER.reshape(C, -1, m1)], 1)
    rbit = torch.cat([torch.arange(K1, device=dev)[None].expand(C, -1), rowbit.reshape(C, -1)], 1)
    cnt = torch.bincount(cid, minlength=C)
    centre = torch.zeros(C, d, dtype=dt, device=dev).index_add_(0, cid, X) / cnt[:, None].to(dt)
    half = torch.zeros(C, d, dtype=dt, device=dev).scatter_reduce_(
        0, cid[:, None].expand(-1, d), (X - centre[cid]).abs(), "amax", include_self=True)
    dmax = torch.zeros(C, dtype=dt, device=dev).scatter_reduce_(0, cid, delta, "amax", include_self=True)
    half = (half + dmax[:, None]) * (1 + 4 * gamma(d + 2))
    ac = centre.abs() + half
    val = rows[..., 0] + (rows[..., 1:] * centre[:, None, :]).sum(-1)
    g1 = rows[..., 1:].abs()
    low = val - ((g1 * half[:, None, :]).sum(-1) + gamma(d + 2) * (rows[..., 0].abs() + (g1 * ac[:, None, :]).sum(-1))
                 + erows[..., 0] + (erows[..., 1:] * ac[:, None, :]).sum(-1)) * SAFETY
    near = (rbit >= 0) & ~(low > 0)  # (C, nr)
    pc, pr = near.nonzero(as_tuple=True)
    if pc.numel():
        # per (cell, row) pair: the row, and its error terms err = e0 + eb . |v| + gs delta at a vertex v
        prow = rows[pc, pr]
        perr = erows[pc, pr]
        pg = prow[:, 1:]
        e0 = gamma(d + 2) * prow[:, 0].abs() + perr[:, 0]
        eb = gamma(d + 2) * pg.abs() + perr[:, 1:]
        gs = (pg.abs() + perr[:, 1:]).sum(1)
        pbit = rbit[pc, pr]
        first = torch.cumsum(cnt, 0) - cnt
        reps = cnt[pc]
        pid = torch.repeat_interleave(reps)  # (vertex, row) checks: the pair of each
        within = torch.arange(pid.numel(), device=dev) - (torch.cumsum(reps, 0) - reps)[pid]
        vv = first[pc][pid] + within
        for s0 in range(0, vv.numel(), 32 * CHUNK):
            sl = slice(s0, min(vv.numel(), s0 + 32 * CHUNK))
            v_, p_ = vv[sl], pid[sl]
            x = X[v_]
            val = prow[p_, 0] + (pg[p_] * x).sum(-1)
            err = (e0[p_] + (eb[p_] * x.abs()).sum(-1) + gs[p_] * delta[v_]) * SAFETY
            bad = ~(val > err)
            if bool(bad.any()):
                # a row tight at the vertex (one of its d bits) is zero there by definition
                b_ = bad.nonzero().squeeze(1)
                if not bool((T[v_[b_]] == pbit[p_[b_]][:, None]).any(1).all()):
                    raise NotProven("a vertex's sign is within float64's error bound")

    # ------------------------------------------------------------ edges: each (cell, T - {i}) twice
    Wd = inc.shape[1]
    drop = bitmask(T.reshape(-1), Wd).view(NV, d, Wd)
    keys = torch.cat([cid[:, None, None].expand(NV, d, 1), inc[:, None, :] & ~drop], 2).reshape(NV * d, Wd + 1)
    g = torch.Generator().manual_seed(0xED6E)
    rk = torch.randint(-(2**62), 2**62, (Wd + 1,), generator=g, dtype=torch.int64).to(dev)
    h, order = torch.sort((keys * rk).sum(1))
    keys = keys[order]
    same = h[1:] == h[:-1]
    if bool((same & (keys[1:] != keys[:-1]).any(1)).any()):
        raise NotProven("a hash collision among edge keys")  # never seen; the proof then runs otherwise
    _, counts = torch.unique_consecutive(h, return_counts=True)
    if not bool((counts == 2).all()):
        raise NotProven("a vertex's edge has no listed other end")

    # ------------------------------------------------------------ facets: the cell across is listed
    fk = torch.unique(cid[:, None].expand(NV, d).reshape(-1) * (u.n_ids + 1) + T.reshape(-1))
    fc, fb = fk // (u.n_ids + 1), fk % (u.n_ids + 1)
    g = torch.Generator().manual_seed(0xFACE7)
    rv = torch.randint(-(2**62), 2**62, (n + 1,), generator=g, dtype=torch.int64).to(dev)
    full = torch.cat([pat, pyr[:, None]], 1)
    hs = (full * rv).sum(1)
    index = torch.sort(hs)
    from relulab.regions.space import _lookup

    unit_f = fb >= K1
    wall_f = (fb >= 1) & (fb < K1)
    # across a wall: the same pattern in the neighbouring pyramid
    wc, wb = fc[wall_f], fb[wall_f]
    qw = full[wc].clone()
    jw = (wb - 1) + ((wb - 1) >= pyr[wc]).long()
    qw[:, -1] = jw
    hw = hs[wc] + (jw - pyr[wc]) * rv[-1]
    if bool((_lookup(index, full, hw, qw) < 0).any()):
        raise NotProven("no cell across a pyramid wall")
    # across a unit row: that unit's winner changes to the other piece
    uc, ub = fc[unit_f], fb[unit_f]
    qu = u.bit_unit[ub]
    wq = pat[uc, qu]
    au, bu = u.bit_a[ub], u.bit_b[ub]
    new = torch.where(au == wq, bu, au)
    qf = full[uc].clone()
    qf[torch.arange(uc.numel(), device=dev), qu] = new
    hf = hs[uc] + (new - wq) * rv[qu]
    across = _lookup(index, full, hf, qf)
    if bool((across < 0).any()):
        raise NotProven("no cell across a facet")
    rid = eng.cell_rid
    e = torch.stack([rid[uc], rid[across]], 1)
    e = torch.sort(e, dim=1).values
    e = e[e[:, 0] != e[:, 1]]
    Rn = int(rid.max()) + 1 if rid.numel() else 0
    key = torch.unique(e[:, 0] * Rn + e[:, 1])
    return torch.stack([key // Rn, key % Rn], 1)
