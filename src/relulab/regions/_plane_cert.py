"""Certificates for the activation regions of a 2-D slice (filtered predicates at any scale).

The float64 refinement of :mod:`relulab.regions.plane` returns convex polygons with activation
patterns ``p_i`` and, per edge, the constraint it lies on (a side of the slice rectangle, or
``g_w - g_k >= 0`` for a unit ``u`` with winner ``w = p_i[u]`` and another piece ``k``). Every
constraint of ``p_i`` is affine in ``(s, t)`` once the winners of earlier max layers are fixed. The
partition is the exact one (exact rational arithmetic on the float64 weights and slice) when, for
every polygon:

1. **The polygon is the region's closure.** With ``L_j`` the edge lines in order and the vertices
   ``x_j = L_{j-1} x L_j`` (exact homogeneous intersection points): each consecutive pair turns left
   (``W_j = a_{j-1} b_j - b_{j-1} a_j > 0``), and every constraint of ``p_i`` is ``>= 0`` at every
   ``x_j``, and strictly positive unless it is one of the two lines through ``x_j`` (so every edge has
   positive length and is travelled counter-clockwise). Then the closed curve through the ``x_j``
   runs once or more around the boundary of ``conv{x_j}``, every boundary edge of ``conv{x_j}`` lies
   on some ``L_j``, and ``conv{x_j} = {all constraints >= 0}`` is the closure of the region of
   ``p_i``, which has positive area (constraints equal to zero as functions are ties, allowed when
   ``k > w``, as in :meth:`PLNet.pattern`).
2. **Across every edge lies a listed region.** On the open edge on ``g_w = g_k`` every other
   constraint is strictly positive, so the region beyond it is ``p_i`` with ``u``'s winner ``k``
   (later layers' inputs are continuous across it); that pattern must be one of the listed ones.
   Where some other constraint is zero on the whole edge (a tie: two pieces that are the same
   function on the polygon, or a second line along the edge), those units choose again just across
   the edge, layer by layer, in exact arithmetic (:func:`_exact_neighbour`): a tie between the
   max-pool inputs of a padded convolution, for example, can break the other way once an earlier
   ReLU turns on.

The listed regions are distinct, so their closures are unions of cells of the exact partition,
closed under crossing edges; the cells' adjacency through edges is connected (the rectangle minus
finitely many vertices is), hence the list is every region.

Decisions are filtered (Fortune and Van Wyk; Shewchuk): every node's affine maps
``(value at (0, 0), d/ds, d/dt)`` carry a bound ``c M`` on their rounding error, ``M`` the maps of
the network with absolute weights (Higham, *Accuracy and Stability of Numerical Algorithms*, Sec.
3.1 and 3.5; the factors of :func:`relulab.regions._line_cert._error_factors`), and the vertices'
homogeneous coordinates and every sign carry the propagated bound. A constraint is cleared for a
whole polygon at once when it is positive on a box that provably holds the polygon's exact vertices;
the rest are evaluated at each vertex (under one bound per pair from the polygon's largest
coordinates, then per vertex where that leaves a sign open). For chain networks a two-piece unit's constraint is first
tested once for a whole group of polygons that share it (the same winners of the earlier layers,
and of its own layer), on the union of their boxes: on 2-200-200-200-1 (102,237 polygons, 604
constraints each) this leaves 2.0 million of the 62 million (polygon, constraint) pairs to the
per-polygon tests. The groups' maps are computed once per group, from the parent group's product
with the units that vary among its groups zeroed plus each group's own terms of those units (the
same products summed in another order: the same error bound). A polygon with a decision the bounds
cannot settle is
checked again in exact integer arithmetic (the network's exact tables of
:func:`relulab.regions._exact.exact_tables`, residual networks included).
"""

from __future__ import annotations

import math
import time

import torch

from relulab.core.layers import Add, MaxUnits, Reshape
from relulab.regions import plane as _plane
from relulab.regions._exact import U as _U
from relulab.regions._exact import dyadic, exact_layer_pieces, exact_tables, gamma
from relulab.regions._line_cert import CertOutcome, _error_factors

__all__ = ["certify_partition"]

_SAFE = 1.0 + 1e-6  # slack on every computed bound (the bounds themselves are rounded)
_TINY = 1e-290  # absolute slack for underflow in the bounds' products
_CHUNK = 1 << 23  # elements of one chunk's constraint tables
_MAX_EXACT_ENTRIES = 2 * 10**7  # weight entries (Python-integer multiply-adds) the exact stage may spend
_N_SIDES = 4


def _layout(net, dev):
    """Constraint columns: a two-piece layer has one per unit (the piece that loses), others one per
    unit and piece (the winner's own slot is skipped); the rectangle's 4 sides come last.
    Returns (per-layer columns per unit (L,), first column of each layer (L + 1,), two-piece (L,))."""
    two = [m.index.shape[1] == 2 and bool(m.valid.all()) for m in net.max_units]
    Kc = torch.tensor([1 if t else m.index.shape[1] for t, m in zip(two, net.max_units)], dtype=torch.long,
                      device=dev)
    U_of = torch.tensor([m.index.shape[0] for m in net.max_units], dtype=torch.long, device=dev)
    L_cols = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), (U_of * Kc).cumsum(0)])
    return Kc, L_cols, torch.tensor(two, dtype=torch.bool, device=dev)


def _unit_of(cc, L_cols, Kc, two, offsets, pat, rows):
    """Global unit and losing piece of constraint columns ``cc`` (cut edges) on rows ``rows`` of ``pat``."""
    lay = torch.searchsorted(L_cols, cc, right=True) - 1
    rem = cc - L_cols[lay]
    uu = offsets[lay] + rem // Kc[lay]
    w = pat[rows, uu].long()
    kk = torch.where(two[lay], 1 - w, rem % Kc[lay])
    return uu, kk, w


def _decode(E, ranges, L_cols, offsets, Kc, pat, ncol_units):
    """Constraint column of each edge label (C, M), or -1 (padding), or -2 (a label that does not
    fit the polygon's pattern). ``ranges``: (label base, layer, units, pieces, two-piece) per
    chunk of the refinement."""
    dev = E.device
    col = torch.full_like(E, -1)
    side = (E >= 0) & (E < _N_SIDES)
    col = torch.where(side, ncol_units + E, col)
    cut = E >= _N_SIDES
    if not bool(cut.any()) or not ranges:
        return col
    base = torch.tensor([r[0] for r in ranges], dtype=torch.long, device=dev)
    lay = torch.tensor([r[1] for r in ranges], dtype=torch.long, device=dev)
    Us = torch.tensor([r[2] for r in ranges], dtype=torch.long, device=dev)
    Ks = torch.tensor([r[3] for r in ranges], dtype=torch.long, device=dev)
    two = torch.tensor([r[4] for r in ranges], dtype=torch.bool, device=dev)
    p, j = cut.nonzero(as_tuple=True)
    lab = E[p, j]
    c = torch.searchsorted(base, lab, right=True) - 1
    off = lab - base[c]
    U_, K_ = Us[c], Ks[c]
    tw = two[c]
    u = torch.where(tw, off % U_, (off // (K_ * K_)) % U_)
    pr = off % (K_ * K_)
    k0 = torch.where(tw, torch.zeros_like(pr), pr // K_)
    k1 = torch.where(tw, torch.ones_like(pr), pr % K_)
    l = lay[c]
    unit = offsets[l] + u
    w = pat[p, unit].long()
    other = torch.where(w == k0, k1, k0)
    good = ((w == k0) | (w == k1)) & (k0 != k1)
    cc = L_cols[l] + torch.where(tw, u, u * Kc[l] + other)
    col[p, j] = torch.where(good, cc, torch.full_like(cc, -2))
    return col


def _error_bounds(net, M0, cfac, L_cols):
    """Pattern-free bounds ``EM`` (3, ncol) on the rounding error of every constraint column before
    its last subtraction (whose own error is ``2 u |H|``): node magnitudes ``N`` bound every value
    the node takes under any pattern (``|L| N + |b|`` through affine maps, the largest piece
    magnitude through max units), and a piece computed in float64 errs by at most ``c N``. Also
    ``dead`` per max layer: pieces that are exactly zero under every pattern, (U, K)."""
    dev, dt = M0.device, M0.dtype
    vals = {0: M0}
    EMs, dead = [], []
    m = 0
    for i, nd in enumerate(net.nodes[1:], 1):
        lay = nd.layer
        if isinstance(lay, Add):
            vals[i] = vals[nd.inputs[0]] + vals[nd.inputs[1]]
        elif isinstance(lay, MaxUnits):
            N = vals[nd.inputs[0]]
            Pm = lay.piece_magnitudes(N)  # (3, U, K)
            U, K = lay.index.shape
            two = K == 2 and int(L_cols[m + 1] - L_cols[m]) == U
            top = Pm.amax(-1, keepdim=True)
            em = cfac[i] * (Pm.sum(-1) if two else (top + Pm).reshape(3, U * K))
            EMs.append(em)
            dead.append(Pm.amax(0) == 0)
            vals[i] = top[..., 0]
            m += 1
        elif isinstance(lay, Reshape):
            vals[i] = vals[nd.inputs[0]]
        else:
            N = vals[nd.inputs[0]]
            y = lay.abs_linear(N)
            if lay.bias is not None:
                y[0] += lay.abs_bias(y)
            vals[i] = y
    EMs.append(torch.zeros(3, _N_SIDES, dtype=dt, device=dev))
    return torch.cat(EMs, 1), dead


def _max_inputs_chunk(net, Z0, pats):
    """Per max layer, its input's affine maps (3, C, n) on each polygon of the chunk (any DAG):
    one forward pass of three columns under each polygon's pattern."""
    vals = {0: Z0[:, None, :]}  # (3, B, n), B = 1 shared until the first max layer
    last_use = {}
    for i, nd in enumerate(net.nodes):
        for j in nd.inputs:
            last_use[j] = i
    out = []
    m = 0
    C = pats.shape[0]
    for i, nd in enumerate(net.nodes[1:], 1):
        lay = nd.layer
        if isinstance(lay, Add):
            vals[i] = vals[nd.inputs[0]] + vals[nd.inputs[1]]
        elif isinstance(lay, MaxUnits):
            z = vals[nd.inputs[0]].expand(3, C, -1)
            out.append(z)
            w = pats[:, net.unit_offsets[m]:net.unit_offsets[m + 1]].long()
            y, _, _ = lay.select(z.reshape(3 * C, -1), w.repeat(3, 1))
            vals[i] = y.reshape(3, C, -1)
            m += 1
        elif isinstance(lay, Reshape):
            vals[i] = vals[nd.inputs[0]]
        else:
            z = vals[nd.inputs[0]]
            B = z.shape[1]
            y = lay.linear(z.reshape(3 * B, -1)).reshape(3, B, -1)
            if lay.bias is not None:
                y[0] += lay.bias
            vals[i] = y
        for j in nd.inputs:
            if last_use.get(j) == i:
                vals.pop(j, None)
    return out


_GROUP_BYTES = 1 << 29  # memory the grouped maps of a chain network may take


def _grouped_max_inputs(net, Z0, pat, tree=None, packed=None):
    """For a chain network: per max layer, ``(gid, Z)`` with ``Z`` (G, 3, n) the layer's input maps
    on each group of polygons sharing the earlier layers' winners and ``gid`` (P,) each polygon's
    group, so each layer's affine maps cost one product per group, not per polygon. None when the
    network is not a chain or the groups would not fit in memory. ``tree`` (P, L), when given,
    proposes the groups (the refinement's ancestors); they are checked, never trusted (on the rows
    packed into int64 words, ``packed`` from :func:`_pack`, when given)."""
    if not all(nd.inputs == (i - 1,) for i, nd in enumerate(net.nodes) if i > 0):
        return None
    dev = pat.device
    P = pat.shape[0]
    z = Z0[None]  # (G, 3, n)
    gid = torch.zeros(P, dtype=torch.long, device=dev)
    out, m, used = [], 0, 0
    L = len(net.max_units)
    nodes = net.nodes
    done = -1  # a Dense node already applied with the max layer before it
    for i, nd in enumerate(nodes[1:], 1):
        lay = nd.layer
        if i == done:
            continue
        if isinstance(lay, MaxUnits):
            used += z.numel() * z.element_size()
            if used > _GROUP_BYTES:
                return None
            out.append((gid, z.transpose(0, 1).contiguous()))  # (3, G, n): chunks gather contiguous rows
            if m == L - 1:
                return out  # the output maps are not needed
            w = pat[:, net.unit_offsets[m]:net.unit_offsets[m + 1]]
            words = None
            if packed is not None and tree is not None:
                words = _layer_words(packed, net.unit_offsets[m], net.unit_offsets[m + 1], pat.element_size())
            found = _tree_groups(gid, w, tree[:, m + 1], words) if tree is not None else None
            gid, first = found if found is not None else _groups(gid, w)
            G = first.numel()
            parent = out[-1][0][first]  # each new group's group at the layer before
            wf = w.index_select(0, first)  # (row gathers of small integers: index_select is many times faster)
            dense = _next_dense(nodes, i)
            low = None
            if dense is not None and lay.index.shape[1] == 2 and lay.elementwise_units and _plane._LOW_RANK:
                low = _children_group_maps(lay, dense, z, parent, wf)
            if low is not None:
                z = low
                done = i + 1
            elif lay.elementwise_units:  # piece k of unit j is coef[j, k] z_j: scale the parent's maps
                z = z.index_select(0, parent) * _plane._winner_coef(lay, wf)[:, None, :]
            else:
                y, _, _ = lay.select(z[parent].reshape(3 * G, -1), wf.long().repeat_interleave(3, 0))
                z = y.reshape(G, 3, -1)
            m += 1
        elif not isinstance(lay, Reshape):
            G = z.shape[0]
            y = lay.linear(z.reshape(3 * G, -1)).reshape(G, 3, -1)
            if lay.bias is not None:
                y[:, 0] += lay.bias
            z = y
    return out


def _next_dense(nodes, i):
    """The Dense layer that alone joins max layer ``i`` to the next max layer, or None."""
    if i + 2 < len(nodes) and isinstance(nodes[i + 2].layer, MaxUnits):
        return _plane._single_dense([nodes[i + 1].layer])
    return None


def _children_group_maps(lay, dense, z, parent, wf):
    """The next max layer's input maps (G2, 3, w) (a view of (3, G2, w) memory) of the groups with
    winners ``wf`` (G2, U) of the two-piece layer ``lay`` and group ``parent`` (G2,) at its level,
    from the level's maps ``z`` (G1, 3, n): one product per parent with the units that vary among
    its groups zeroed, plus each group's own terms of those units (:func:`plane._children_maps`:
    the same products summed in another order, within the same error bound). None where one
    product per group is cheaper."""
    G1, U = z.shape[0], lay.units
    dev = z.device
    cz = lay.coef.to(z.dtype)
    first = torch.zeros(G1, dtype=torch.long, device=dev).scatter_(0, parent, torch.arange(parent.numel(), device=dev))
    ref = wf.index_select(0, first)  # (G1, U) the winners of one child of each parent
    varies = torch.zeros(G1, U, dtype=torch.int32, device=dev).index_add_(
        0, parent, (wf != ref.index_select(0, parent)).to(torch.int32)) > 0
    own = varies.index_select(0, parent)
    if not _plane._low_rank_pays(int(own.sum()), G1, parent.numel(), U):
        return None
    if _relu_like(lay):  # coefficients 0 and 1: the winners are the coefficients
        cb = (~varies & (ref == 1)).to(z.dtype)
    else:
        cb = torch.where(varies, 0.0, torch.where(ref == 1, cz[:, 1], cz[:, 0]))  # (G1, U)
    zb = z.transpose(0, 1) * cb[None]  # (3, G1, n)
    base = dense.linear(zb.reshape(3 * G1, -1)).reshape(3, G1, -1)
    if dense.bias is not None:
        base[0] += dense.bias
    q, j = own.nonzero(as_tuple=True)
    cw = torch.where(wf[q, j] == 1, cz[j, 1], cz[j, 0])  # each group's coefficients of its own units
    nz = (cw != 0).nonzero(as_tuple=True)[0]
    q, j, cw = q[nz], j[nz], cw[nz]
    y = z[parent[q], :, j] * cw[:, None]  # (Q, 3)
    return _plane._children_maps(base, parent, q, j, y, dense.weight.T.contiguous()).transpose(0, 1)


def _tree_groups(gid, w, proposed, words=None):
    """The groups of rows ``(gid, w)`` from proposed group ids (P,), if they are exact: every row of
    a proposed group equals its first row. ``words`` (P, k), when given, holds the entries of ``w``
    packed into int64 words (other entries masked to zero) and is compared instead. Returns (group
    (P,), one row per group (G,)) or None."""
    if proposed.shape[0] != gid.shape[0]:
        return None
    uniq, inv = torch.unique(proposed, return_inverse=True)
    first = torch.zeros(uniq.numel(), dtype=torch.long, device=gid.device).scatter_(
        0, inv, torch.arange(inv.numel(), device=gid.device))
    lead = first[inv]
    rows = w if words is None else words
    if bool((gid[lead] == gid).all()) and bool((rows.index_select(0, lead) == rows).all()):
        return inv, first
    return None


def _layer_words(packed, a: int, b: int, isz: int):
    """The packed words (P, k) holding entries ``a .. b - 1`` of each row (entry size ``isz`` bytes),
    the bytes of other entries in the first and last word masked to zero."""
    lo, hi = a * isz, b * isz
    ws, we = lo // 8, -(-hi // 8)
    x = packed[:, ws:we].clone()
    if x.shape[1]:
        x[:, 0] &= _signed(((1 << 64) - 1) ^ ((1 << (8 * (lo % 8))) - 1))
        if hi % 8:
            x[:, -1] &= _signed((1 << (8 * (hi % 8))) - 1)
    return x


def _row_hash(rows, hw, block: int = 64):
    """``sum_j (rows[:, j] + 1) hw[j]`` in wrapping int64, a few columns at a time (no (P, n) int64
    copy of the rows)."""
    h = torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device)
    for j in range(0, rows.shape[1], block):
        h += (rows[:, j:j + block].long() + 1).mul_(hw[j:j + block]).sum(1)
    return h


def _groups(gid, w):
    """Exact groups of the rows ``(gid, w)``: each row's group (P,) and one row of each group (G,).
    Rows are sorted by a hash and every row is compared with its group's first row (a collision
    falls back to ``torch.unique``)."""
    g = torch.Generator().manual_seed(777)
    hw = torch.randint(-2**62, 2**62, (w.shape[1] + 1,), generator=g, dtype=torch.long).to(w.device)
    h = _row_hash(w, hw[1:]) + gid * hw[0]
    hs, order = torch.sort(h)
    new = torch.ones_like(hs, dtype=torch.bool)
    new[1:] = hs[1:] != hs[:-1]
    run = new.long().cumsum(0) - 1
    first = order[new]
    lead = first[run]
    if bool((gid[order] == gid[lead]).all()) and bool((w.index_select(0, order) == w.index_select(0, lead)).all()):
        out = torch.empty_like(run)
        out[order] = run
        return out, first
    key = torch.cat([gid[:, None].to(torch.int32), w.to(torch.int32)], 1)
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    first = torch.full((uniq.shape[0],), -1, dtype=torch.long, device=w.device)
    first.scatter_reduce_(0, inv, torch.arange(inv.numel(), device=w.device), "amin", include_self=False)
    return inv, first


def _constraints(net, zs, pats, dead, sides, L_cols):
    """Constraints of every polygon of a chunk from its max layers' input maps ``zs``: ``H`` (3, C,
    ncol) as ``(h(0, 0), dh/ds, dh/dt)`` for ``h = g_w - g_k``; ``skip`` (C, ncol): the winner's own
    slot, invalid pieces, and ties that are exact zeros as functions with ``k > w``; ``bad`` (C,):
    an exact zero tie with ``k < w`` (not the tie rule's winner). The rectangle's sides come last."""
    dev = pats.device
    C = pats.shape[0]
    ncol = int(L_cols[-1]) + _N_SIDES
    H = torch.empty(3, C, ncol, dtype=sides.dtype, device=dev)
    skip = torch.zeros(C, ncol, dtype=torch.bool, device=dev)
    H[:, :, -_N_SIDES:] = sides.T[:, None, :]
    bad = torch.zeros(C, dtype=torch.bool, device=dev)
    for m, (lay, z) in enumerate(zip(net.max_units, zs)):
        w = pats[:, net.unit_offsets[m]:net.unit_offsets[m + 1]].long()  # (C, U)
        U, K = lay.index.shape
        cf = lay.coef
        c_lo, c_hi = int(L_cols[m]), int(L_cols[m + 1])
        dd = dead[m]
        if K == 2 and c_hi - c_lo == U:  # two pieces: one constraint per unit, its sign by the winner
            if lay.elementwise_units and bool((cf[:, 0] == 0).all()) and bool((cf[:, 1] == 1).all()):
                # pieces 0 and z (ReLU): D = z exactly
                D = z
            elif lay.elementwise_units:
                D = z * cf[:, 1] - z * cf[:, 0]
            else:
                D = z[:, :, lay.index[:, 1]] * cf[:, 1] - z[:, :, lay.index[:, 0]] * cf[:, 0]
            H[:, :, c_lo:c_hi] = torch.where((w == 1)[None], D, -D)
            both = dd.all(1)  # both pieces exactly zero: a tie everywhere
            if bool(both.any()):
                bad |= (both & (w == 1)).any(1)
                skip[:, c_lo:c_hi] = both & (w == 0)
        else:
            P = (z[:, :, lay.index] * cf).masked_fill(~lay.valid, 0.0)  # (3, C, U, K)
            Pw = P.gather(3, w[None, :, :, None].expand(3, C, U, 1))
            H[:, :, c_lo:c_hi] = (Pw - P).reshape(3, C, U * K)
            kk = torch.arange(K, device=dev)
            zero_fn = dd.all(1)[None, :, None].expand(C, U, K)
            inval = ~lay.valid[None].expand(C, U, K)
            skip[:, c_lo:c_hi] = ((kk == w[..., None]) | inval | (zero_fn & (kk > w[..., None]))).reshape(C, U * K)
            bad |= (zero_fn & (kk < w[..., None]) & ~inval).flatten(1).any(1)
    return H, skip, bad


def _homogeneous(L1, e1, L2, e2):
    """Intersection points ``(X, Y, W)`` of lines given as ``(c, a, b)`` (``c + a s + b t``) with
    error bounds, and bounds on the computed coordinates' errors."""
    c1, a1, b1 = L1.unbind(-1)
    c2, a2, b2 = L2.unbind(-1)
    ec1, ea1, eb1 = e1.unbind(-1)
    ec2, ea2, eb2 = e2.unbind(-1)

    def det(p, ep, q, eq, r, er, s, es):  # p q - r s
        v = p * q - r * s
        err = (ep * (q.abs() + eq) + p.abs() * eq + er * (s.abs() + es) + r.abs() * es
               + gamma(3) * ((p * q).abs() + (r * s).abs()))
        return v, err

    X, eX = det(b1, eb1, c2, ec2, c1, ec1, b2, eb2)
    Y, eY = det(c1, ec1, a2, ea2, a1, ea1, c2, ec2)
    W, eW = det(a1, ea1, b2, eb2, b1, eb1, a2, ea2)
    return torch.stack([X, Y, W], -1), torch.stack([eX, eY, eW], -1) * _SAFE + _TINY


def certify_partition(net, origin, u, v, ext, pat, E, ranges, *, deadline=None, tree=None) -> CertOutcome:
    """Check a complete float partition (patterns ``pat`` (P, n_units), edge labels ``E`` (P, M)
    with ``-1`` padding, label ``ranges`` from the refinement) against exact arithmetic; see the
    module docstring. ``tree`` (optional, (P, L)): the refinement's ancestor of each polygon at the
    start of each max layer, used (once checked) to group polygons by their earlier winners. ``ok``: True (certified), False (some decision is wrong), None (undecided:
    degenerate geometry, the exact stage over budget or past ``deadline``)."""
    dev, dt = origin.device, origin.dtype
    P = pat.shape[0]
    if P == 0:
        return CertOutcome(None, reason="no polygons")
    s0, s1, t0, t1 = ext
    sides = torch.tensor([[-t0, 0.0, 1.0], [s1, -1.0, 0.0], [t1, 0.0, -1.0], [-s0, 1.0, 0.0]], dtype=dt, device=dev)
    pat = pat.to(dev)
    for l, m in enumerate(net.max_units):  # every entry of every pattern a valid piece of its unit
        w = pat[:, net.unit_offsets[l]:net.unit_offsets[l + 1]]
        if not w.numel():
            continue
        lo, hi = torch.aminmax(w)  # in the pattern's own small dtype: no int64 copy
        if int(lo) < 0 or int(hi) >= m.index.shape[1]:
            return CertOutcome(False, reason="a pattern entry is not a piece of its unit")
        if not bool(m.valid.all()) and not bool(m.valid[torch.arange(m.units, device=dev)[None], w.long()].all()):
            return CertOutcome(False, reason="a pattern entry is an invalid piece")
    Kc, L_cols, two = _layout(net, dev)
    ncol_u = int(L_cols[-1])
    offsets = torch.tensor(net.unit_offsets, dtype=torch.long, device=dev)
    n = (E >= 0).sum(1)
    if bool((n < 3).any()):
        return CertOutcome(False, reason="a polygon with fewer than 3 edges")
    # distinct patterns, and lookup of neighbours by a hash verified row by row
    packed = _pack(pat)
    h, hw = _pattern_hash(pat)
    hs, order = torch.sort(h)
    if P > 1 and bool((hs[1:] == hs[:-1]).any()):
        i = (hs[1:] == hs[:-1]).nonzero()[0, 0]
        if torch.equal(pat[order[i]], pat[order[i + 1]]):
            return CertOutcome(False, reason="two polygons with the same pattern")
        return CertOutcome(None, reason="pattern hash collision")

    Z0 = torch.stack([origin, u, v]).reshape(3, -1)
    cfac = _error_factors(net)
    EM, dead = _error_bounds(net, Z0.abs(), cfac, L_cols)
    grouped = _grouped_max_inputs(net, Z0, pat, tree=tree, packed=packed)
    ctx = _Ctx(net, pat, ranges, L_cols, offsets, Kc, two, ncol_u, sides, EM, dead, h, hs, order, hw)
    ctx.packed = packed
    ctx.levels = None if grouped is None else [g for g, _ in grouped]
    if grouped is not None:
        res = _grouped_pass(ctx, grouped, E, n, deadline)
    else:
        res = _chunked_pass(ctx, Z0, E, n, deadline)
    if isinstance(res, CertOutcome):
        return res
    filtered, to_exact = res
    if not to_exact:
        return CertOutcome(True, filtered, 0)
    return _exact_stage(net, origin, u, v, ext, pat, E, ranges, L_cols, offsets, Kc, two, ncol_u, to_exact,
                        h, hs, order, hw, filtered, deadline)


class _Ctx:
    """What every stage of the filtered certificate reads."""

    def __init__(self, net, pat, ranges, L_cols, offsets, Kc, two, ncol_u, sides, EM, dead, h, hs, order, hw):
        self.net, self.pat, self.ranges, self.L_cols, self.offsets = net, pat, ranges, L_cols, offsets
        self.Kc, self.two, self.ncol_u, self.sides, self.EM, self.dead = Kc, two, ncol_u, sides, EM, dead
        self.h, self.hs, self.order, self.hw = h, hs, order, hw
        self.ncol = ncol_u + _N_SIDES


def _edge_columns(ctx, c0, c1, Ec):
    """Constraint columns of the edges of polygons ``c0:c1`` (C, M), or an outcome when the labels
    cannot be those of a partition."""
    Mx = Ec.shape[1]
    dev = Ec.device
    pc = ctx.pat[c0:c1]
    col = _decode(Ec, ctx.ranges, ctx.L_cols, ctx.offsets, ctx.Kc, pc, ctx.ncol_u)
    if bool(((col == -2) & (Ec >= 0)).any()):
        return CertOutcome(False, 0, 0, reason="an edge label that does not fit its polygon's pattern")
    srt = torch.where(col >= 0, col, -1 - torch.arange(Mx, device=dev)[None]).sort(1).values
    if bool((srt[:, 1:] == srt[:, :-1]).any()):  # a convex polygon has one edge per line
        return CertOutcome(False, 0, 0, reason="two edges of one polygon on the same constraint")
    return col


def _vertex_boxes(Lj, eLj, valid, nc):
    """Exact vertices ``x_j = L_{j-1} x L_j`` of each polygon (homogeneous, with error bounds) and a
    box per polygon that provably holds them. Returns a dict, or an outcome (a clockwise turn)."""
    C, Mx = valid.shape
    dev = valid.device
    ar = torch.arange(Mx, device=dev)
    prv = torch.where(ar[None] == 0, nc[:, None] - 1, ar[None] - 1)  # edge entering vertex j
    Li = Lj.gather(1, prv[..., None].expand(C, Mx, 3))
    eLi = eLj.gather(1, prv[..., None].expand(C, Mx, 3))
    Xh, eX = _homogeneous(Li, eLi, Lj, eLj)
    Wok = Xh[..., 2] > eX[..., 2]
    if bool(((Xh[..., 2] < -eX[..., 2]) & valid).any()):
        return CertOutcome(False, 0, 0, reason="a polygon turns clockwise")
    unsure = ((~Wok) & valid).any(1)
    # boxes holding every exact vertex: corners of (X +- eX) / (W +- eW)
    Wd = torch.where(Wok, Xh[..., 2], torch.ones_like(Xh[..., 2]))
    eWd = torch.where(Wok, eX[..., 2], torch.zeros_like(eX[..., 2]))
    lo_w, hi_w = Wd - eWd, Wd + eWd
    vv = valid & Wok
    vm = valid[..., None]
    out = {"Xh": Xh, "eX": eX, "prv": prv, "xmax": torch.where(vm, Xh.abs(), 0.0).amax(1),
           "emax": torch.where(vm, eX, 0.0).amax(1)}
    box = []
    for k in range(2):
        x_lo, x_hi = Xh[..., k] - eX[..., k], Xh[..., k] + eX[..., k]
        q = torch.stack([x_lo / lo_w, x_lo / hi_w, x_hi / lo_w, x_hi / hi_w], -1)
        lo, hi = q.amin(-1), q.amax(-1)
        slack = 4 * _U * torch.maximum(lo.abs(), hi.abs()) + _TINY
        lo = torch.where(vv, lo - slack, torch.full_like(lo, math.inf)).amin(1)
        hi = torch.where(vv, hi + slack, torch.full_like(hi, -math.inf)).amax(1)
        box.append((lo, hi))
    (lo_s, hi_s), (lo_t, hi_t) = box
    ms, rs = _mid_radius(lo_s, hi_s)
    mt, rt = _mid_radius(lo_t, hi_t)
    ok = torch.isfinite(ms) & torch.isfinite(mt) & torch.isfinite(rs) & torch.isfinite(rt) & ~unsure
    out.update(ok=ok, box=torch.stack([torch.where(ok, x, 0.0) for x in (ms, rs, mt, rt)], 1),
               lohi=torch.stack([torch.where(ok, lo_s, -math.inf), torch.where(ok, hi_s, math.inf),
                                 torch.where(ok, lo_t, -math.inf), torch.where(ok, hi_t, math.inf)], 1))
    return out


def _mid_radius(lo, hi):
    mid = lo / 2 + hi / 2
    return mid, torch.maximum(hi - mid, mid - lo) * _SAFE


def _box_clear(H0, H1, H2, E0, E1, E2, ms, rs, mt, rt):
    """Value of ``h = H0 + H1 s + H2 t`` at the box centre and a bound on the error of that value
    plus the change of ``h`` over the box (the box is ``[ms +- rs] x [mt +- rt]``); all broadcast.
    ``h > bound`` proves ``h > 0`` on the whole box (exactly), ``h < -bound`` proves ``h < 0``.
    err = EM . (1, |m_s| + r_s, |m_t| + r_t) + |H| . (g + 2u, g|m_s| + r_s + 2u (|m_s| + r_s), ...)."""
    g4 = gamma(4)
    S, T = ms.abs() + rs, mt.abs() + rt
    val = torch.addcmul(torch.addcmul(H0, H1, ms), H2, mt)
    err = torch.addcmul(torch.addcmul(E0, E1, S), E2, T)
    err.add_(H0.abs(), alpha=g4 + 2 * _U)
    err.addcmul_(H1.abs(), g4 * ms.abs() + rs + 2 * _U * S)
    err.addcmul_(H2.abs(), g4 * mt.abs() + rt + 2 * _U * T)
    return val, err.mul_(_SAFE).add_(_TINY)


def _vertex_signs(Hq, eHq, Xq, eXq, vq):
    """Constraints (Q, 3) at their polygons' exact vertices (Q, M, 3) (homogeneous, W > 0 keeps the
    sign): (some proven negative (Q,), some undecided (Q,)) over the vertices ``vq`` (Q, M)."""
    prod = Hq[:, None, [1, 2, 0]] * Xq
    hv = prod.sum(-1)
    ev = ((eHq[:, None, [1, 2, 0]] * (Xq.abs() + eXq)).sum(-1) + (Hq[:, None, [1, 2, 0]].abs() * eXq).sum(-1)
          + gamma(4) * prod.abs().sum(-1)) * _SAFE + _TINY
    return ((hv < -ev) & vq).any(1), (vq & ~(hv > ev)).any(1)


def _vertex_signs_bounded(Hq, eHq, Xh, eX, gq, vq, xmax, emax):
    """:func:`_vertex_signs` for constraints ``Hq`` (Q, 3) of polygons ``gq`` (Q,) with vertices
    ``Xh[gq]``, first under one error bound per pair from the polygon's largest ``|X|`` and error
    ``xmax``, ``emax`` (Q, 3) (each term of the per-vertex bound is at most its counterpart here),
    then, for pairs that bound leaves undecided, under the per-vertex bounds."""
    Xq = Xh[gq]
    X, Y, W = Xq[..., 0], Xq[..., 1], Xq[..., 2]
    h0, h1, h2 = (Hq[:, k, None] for k in range(3))
    hv = torch.addcmul(torch.addcmul(h1 * X, h2, Y), h0, W)  # (Q, M)
    aH = Hq.abs()
    g4 = gamma(4)
    # columns of xmax / emax are (X, Y, W), of Hq (c, a, b): a pairs with X, b with Y, c with W
    xm, em = xmax[:, [2, 0, 1]], emax[:, [2, 0, 1]]
    ev = ((eHq * (xm + em)).sum(1) + (aH * em).sum(1) + g4 * (aH * xm).sum(1)) * _SAFE + _TINY
    ev = ev[:, None]
    neg = ((hv < -ev) & vq).any(1)
    und = (vq & ~(hv > ev)).any(1)
    if bool(und.any()):
        r = und.nonzero(as_tuple=True)[0]
        neg_r, und_r = _vertex_signs(Hq[r], eHq[r], Xq[r], eX[gq[r]], vq[r])
        neg[r] |= neg_r
        und[r] = und_r
    return neg, und


def _pack(pat):
    """The rows of a pattern matrix as int64 words (their bytes, zero-padded to whole words)."""
    b = pat.contiguous().view(torch.uint8)
    pad = (-b.shape[1]) % 8
    if pad or b.shape[1] == 0:
        b = torch.cat([b, b.new_zeros(b.shape[0], pad if b.shape[1] else 8)], 1)
    return b.view(torch.int64)


def _pattern_hash(pat, block: int = 1 << 21):
    """A random linear hash of pattern rows (non-negative entries): ``h = sum_j row_j hw[j]`` in
    wrapping int64, so changing entry ``j`` by ``d`` changes ``h`` by ``d hw[j]``. With
    ``hw = R C`` (mod 2**64) for random integers ``R`` (n, 3) of ``b`` bits and random odd ``C`` (3,),
    ``h = (row R) C``: ``row R`` is a float64 product that is exact (every partial sum is an integer
    below ``n max(row) 2**b <= 2**52``), so most of the work is one thin matrix product."""
    P, n = pat.shape
    dev = pat.device
    g = torch.Generator().manual_seed(12345)
    top = int(pat.max()) if pat.numel() else 0
    bits = min(30, 52 - math.ceil(math.log2(max(1, n) * max(1, top) + 1)))
    C = torch.randint(-2**62, 2**62, (3,), generator=g, dtype=torch.long).to(dev) | 1
    if bits < 16:  # huge entries: int64 multiply-adds, a few columns at a time
        hw = torch.randint(-2**62, 2**62, (max(1, n),), generator=g, dtype=torch.long).to(dev)
        h = torch.zeros(P, dtype=torch.long, device=dev)
        for j in range(0, n, 64):
            h += pat[:, j:j + 64].long().mul_(hw[j:j + 64]).sum(1)
        return h, hw
    R = torch.randint(0, 2**bits, (max(1, n), 3), generator=g, dtype=torch.long).to(dev)
    hw = (R * C).sum(1)
    Rf = R[:n].double()
    h = torch.empty(P, dtype=torch.long, device=dev)
    step = max(1, block // max(1, n))
    for a in range(0, P, step):
        h[a:a + step] = ((pat[a:a + step].double() @ Rf).long() * C).sum(1)
    return h, hw


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


# per entry size (bytes) and byte position in its word: a mask of the word's other bytes
_KEEP = {isz: torch.tensor([_signed(((1 << 64) - 1) ^ (((1 << (8 * isz)) - 1) << (8 * p))) if p + isz <= 8 else 0
                            for p in range(8)], dtype=torch.long) for isz in (1, 2, 4, 8)}
def _neighbours_listed(ctx, c0, pc, col, valid):
    """Whether the pattern across each cut edge of polygons ``c0:`` is listed: (C,) per polygon
    (False when some edge's neighbour is missing)."""
    dev = col.device
    P = ctx.pat.shape[0]
    pp, jj = (valid & (col < ctx.ncol_u)).nonzero(as_tuple=True)
    uu, kk, wv = _unit_of(col[pp, jj], ctx.L_cols, ctx.Kc, ctx.two, ctx.offsets, pc, pp)
    hq = ctx.h[c0 + pp] + (kk - wv) * ctx.hw[uu]
    idx = torch.searchsorted(ctx.hs, hq).clamp(max=P - 1)
    cand = ctx.order[idx]
    r = torch.arange(pp.numel(), device=dev)
    ok_row = (ctx.hs[idx] == hq) & (ctx.pat[cand, uu].long() == kk)
    # the rows agree everywhere else: packed words equal, the unit's own bytes masked out. Rows in
    # one group of the unit's layer (chain networks: checked to share every earlier layer's winners)
    # are compared from the layer's first word on
    isz = ctx.pat.element_size()
    word, pos = (uu * isz) // 8, (uu * isz) % 8
    keep = _KEEP[isz].to(dev)[pos]
    if ctx.levels is None:
        parts = [(r, 0)]
    else:
        lay = torch.searchsorted(ctx.offsets, uu, right=True) - 1
        parts = []
        for m, gid in enumerate(ctx.levels):
            sel = (lay == m).nonzero(as_tuple=True)[0]
            if sel.numel():
                ok_row[sel] &= gid[cand[sel]] == gid[c0 + pp[sel]]
                parts.append((sel, (int(ctx.offsets[m]) * isz) // 8))
    for sel, ws in parts:
        tail = ctx.packed[:, ws:]
        x = tail.index_select(0, cand[sel]) ^ tail.index_select(0, c0 + pp[sel])
        x[torch.arange(sel.numel(), device=dev), word[sel] - ws] &= keep[sel]
        ok_row[sel] &= (x == 0).all(1)
    good = torch.ones(col.shape[0], dtype=torch.bool, device=dev)
    good[pp[~ok_row]] = False
    return good


def _chunked_pass(ctx, Z0, E, n, deadline):
    """Certificate for any network: every constraint of every polygon from a forward pass of its
    pattern, tested on the polygon's box, the rest at its vertices. Returns (filtered decisions,
    polygons for the exact stage) or an outcome."""
    net, pat = ctx.net, ctx.pat
    dev = pat.device
    P = pat.shape[0]
    ncol = ctx.ncol
    Mx = E.shape[1]
    csize = max(1, _CHUNK // (10 * ncol + 64 * Mx + 8 * pat.shape[1]))
    filtered = 0
    to_exact = []
    for c0 in range(0, P, csize):
        if deadline is not None and time.perf_counter() > deadline:
            return CertOutcome(None, filtered, 0, reason="time_limit")
        c1 = min(P, c0 + csize)
        C = c1 - c0
        pc = pat[c0:c1]
        Ec = E[c0:c1]
        zs = _max_inputs_chunk(net, Z0, pc)
        H, skip, badz = _constraints(net, zs, pc, ctx.dead, ctx.sides, ctx.L_cols)
        del zs
        if bool(badz.any()):
            return CertOutcome(False, filtered, 0, reason="a tie of identical pieces broken to the higher index")
        col = _edge_columns(ctx, c0, c1, Ec)
        if isinstance(col, CertOutcome):
            return CertOutcome(col.ok, filtered, 0, reason=col.reason)
        valid = col >= 0
        if bool(skip.gather(1, col.clamp(min=0))[valid].any()):
            return CertOutcome(None, filtered, 0, reason="an edge on a tie of identical pieces (degenerate)")
        colc = col.clamp(min=0)
        rows = torch.arange(C, device=dev)[:, None]
        Lj = H[:, rows, colc].permute(1, 2, 0)  # (C, M, 3)
        eLj = (ctx.EM[:, colc] + 2 * _U * H[:, rows, colc].abs()).permute(1, 2, 0) * _SAFE
        vb = _vertex_boxes(Lj, eLj, valid, n[c0:c1])
        if isinstance(vb, CertOutcome):
            return CertOutcome(False, filtered, 0, reason=vb.reason)
        ms, rs, mt, rt = (vb["box"][:, k, None] for k in range(4))
        val, err = _box_clear(H[0], H[1], H[2], ctx.EM[0], ctx.EM[1], ctx.EM[2], ms, rs, mt, rt)
        near = ~(val > err) & ~skip & vb["ok"][:, None]
        del val, err
        q, cidx = near.nonzero(as_tuple=True)
        Hq = H[:, q, cidx].T  # (Q, 3)
        eHq = (ctx.EM[:, cidx].T + 2 * _U * Hq.abs()) * _SAFE
        prc = colc.gather(1, vb["prv"])
        incident = (cidx[:, None] == colc[q]) | (cidx[:, None] == prc[q])
        vq = valid[q] & ~incident
        neg, und = _vertex_signs(Hq, eHq, vb["Xh"][q], vb["eX"][q], vq)
        if bool(neg.any()):
            return CertOutcome(False, filtered, 0, reason="a constraint is negative at a vertex")
        unsure_poly = ~vb["ok"]
        if bool(und.any()):
            unsure_poly[q[und]] = True
        filtered += C * (ncol - 1) + int(vq.sum())
        good = _neighbours_listed(ctx, c0, pc, col, valid)
        if bool((~good & ~unsure_poly).any()):
            return CertOutcome(False, filtered, 0, reason="the region across an edge is not listed")
        to_exact.extend((c0 + unsure_poly.nonzero()[:, 0]).tolist())
    return filtered, to_exact


def _pair_constraints(ctx, grouped, pp, cc):
    """Constraint columns ``cc`` of polygons ``pp`` (Q,) from the grouped maps: ``H`` (Q, 3) as
    ``(h(0, 0), dh/ds, dh/dt)`` (the same operations as :func:`_constraints`), ``skip`` (Q,)."""
    net, pat = ctx.net, ctx.pat
    Q = pp.numel()
    H = ctx.sides.new_zeros(Q, 3)
    skip = torch.zeros(Q, dtype=torch.bool, device=pp.device)
    side = cc >= ctx.ncol_u
    if bool(side.any()):
        H[side] = ctx.sides[cc[side] - ctx.ncol_u]
    lay = torch.searchsorted(ctx.L_cols, cc, right=True) - 1
    for m, (lyr, (gid, z)) in enumerate(zip(net.max_units, grouped)):
        sel = (lay == m).nonzero(as_tuple=True)[0]
        if not sel.numel():
            continue
        p, rem = pp[sel], cc[sel] - int(ctx.L_cols[m])
        g = gid[p]
        U, K = lyr.index.shape
        cf = lyr.coef
        zero_fn = ctx.dead[m].all(1)
        if bool(ctx.two[m]):
            j = rem
            w = pat[p, net.unit_offsets[m] + j].long()
            D = _two_piece_pairs(lyr, z, g, j)  # (3, S)
            H[sel] = torch.where((w == 1)[None], D, -D).T
            skip[sel] = zero_fn[j] & (w == 0)
        else:
            j, k = rem // K, rem % K
            w = pat[p, net.unit_offsets[m] + j].long()
            Pk = (z[:, g, lyr.index[j, k]] * cf[j, k]).masked_fill(~lyr.valid[j, k][None], 0.0)
            Pw = z[:, g, lyr.index[j, w]] * cf[j, w]
            H[sel] = (Pw - Pk).T
            skip[sel] = (k == w) | ~lyr.valid[j, k] | (zero_fn[j] & (k > w))
    return H, skip


def _relu_like(lyr) -> bool:
    return lyr.elementwise_units and bool((lyr.coef[:, 0] == 0).all()) and bool((lyr.coef[:, 1] == 1).all())


def _two_piece_block(lyr, z):
    """``D = g_1 - g_0`` of every unit of a two-piece layer from its input maps ``z`` (3, B, n):
    ``c_1 z_i1 - c_0 z_i0``; for ReLU ``1 z - 0 z``, which is ``z`` exactly."""
    cf = lyr.coef
    if _relu_like(lyr):
        return z
    if lyr.elementwise_units:
        return z * cf[:, 1] - z * cf[:, 0]
    return z[..., lyr.index[:, 1]] * cf[:, 1] - z[..., lyr.index[:, 0]] * cf[:, 0]


def _two_piece_pairs(lyr, z, g, j):
    """``D`` (3, Q) of units ``j`` on groups ``g`` (Q,), the same float operations as
    :func:`_two_piece_block`."""
    cf = lyr.coef
    if _relu_like(lyr):
        return z[:, g, j]
    i1, i0 = (j, j) if lyr.elementwise_units else (lyr.index[j, 1], lyr.index[j, 0])
    return z[:, g, i1] * cf[j, 1] - z[:, g, i0] * cf[j, 0]


def _bad_ties(ctx):
    """Whether some polygon's pattern breaks an exact tie (a unit whose pieces are all exactly
    zero) to a higher index than the lowest valid piece (:meth:`PLNet.pattern` takes the lowest)."""
    for m, lyr in enumerate(ctx.net.max_units):
        zero_fn = ctx.dead[m].all(1)
        if not bool(zero_fn.any()):
            continue
        w = ctx.pat[:, ctx.net.unit_offsets[m]:ctx.net.unit_offsets[m + 1]].long()
        first = lyr.valid.long().argmax(1)  # lowest valid piece
        if bool((zero_fn[None] & (w > first[None])).any()):
            return True
    return False


def _union_boxes(gid, lohi):
    """Per group of polygons, the box ``[ms +- rs] x [mt +- rt]`` holding all their boxes (``lohi``
    (P, 4): s_lo, s_hi, t_lo, t_hi, infinite for a polygon without a box) and whether it is finite."""
    G = int(gid.max()) + 1
    dev, dt = lohi.device, lohi.dtype
    ext = []
    for k, (fill, how) in enumerate(((math.inf, "amin"), (-math.inf, "amax"), (math.inf, "amin"),
                                     (-math.inf, "amax"))):
        ext.append(torch.full((G,), fill, dtype=dt, device=dev).scatter_reduce(0, gid, lohi[:, k], how))
    ms, rs = _mid_radius(ext[0], ext[1])
    mt, rt = _mid_radius(ext[2], ext[3])
    ok = torch.isfinite(ms) & torch.isfinite(rs) & torch.isfinite(mt) & torch.isfinite(rt)
    return (*(torch.where(ok, x, 0.0) for x in (ms, rs, mt, rt)), ok)


_GROUP_TEST = 1 << 18  # groups x units per block of the group tests


def _grouped_pass(ctx, grouped, E, n, deadline):
    """Certificate for chain networks, constraints tested on groups first.

    A two-piece unit's constraint is the same affine function on every polygon that shares the
    winners of the earlier layers (a group, :func:`_grouped_max_inputs`) and its own winner. It is
    tested once per group on a box holding the exact vertices of all the group's polygons (the
    union of their boxes): ``D > bound`` there clears it for every polygon of the group whose
    winner is piece 1, ``D < -bound`` for those with piece 0. Only the rest (the polygon's own
    edges, lines through or near it, units with more pieces, the rectangle's sides) are tested per
    polygon, on its box and then at its vertices. Returns (filtered decisions, polygons for the
    exact stage) or an outcome."""
    net, pat = ctx.net, ctx.pat
    dev = pat.device
    P = pat.shape[0]
    Mx = E.shape[1]
    if _bad_ties(ctx):
        return CertOutcome(False, 0, 0, reason="a tie of identical pieces broken to the higher index")
    # pass 1: edge lines, exact vertices and boxes of every polygon
    csize = max(1, _CHUNK // (64 * Mx))
    keep = {k: [] for k in ("Xh", "eX", "prv", "ok", "box", "lohi", "col", "xmax", "emax")}
    for c0 in range(0, P, csize):
        if deadline is not None and time.perf_counter() > deadline:
            return CertOutcome(None, 0, 0, reason="time_limit")
        c1 = min(P, c0 + csize)
        col = _edge_columns(ctx, c0, c1, E[c0:c1])
        if isinstance(col, CertOutcome):
            return col
        valid = col >= 0
        pp, jj = valid.nonzero(as_tuple=True)
        H, skip = _pair_constraints(ctx, grouped, c0 + pp, col[pp, jj])
        if bool(skip.any()):
            return CertOutcome(None, 0, 0, reason="an edge on a tie of identical pieces (degenerate)")
        C = c1 - c0
        Lj = H.new_zeros(C, Mx, 3)
        eLj = H.new_zeros(C, Mx, 3)
        Lj[pp, jj] = H
        eLj[pp, jj] = (ctx.EM[:, col[pp, jj]].T + 2 * _U * H.abs()) * _SAFE
        vb = _vertex_boxes(Lj, eLj, valid, n[c0:c1])
        if isinstance(vb, CertOutcome):
            return vb
        vb["col"] = col
        for k in keep:
            keep[k].append(vb[k])
    st = {k: torch.cat(v) for k, v in keep.items()}
    ok_all, box, lohi, colc = st["ok"], st["box"], st["lohi"], st["col"].clamp(min=0)
    valid_all = st["col"] >= 0
    prc_all = colc.gather(1, st["prv"])
    # pass 2: per two-piece layer l, each unit's sign on the union box of each group of level l
    # (polygons sharing the winners of layers < l): +1, -1 or 0; then the constraints that test
    # leaves undecided for a group of level l + 1 (whose layer-l winners are fixed as well), on
    # that group's union box
    signs, second = {}, {}
    levels = [g for g, _ in grouped]
    boxes = [_union_boxes(gid, lohi) for gid in levels]
    for m, (lyr, (gid, z)) in enumerate(zip(net.max_units, grouped)):
        if not bool(ctx.two[m]):
            continue
        G, U = z.shape[1], lyr.units
        gms, grs, gmt, grt, gok = boxes[m]
        c_lo = int(ctx.L_cols[m])
        Em = ctx.EM[:, c_lo:c_lo + U]
        sg = torch.zeros(G, U, dtype=torch.int8, device=dev)
        step = max(1, _GROUP_TEST // max(1, U))
        for a in range(0, G, step):
            b = min(G, a + step)
            D = _two_piece_block(lyr, z[:, a:b])  # (3, B, U)
            bx = [x[a:b, None] for x in (gms, grs, gmt, grt)]
            val, err = _box_clear(D[0], D[1], D[2], Em[0], Em[1], Em[2], *bx)
            ok = gok[a:b, None]
            sg[a:b] = ((val > err) & ok).to(torch.int8) - ((val < -err) & ok).to(torch.int8)
        signs[m] = (gid, sg)
        if m + 1 >= len(levels):
            continue
        gid2 = levels[m + 1]
        G2 = int(gid2.max()) + 1
        first = torch.zeros(G2, dtype=torch.long, device=dev).scatter_(0, gid2, torch.arange(P, device=dev))
        par = gid[first]  # each level-(l + 1) group's group at level l
        cleared = torch.zeros(G2, U, dtype=torch.bool, device=dev)
        step = max(1, _GROUP_TEST // max(1, U))
        for a in range(0, G2, step):
            b = min(G2, a + step)
            w = pat[:, net.unit_offsets[m]:net.unit_offsets[m + 1]].index_select(0, first[a:b])
            gq, j = (sg.index_select(0, par[a:b]) != (2 * w - 1)).nonzero(as_tuple=True)
            gq = gq + a
            pq = par[gq]
            D = _two_piece_pairs(lyr, z, pq, j)  # (3, Q)
            wq = pat[first[gq], net.unit_offsets[m] + j]
            H = torch.where((wq == 1)[None], D, -D)
            g2ms, g2rs, g2mt, g2rt, g2ok = (x[gq] for x in boxes[m + 1])
            val, err = _box_clear(H[0], H[1], H[2], Em[0, j], Em[1, j], Em[2, j], g2ms, g2rs, g2mt, g2rt)
            cleared[gq, j] = (val > err) & g2ok
        second[m] = (gid2, cleared)
    # pass 3: the remaining constraints of every polygon, on its box and then at its vertices
    filtered = 0
    to_exact = []
    ncol = ctx.ncol
    csize = max(1, _CHUNK // (4 * ncol + 64 * Mx + 8 * pat.shape[1]))
    for c0 in range(0, P, csize):
        if deadline is not None and time.perf_counter() > deadline:
            return CertOutcome(None, filtered, 0, reason="time_limit")
        c1 = min(P, c0 + csize)
        C = c1 - c0
        pc = pat[c0:c1]
        parts_p, parts_c = [], []
        for m, lyr in enumerate(net.max_units):
            c_lo, c_hi = int(ctx.L_cols[m]), int(ctx.L_cols[m + 1])
            if m in signs:
                gid, sg = signs[m]
                w = pc[:, net.unit_offsets[m]:net.unit_offsets[m + 1]]
                near = sg.index_select(0, gid[c0:c1]) != (2 * w - 1)  # not cleared by the group tests
                if m in second:
                    gid2, cleared = second[m]
                    near &= ~cleared.index_select(0, gid2[c0:c1])
                p_, j_ = near.nonzero(as_tuple=True)
                parts_p.append(p_)
                parts_c.append(c_lo + j_)
            else:
                parts_p.append(torch.arange(C, device=dev).repeat_interleave(c_hi - c_lo))
                parts_c.append(torch.arange(c_lo, c_hi, device=dev).repeat(C))
        parts_p.append(torch.arange(C, device=dev).repeat_interleave(_N_SIDES))
        parts_c.append(torch.arange(ctx.ncol_u, ncol, device=dev).repeat(C))
        q, cidx = torch.cat(parts_p), torch.cat(parts_c)
        okc = ok_all[c0:c1]
        sel = okc[q]
        q, cidx = q[sel], cidx[sel]
        Hq, skip = _pair_constraints(ctx, grouped, c0 + q, cidx)
        bx = box[c0:c1][q]
        Ec_ = ctx.EM[:, cidx]
        val, err = _box_clear(Hq[:, 0], Hq[:, 1], Hq[:, 2], Ec_[0], Ec_[1], Ec_[2], bx[:, 0], bx[:, 1], bx[:, 2],
                              bx[:, 3])
        sel = ~(val > err) & ~skip
        q, cidx, Hq = q[sel], cidx[sel], Hq[sel]
        eHq = (ctx.EM[:, cidx].T + 2 * _U * Hq.abs()) * _SAFE
        gq = c0 + q
        incident = (cidx[:, None] == colc[gq]) | (cidx[:, None] == prc_all[gq])
        vq = valid_all[gq] & ~incident
        neg, und = _vertex_signs_bounded(Hq, eHq, st["Xh"], st["eX"], gq, vq, st["xmax"][gq], st["emax"][gq])
        if bool(neg.any()):
            return CertOutcome(False, filtered, 0, reason="a constraint is negative at a vertex")
        unsure_poly = ~okc
        if bool(und.any()):
            unsure_poly[q[und]] = True
        filtered += C * (ncol - 1) + int(vq.sum())
        good = _neighbours_listed(ctx, c0, pc, st["col"][c0:c1], valid_all[c0:c1])
        if bool((~good & ~unsure_poly).any()):
            return CertOutcome(False, filtered, 0, reason="the region across an edge is not listed")
        to_exact.extend((c0 + unsure_poly.nonzero()[:, 0]).tolist())
    return filtered, to_exact


def _exact_stage(net, origin, u, v, ext, pat, E, ranges, L_cols, offsets, Kc, two, ncol_u, polys, h, hs, order,
                 hw, filtered, deadline) -> CertOutcome:
    tabs = exact_tables(net)
    if tabs is None:
        return CertOutcome(None, filtered, 0, reason="the exact tables would be too large")
    per = sum(t[1].size for t in tabs[1:] if t[0] == "affine") * 3 + 1
    if per * len(polys) > _MAX_EXACT_ENTRIES:
        return CertOutcome(None, filtered, 0, reason=f"{len(polys)} polygons for the exact stage: over its budget")
    Z, e = dyadic(torch.stack([origin, u, v], 1))  # rows: input features
    sides = []
    for k, x in enumerate((ext[2], ext[1], ext[3], ext[0])):  # t >= t0, s <= s1, t <= t1, s >= s0
        p, q = x.as_integer_ratio()
        sides.append([(-p, 0, q), (p, -q, 0), (p, 0, -q), (-p, q, 0)][k])
    dev = pat.device
    P = pat.shape[0]
    n_exact = 0
    two_l = two.tolist()
    offs = offsets.tolist()
    for i in polys:
        if deadline is not None and time.perf_counter() > deadline:
            return CertOutcome(None, filtered, n_exact, reason="time_limit")
        n_exact += 1
        p_i = pat[i].cpu().tolist()
        pieces = exact_layer_pieces(net, tabs, Z, e, p_i)
        # every constraint column as integers (c, a, b) (positive scaling keeps signs), None when skipped;
        # ties: columns whose two pieces are the same function on this polygon (zero everywhere)
        cons, slot, ties = [], [], set()
        for l, (Pc, _) in enumerate(pieces):
            Uu, K = Pc.shape[0], Pc.shape[1]
            valid = net.max_units[l].valid.cpu().numpy()
            for uu in range(Uu):
                w = p_i[offs[l] + uu]
                for k in ([1 - w] if two_l[l] else range(K)):
                    slot.append((l, uu, k))
                    if k == w or not valid[uu, k]:
                        cons.append(None)
                        continue
                    hc = tuple(int(x) for x in (Pc[uu, w] - Pc[uu, k]))
                    if hc == (0, 0, 0):
                        if k < w:
                            return CertOutcome(False, filtered, n_exact, reason="a tie broken to the higher index")
                        ties.add(len(cons))
                        cons.append(None)
                        continue
                    cons.append(hc)
        cons.extend(sides)
        col = _decode(E[i:i + 1], ranges, L_cols, offsets, Kc, pat[i:i + 1], ncol_u)[0]
        m = int((E[i] >= 0).sum())
        cols = col[:m].tolist()
        if any(c < 0 for c in cols) or any(cons[c] is None for c in cols):
            return CertOutcome(False, filtered, n_exact, reason="an edge on no constraint of its polygon")
        if len(set(cols)) != m:
            return CertOutcome(False, filtered, n_exact, reason="two edges of one polygon on the same constraint")
        lines = [cons[c] for c in cols]
        verts = []
        for j in range(m):
            (c1, a1, b1), (c2, a2, b2) = lines[j - 1], lines[j]
            X, Y, W = b1 * c2 - c1 * b2, c1 * a2 - a1 * c2, a1 * b2 - b1 * a2
            if W < 0:
                return CertOutcome(False, filtered, n_exact, reason="a polygon turns clockwise")
            if W == 0:
                return CertOutcome(None, filtered, n_exact, reason="parallel consecutive edges (degenerate)")
            verts.append((X, Y, W))
        zeros = []
        for j, (X, Y, W) in enumerate(verts):
            zj = set()
            for c, hc in enumerate(cons):
                if hc is None or c == cols[j] or c == cols[j - 1]:
                    continue
                val = hc[1] * X + hc[2] * Y + hc[0] * W
                if val < 0:
                    return CertOutcome(False, filtered, n_exact, reason="a constraint is negative at a vertex")
                if val == 0:
                    if c == cols[(j + 1) % m]:
                        return CertOutcome(None, filtered, n_exact, reason="an edge of zero length (degenerate)")
                    zj.add(c)
            zeros.append(zj)
        # neighbours across this polygon's cut edges
        for j in range(m):
            c = cols[j]
            if c >= ncol_u:
                continue
            along = zeros[j] & zeros[(j + 1) % m]  # other constraints zero on the whole edge
            if any(t >= ncol_u for t in along):
                continue  # the edge lies on a side of the slice: nothing across it
            if along or any(slot[t][0] > slot[c][0] for t in ties):
                q = _exact_neighbour(net, tabs, Z, e, p_i, pieces, slot, offs, two_l, ties | along | {c},
                                     lines[j], verts[j], verts[(j + 1) % m])
                if q is None:
                    return CertOutcome(None, filtered, n_exact,
                                       reason="the region across an edge with ties is undecided (degenerate)")
            else:
                _, uu, kk = slot[c]
                q = list(p_i)
                q[offs[slot[c][0]] + uu] = kk
            diff = [x for x in range(len(p_i)) if q[x] != p_i[x]]
            if not diff:
                return CertOutcome(False, filtered, n_exact, reason="an edge between two parts of one region")
            d_t = torch.tensor(diff, device=dev)
            q_t = torch.tensor(q, dtype=pat.dtype, device=dev)
            hq = h[i] + ((q_t[d_t].long() - pat[i, d_t].long()) * hw[d_t]).sum()
            idx = int(torch.searchsorted(hs, hq.reshape(1)).clamp(max=P - 1))
            if not (bool(hs[idx] == hq) and torch.equal(pat[order[idx]], q_t)):
                return CertOutcome(False, filtered, n_exact, reason="the region across an edge is not listed")
    return CertOutcome(True, filtered, n_exact)


def _exact_neighbour(net, tabs, Z, e, p_i, pieces, slot, offs, two_l, vanish, line, x0, x1):
    """The activation pattern just across an edge of polygon ``p_i`` (exact integers), or None when
    the argument below does not hold.

    ``vanish``: the constraint columns that are zero on the whole edge (the edge's own, those of
    other lines through both its ends, and ties: pieces equal as functions on the polygon). Every
    other constraint is positive on the open edge, so just across it its unit keeps its winner (the
    network's values are continuous). A unit with vanishing constraints picks among the winner and
    those pieces, which are equal along the edge under the patterns of both sides (layer by layer:
    the earlier layers' winners across are known by then, and both sides' maps agree on the edge);
    their differences are affine and zero on the edge's line, so just across it the piece that
    grows fastest along the outward normal ``-(a, b)`` of the edge's line ``c + a s + b t >= 0``
    wins, the lowest index among pieces that are then the same function (as in
    :meth:`PLNet.pattern`). The equalities along the edge are checked, not assumed."""
    _, a, b = line
    comp = {}
    for c in vanish:
        l, uu, k = slot[c]
        comp.setdefault((l, uu), set()).add(k)
    q = list(p_i)
    cur = pieces
    changed = False
    for l in range(len(pieces)):
        units = sorted(uu for (ll, uu) in comp if ll == l)
        if not units:
            continue
        if changed:  # an earlier layer's winner changed: this layer's pieces under the new pattern
            cur = exact_layer_pieces(net, tabs, Z, e, q)
        Pc = cur[l][0]
        for uu in units:
            w = q[offs[l] + uu]
            ks = sorted(comp[(l, uu)] | {w})
            for k in ks:  # equal to the winner at both ends of the edge
                dk = [int(x) for x in (Pc[uu, k] - Pc[uu, w])]
                if any(dk[0] * W + dk[1] * X + dk[2] * Y != 0 for X, Y, W in (x0, x1)):
                    return None
            der = {k: -(int(Pc[uu, k][1]) * a + int(Pc[uu, k][2]) * b) for k in ks}
            top = max(der.values())
            win = min(k for k in ks if der[k] == top)
            if win != w:
                q[offs[l] + uu] = win
                changed = True
    return q
