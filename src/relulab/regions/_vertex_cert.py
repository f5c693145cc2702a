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

1. **Vertices.** A simple vertex (``|T(v)| = d``) is defined by its ``d`` rows; a non-simple one by ``d``
   basis rows of ``T(v)``, its other rows vanishing there by the lemma of :func:`_basis_rows` (vertices at
   infinity of ReLU chains). Its exact position ``v*`` solves the
   ``d`` exact basis rows; with ``A`` their float gradients (errors ``E_A``), ``X ~ A^-1`` and
   ``alpha = ||I - X A*||_inf < 1`` bounded rigorously, ``||A*^-1||_inf <= ||X||_inf / (1 - alpha)``
   (Rump, "Verification methods", Acta Numerica 2010, Sec. 10), so ``|v* - v|_inf <= delta`` with
   ``delta = ||A*^-1|| ||rho||`` for the proven residual bound ``rho`` of the float vertex ``v``.
   Every row of ``H(p, k)`` not in ``T(v)`` must be positive at ``v*``: its value at ``v`` minus its
   evaluation error, its coefficients' error and ``|grad|_1 delta`` must stay > 0. Then ``v*`` is a
   vertex of the polytope ``H(p, k)`` with exactly the tight set ``T(v)``.
2. **Edges.** At a simple vertex the edge leaving row ``i`` is the segment on which ``T(v) - {i}``
   stays tight; its other end ``u*`` has ``T(u) ⊇ T(v) - {i}``, ``u* != v*``. The check: every
   ``(cell, T(v) - {i})`` occurs for another listed vertex (the same key at a simple one, a superset
   at a non-simple one; no vertex is listed twice). At a non-simple vertex the tangent cone is proven
   spanned by edges to listed vertices (:func:`_tangent_cones`). Then every neighbour of a
   listed vertex is listed, and since the graph of a polytope is connected (Balinski), the listed
   vertices are all of them: the cell's closure is exactly ``conv(v*)``, full-dimensional, and its
   facets are the rows of ``T(v)`` at simple vertices and the facet rows of the tangent cones at
   non-simple ones. Rows constant in ``x`` (after a layer whose winners are all the zero piece) are
   positive multiples of ``s``: checked positive at the vertices with ``s > 0``, they repeat the
   outer facet and are left out of the description.
3. **Facets.** On the relative interior of a facet ``F`` only its own row vanishes (any other row
   vanishing on ``F`` would be tight at ``F``'s vertices and define ``F`` at their tangent cones, where
   each facet has one row). Across a facet on the
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

Anything the float64 filters cannot settle (non-simple vertices off the lemma or with cones not
proven, ties, a sign within its error bound), and boxes, return a reason instead of a proof; the caller then proves the result by the
facet engine's enumeration.
"""

from __future__ import annotations

import torch

from relulab.regions._enum_maps import SAFETY, MapEvaluator, gamma, rows_of_layer
from relulab.regions._enum_poly import bitmask, popcount, unpack_bits
from relulab.regions._jacobians import active_units, elementwise_chain

# vertices whose rows are evaluated at once (memory: chunk x rows x (d + 1) floats, a few times)
CHUNK = 8192
# vertices whose exactness is checked together (whole cells; the check's memory is a few kB per vertex)
VERTEX_GROUP = 1 << 14


class NotProven(Exception):
    """The float64 filters cannot settle the proof; the message says why."""


def prove_cells(eng, cells, prefer_facet: bool = False) -> torch.Tensor:
    """Prove the vertex engine's complete R^d result from its emitted cells (see the module
    docstring). ``cells``: the emitted batches' ``(X, cid, inc, pat, pyr, tie)`` in emission order;
    the cells' region ids are ``eng.cell_rid``. Returns the proven region adjacency, (E, 2) pairs
    ``i < j``; raises :class:`NotProven` with the reason where the filters cannot decide."""
    if eng.box is not None or not eng.compact:
        raise NotProven("boxes are proven by the facet engine")
    if eng.net.n_units == 0 or not eng.net.max_units:
        raise NotProven("no units: one region, proven by the facet engine")
    d, dev = eng.d, eng.dev
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
    if bool((cid[1:] < cid[:-1]).any()):
        raise NotProven("the vertices are not grouped by cell")
    u = eng.units
    m1 = d + 1
    K1 = d + 1
    pc = popcount(inc)
    if bool((pc < d).any()):
        raise NotProven("a vertex has fewer than d tight rows")
    simple = pc == d
    nsv = (~simple).nonzero().squeeze(1)
    Kmax = max(int(m.valid.shape[1]) for m in net.max_units) if net.max_units else 1
    # the largest tensors below: every cell's unit rows with their error bounds (and their copies as
    # one row list), and every vertex's d tight rows with their inverses and error terms
    # (the exactness checks run on groups of about VERTEX_GROUP vertices; a group's cells count fully)
    Cg, NVg = min(C, max(1, C * VERTEX_GROUP // NV)), min(NV, VERTEX_GROUP)
    def size(cells_at_once, vertices_at_once):
        return 8 * (5 * cells_at_once * (max(n, 1) * Kmax + m1) * m1 + 8 * vertices_at_once * d * m1) + 64 * NV

    need = size(Cg, NVg)
    if prefer_facet:
        # cells with this many vertices (8-12-1: vertex proof 113 CPU s, facet engine 2.5) are proven
        # faster by the facet engine; the grouped proof is for results the facet engine may not prove
        whole = size(C, NV)
        if whole > eng.memory_budget:
            raise NotProven(f"the proof needs about {whole / 2**30:.3g} GiB at once for {NV} vertices of {C} "
                            f"cells, over memory_budget={eng.memory_budget / 2**30:.3g} GiB: the facet engine's "
                            "proof is faster there")
    if need > eng.memory_budget:
        raise NotProven(f"the proof needs about {need / 2**30:.3g} GiB for {NV} vertices of {C} cells, over "
                        f"memory_budget={eng.memory_budget / 2**30:.3g} GiB")
    chain = elementwise_chain(net)
    flat = _flat_units(net, pat) if chain else torch.zeros(C, n, dtype=torch.bool, device=dev)

    # ------------------------------------------------------------ the d rows that define every vertex
    Tb = torch.empty(NV, d, dtype=torch.long, device=dev)
    sidx = simple.nonzero().squeeze(1)
    Tb[sidx] = unpack_bits(inc[sidx]).nonzero()[:, 1].reshape(-1, d)  # sorted by vertex then bit
    if nsv.numel():
        Tb[nsv] = _basis_rows(net, u, inc[nsv], pat[cid[nsv]], d, chain)

    if eng.n_dom != K1:
        raise NotProven("unexpected domain bits")
    # the vertices' exactness is checked a group of whole cells at a time (memory bounded by the group)
    cnt = torch.bincount(cid, minlength=C)
    end = torch.cumsum(cnt, 0)
    cuts = torch.unique(torch.searchsorted(end, torch.arange(1, NV // VERTEX_GROUP + 1, device=dev) * VERTEX_GROUP,
                                           right=True).clamp_max(C))
    bounds = [0] + [int(c) for c in cuts.tolist() if 0 < int(c) < C] + [C]
    for c0, c1 in zip(bounds[:-1], bounds[1:]):
        v0, v1 = int(end[c0 - 1]) if c0 else 0, int(end[c1 - 1])
        _check_vertices(eng, X[v0:v1], cid[v0:v1] - c0, inc[v0:v1], pat[c0:c1], pyr[c0:c1], Tb[v0:v1], flat[c0:c1],
                        Kmax)

    # ------------------------------------------------------------ no vertex listed twice in a cell
    Wd = inc.shape[1]
    g = torch.Generator().manual_seed(0xED6E)
    rk = torch.randint(-(2**62), 2**62, (Wd + 1,), generator=g, dtype=torch.int64).to(dev)
    vkeys = torch.cat([cid[:, None], inc], 1)
    hv = torch.sort((vkeys * rk).sum(1)).values
    if bool((hv[1:] == hv[:-1]).any()):
        raise NotProven("a vertex is listed twice in a cell (or a hash collision)")

    # ------------------------------------------------------------ edges of simple vertices
    # at a simple vertex the edge leaving row i keeps T - {i} tight; its other end is a listed vertex
    # whose tight set holds T - {i}: a simple one has the same key, a non-simple one contains it
    NS = sidx.numel()
    Ts = Tb[sidx]
    drop = bitmask(Ts.reshape(-1), Wd).view(NS, d, Wd)
    keys = torch.cat([cid[sidx][:, None, None].expand(NS, d, 1), inc[sidx][:, None, :] & ~drop], 2).reshape(NS * d, Wd + 1)
    h, order = torch.sort((keys * rk).sum(1))
    keys = keys[order]
    same = h[1:] == h[:-1]
    if bool((same & (keys[1:] != keys[:-1]).any(1)).any()):
        raise NotProven("a hash collision among edge keys")  # never seen; the proof then runs otherwise
    _, inv, counts = torch.unique_consecutive(h, return_inverse=True, return_counts=True)
    if bool((counts > 2).any()):
        raise NotProven("three listed vertices on one edge")
    lone = counts[inv] == 1
    if bool(lone.any()):
        if not nsv.numel() or not bool(_contained(keys[lone], cid, inc, nsv).all()):
            raise NotProven("a vertex's edge has no listed other end")

    # ------------------------------------------------------------ edges of non-simple vertices
    # the tangent cone of every non-simple vertex is proven simplicial, spanned by listed neighbours;
    # its facet rows J (one per facet) are the vertex's facets
    fcell = [cid[sidx][:, None].expand(NS, d).reshape(-1)]
    fbit = [Ts.reshape(-1)]
    if nsv.numel():
        J = _tangent_cones(cid, inc, nsv, C, d)
        jb = unpack_bits(J).nonzero()
        fcell.append(cid[nsv][jb[:, 0]])
        fbit.append(jb[:, 1])

    # ------------------------------------------------------------ facets: the cell across is listed
    fk = torch.unique(torch.cat(fcell) * (u.n_ids + 1) + torch.cat(fbit))
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


def _check_vertices(eng, X, cid, inc, pat, pyr, Tb, flat, Kmax: int) -> None:
    """Checks 1 of the module docstring on a group of whole cells (``cid`` from 0): every vertex's
    exact position from its ``d`` basis rows ``Tb`` lies within the proven bound of its float one, and
    every row of its cell not tight there is positive at it (rows constant in x excepted at s = 0)."""
    d, dev, dt, net, u, A = eng.d, eng.dev, eng.dt, eng.net, eng.units, eng.A
    C, NV, n = pat.shape[0], X.shape[0], net.n_units
    m1 = K1 = d + 1
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
    jj = torch.arange(d, device=dev)
    js = jj[None] + (jj[None] >= pyr[:, None]).long()  # (C, d): the pyramid across each wall
    walls = A[pyr][:, None, :] - A[js]  # (C, d, d)
    CR = torch.cat([S[:, None, :], torch.cat([torch.zeros(C, d, 1, dtype=dt, device=dev), walls], 2)], 1)
    CE = torch.cat([torch.zeros(C, 1, m1, dtype=dt, device=dev),
                    torch.cat([torch.zeros(C, d, 1, dtype=dt, device=dev), gamma(1) * walls.abs() * SAFETY], 2)], 1)

    # ------------------------------------------------------------ those rows of every vertex
    T = Tb
    vc = cid[:, None].expand(NV, d)
    is_dom = T < K1
    q = torch.where(is_dom, torch.zeros_like(T), u.bit_unit[T.clamp_max(u.n_ids - 1)])
    a_, b_ = u.bit_a[T.clamp_max(u.n_ids - 1)], u.bit_b[T.clamp_max(u.n_ids - 1)]
    wq = pat[vc, q]
    other = torch.where(a_ == wq, b_, torch.where(b_ == wq, a_, torch.full_like(a_, -1)))
    if bool(((other < 0) & ~is_dom).any()):
        raise NotProven("a tight pair of pieces does not hold the winner")
    other = other.clamp_min(0)
    # every cell's rows as one list (the domain's K1, then unit q's piece k at K1 + q Kmax + k), gathered
    # flat
    rows = torch.cat([CR, R.reshape(C, -1, m1)], 1)  # (C, nr, m1)
    erows = torch.cat([CE, ER.reshape(C, -1, m1)], 1)
    nr = rows.shape[1]
    ti = (vc * nr + torch.where(is_dom, T, K1 + q * Kmax + other)).reshape(-1)
    Trow = rows.reshape(-1, m1).index_select(0, ti).view(NV, d, m1)
    Terr = erows.reshape(-1, m1).index_select(0, ti).view(NV, d, m1)

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
    frow = torch.cat([torch.zeros(C, K1, dtype=torch.bool, device=dev),
                      flat[:, :, None].expand(C, n, Kmax).reshape(C, -1)], 1)
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
        pflat = frow[pc, pr]
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
                # a row tight at the vertex (one of its bits) is zero there (its basis rows by
                # definition, the others by the lemma of _basis_rows); a row constant in x is a positive
                # multiple of s (it is checked > 0 at the cell's vertices with s > 0) and vanishes
                # exactly where s does: it repeats the outer facet's row and is left out of the cell's
                # description
                b_ = bad.nonzero().squeeze(1)
                vb, rb = v_[b_], pbit[p_[b_]]
                tight = ((inc[vb, rb // 64] >> (rb % 64)) & 1) != 0
                at_inf = ((inc[vb, 0] & 1) != 0) & pflat[p_[b_]]
                if not bool((tight | at_inf).all()):
                    raise NotProven("a vertex's sign is within float64's error bound")



# ---------------------------------------------------------------------------------------- non-simple vertices
def _flat_units(net, pat) -> torch.Tensor:
    """(C, n): units after a layer whose every winner is the zero piece. Their pre-activations are
    ``beta s`` exactly (no x-dependence), so their rows are multiples of the outer facet's ``s``."""
    act = active_units(net, pat)
    C, n = pat.shape
    flat = torch.zeros(C, n, dtype=torch.bool, device=pat.device)
    dead = torch.zeros(C, dtype=torch.bool, device=pat.device)
    for l in range(len(net.max_units)):
        sl = net.layer_slice(l)
        flat[:, sl] = dead[:, None]
        dead = dead | ~act[:, sl].any(1)
    return flat


def _basis_rows(net, u, inc, pat, d: int, chain: bool) -> torch.Tensor:
    """The ``d`` rows that define each non-simple vertex exactly, (N, d) bit ids, and the proof that
    its other tight rows vanish there.

    Lemma (a chain of affine maps and two-piece elementwise units, see
    :func:`relulab.regions._jacobians.elementwise_chain`). Let ``v*`` lie on the outer facet
    (``s = 0``) and let ``l0`` be a max layer whose every unit with a nonzero winning coefficient ("active") has its row tight at ``v*``. Then every row of every later layer
    vanishes at ``v*``. At ``s = 0`` each compactified piece is the bias-free network at ``R0 y``
    with the cell's winners forced; an active unit's row ``(c_w - c_b) z_j`` is zero there, so
    ``z_j = 0`` and its output ``c_w z_j`` is 0; an inactive unit outputs ``0 z_j = 0``. The next
    layer's bias-free pre-activations are linear in these outputs, hence 0, and so on to the last.

    So, with ``l0`` the first such layer, the rows tight at a non-simple vertex split into the basis
    ``B`` (the outer facet, the walls and the rows of layers ``<= l0``), which must be ``d`` rows and
    define ``v*`` (checked like a simple vertex's rows), and rows of layers ``> l0``, zero at ``v*``
    by the lemma. (Such vertices are the rule on ReLU networks: in a direction where every active
    first-layer unit is constant, every later unit is constant too, so at infinity all their
    boundaries meet.) Anything else is not proven."""
    if not chain:
        raise NotProven("a vertex is not simple (and the network is not a chain of two-piece elementwise units)")
    nb = u.n_ids
    B = unpack_bits(inc)[:, :nb]
    if not bool(B[:, 0].all()):
        raise NotProven("a vertex off the outer facet is not simple")
    act = active_units(net, pat)
    tight = B[:, u.base]  # (N, n): two-piece units have one bit each
    L = len(net.max_units)
    closed = torch.stack([~(act[:, net.layer_slice(l)] & ~tight[:, net.layer_slice(l)]).any(1) for l in range(L)], 1)
    if not bool(closed.any(1).all()):
        raise NotProven("a non-simple vertex where no layer has all its active units tight")
    l0 = closed.to(torch.int8).argmax(1) + 1  # the first such layer, counted from 1
    unit_layer = torch.zeros(net.n_units, dtype=torch.long, device=inc.device)
    for l in range(L):
        unit_layer[net.layer_slice(l)] = l + 1
    bit_layer = torch.zeros(nb, dtype=torch.long, device=inc.device)
    ub = u.bit_unit >= 0
    bit_layer[ub] = unit_layer[u.bit_unit[ub]]
    inB = B & (bit_layer[None] <= l0[:, None])
    if not bool((inB.sum(1) == d).all()):
        raise NotProven("a non-simple vertex whose rows up to its first closed layer are not d")
    return inB.nonzero()[:, 1].reshape(-1, d)


def _contained(keys, cid, inc, nsv) -> torch.Tensor:
    """For each key ``(cell, bitset)``: whether a non-simple vertex ``nsv`` of that cell has every bit
    of the key tight."""
    c_ns = cid[nsv]
    o = torch.argsort(c_ns, stable=True)
    cs, vs = c_ns[o], nsv[o]
    kc, kb = keys[:, 0].contiguous(), keys[:, 1:]
    lo = torch.searchsorted(cs, kc)
    hi = torch.searchsorted(cs, kc, right=True)
    reps = hi - lo
    pid = torch.repeat_interleave(reps)
    within = torch.arange(pid.numel(), device=cid.device) - (torch.cumsum(reps, 0) - reps)[pid]
    cand = vs[lo[pid] + within]
    ok = ((kb[pid] & ~inc[cand]) == 0).all(1)
    return torch.zeros(keys.shape[0], dtype=torch.long, device=cid.device).index_add_(0, pid, ok.long()) > 0


def _tangent_cones(cid, inc, nsv, C: int, d: int) -> torch.Tensor:
    """Prove that the edges of every non-simple vertex ``v*`` end at listed vertices, and return the
    rows of its facets, (N, W) bitsets.

    For a listed vertex ``u`` of the cell, ``Z(u) = T(u) & T(v)`` is exactly the set of rows of ``T(v)``
    vanishing along ``r_u = u* - v*`` (tight sets are exact), a direction of the cell's tangent cone
    ``K`` at ``v*``. The rays ``R`` are the listed vertices with maximal ``Z`` (required distinct):
    each is then an extreme ray of ``cone(R)`` (a ray inside a face of dimension >= 2 has a strictly
    smaller zero set than the face's extreme rays). For a row ``j`` of ``T(v)`` (``j >= 0`` on ``K``),
    ``G_j = {r in R : j in Z(r)}`` is a face of ``cone(R)``. Certificate that ``cone(R) = K``: a set
    ``S`` of rows, none vanishing on all of ``R``, whose faces ``G_j`` are facets of ``cone(R)`` and
    close up (every ridge of every ``G_j`` lies in another ``G_j``, ``j`` in ``S``). Facets closed under
    ridge adjacency are all the facets of the full-dimensional cone ``cone(R)``, so
    ``K <= {j >= 0, j in S} = cone(R) <= K``: the edges of the cell at ``v*`` are the ``r_u``, each
    ending at the listed ``u*`` (a vertex of the cell on that edge, not ``v*``), and its facets are the
    ``G_j`` of ``S``, each with one row (the ``G_j`` are required distinct; a row vanishing on a facet
    has at least its rays). The dimension decides which faces are facets and what their ridges are:

    * ``d = 3`` (the cone's section is a polygon): facets are the ``G_j`` with two rays, and closing
      up means every ray lies in exactly two of them;
    * ``d = 4`` (a 3-polytope): facets are the ``G_j`` with >= 3 rays, their edges the pairs of rays
      ``G_j & G_j'`` with exactly two rays (a face with two extreme rays is an edge), and closing up
      means every ray of every ``G_j`` has exactly two such edges within it (its polygon's two edges);
    * otherwise the cone must be simplicial: ``d`` rays and rows ``j_1..j_d`` with ``G_{j_i}`` all rays
      but ``r_i`` (``(j_a . r_b)`` is then diagonal and positive, so ``K = cone(R)`` directly)."""
    cnt = torch.bincount(cid, minlength=C)
    first = torch.cumsum(cnt, 0) - cnt  # vertices are grouped by cell
    k = cnt[cid[nsv]]
    kmax = int(k.max())
    W = inc.shape[1]
    nb = 64 * W
    N = nsv.numel()
    dev = cid.device
    out = torch.zeros(N, W, dtype=torch.int64, device=dev)
    step = max(1, int(2e6 // (kmax * kmax * W + kmax * nb * 8)))
    ar = torch.arange(kmax, device=dev)
    weights = torch.bitwise_left_shift(torch.ones(64, dtype=torch.int64, device=dev), torch.arange(64, device=dev))
    why = "a non-simple vertex's tangent cone is not proven to be spanned by listed edges"
    for s0 in range(0, N, step):
        v = nsv[s0:s0 + step]
        m = v.numel()
        valid = ar[None] < k[s0:s0 + step, None]
        cand = torch.where(valid, first[cid[v]][:, None] + ar[None], 0)
        valid &= cand != v[:, None]
        Z = torch.where(valid[..., None], inc[cand] & inc[v][:, None, :], 0)  # (m, kmax, W)
        # an edge's zero set has rank d - 1, so at least d - 1 rows: only those candidates are kept
        valid &= popcount(Z) >= d - 1
        k2 = int(valid.sum(1).max())
        keep = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :k2]
        Z, valid = Z.gather(1, keep[..., None].expand(m, k2, W)), valid.gather(1, keep)
        a, b = Z[:, :, None, :], Z[:, None, :, :]
        sub = ((a & ~b) == 0).all(-1) & valid[:, None, :] & valid[:, :, None]  # a within b
        eq = sub & sub.transpose(1, 2)
        inside = sub & ~eq
        maximal = valid & ~inside.any(2)
        if bool((eq & maximal[:, :, None] & ~torch.eye(k2, dtype=torch.bool, device=dev)[None]).any()):
            raise NotProven(why)
        nR = maximal.sum(1)
        rmax = int(nR.max())
        sel = torch.argsort((~maximal).to(torch.int8), dim=1, stable=True)[:, :rmax]
        rv = torch.arange(rmax, device=dev)[None] < nR[:, None]  # (m, rmax)
        Zr = torch.where(rv[..., None], Z.gather(1, sel[..., None].expand(m, rmax, W)), 0)
        # the rows of T(v), padded: G[v, t, r] says whether row t of T(v) vanishes along ray r
        Tv = unpack_bits(inc[v])  # (m, nb)
        tcount = Tv.sum(1)
        tmax = int(tcount.max())
        tb = torch.argsort((~Tv).to(torch.int8), dim=1, stable=True)[:, :tmax]  # bit ids, T(v) first
        tv = torch.arange(tmax, device=dev)[None] < tcount[:, None]
        word = Zr.gather(2, (tb // 64)[:, None, :].expand(m, rmax, tmax))  # (m, rmax, tmax)
        G = (((word >> (tb % 64)[:, None, :]) & 1) != 0).transpose(1, 2) & rv[:, None, :] & tv[..., None]
        nG = G.sum(-1)
        eye_t = torch.eye(tmax, dtype=torch.bool, device=dev)[None]
        if d in (3, 4):
            if bool((nG == nR[:, None]).any()):
                raise NotProven(why)  # a row vanishing on every ray: cone(R) is not full-dimensional
            S = nG >= d - 1
            if not bool(S.any(1).all()):
                raise NotProven(why)
            Gf = G.to(torch.float32)
            same = (G[:, :, None, :] == G[:, None, :, :]).all(-1) & S[:, :, None] & S[:, None, :]
            if bool((same & ~eye_t).any()):
                raise NotProven(why)  # two rows on one facet
            if d == 3:
                deg = (G & S[..., None]).sum(1)
                if not bool(((deg == 2) | ~rv).all()):
                    raise NotProven(why)
            else:
                common = Gf @ Gf.transpose(1, 2)  # (m, tmax, tmax) rays in G_j & G_j'
                P2 = ((common == 2) & S[:, :, None] & S[:, None, :] & ~eye_t).to(torch.float32)
                # H[j, r, r'] = number of j' with P2[j, j'] holding both r and r'
                pairs = (Gf[:, :, :, None] * Gf[:, :, None, :]).reshape(m, tmax, rmax * rmax)
                H = torch.bmm(P2, pairs).view(m, tmax, rmax, rmax)
                E = (H > 0) & G[:, :, :, None] & G[:, :, None, :] & \
                    ~torch.eye(rmax, dtype=torch.bool, device=dev)[None, None]
                deg = E.sum(-1)  # (m, tmax, rmax)
                if not bool(((deg == 2) | ~(G & S[..., None])).all()):
                    raise NotProven(why)
            Jt = S
        else:
            if not bool((nR == d).all()) or bool((G.all(-1) & tv).any()):
                raise NotProven(why)
            Jt = torch.zeros(m, tmax, dtype=torch.bool, device=dev)
            for i in range(d):
                # rows vanishing on every ray but r_i, and not on r_i
                on = (G | (torch.arange(rmax, device=dev) == i)[None, None, :]).all(-1) & ~G[:, :, i] & tv
                if not bool((on.sum(1) == 1).all()):
                    raise NotProven(why)
                Jt |= on
        J = torch.zeros(m, nb, dtype=torch.bool, device=dev)
        J.scatter_(1, tb, Jt & tv)
        Jw = J.view(m, W, 64).long()
        out[s0:s0 + m] = (Jw * weights).sum(-1)
    return out
