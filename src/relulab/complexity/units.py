"""Every hidden max unit's boundary function ``z`` and its exact input gradient, batched.

For a max unit the boundary is where its top two pieces tie. relulab's *unit function* is

* two-piece elementwise units (ReLU, leaky ReLU, absolute value): ``z = `` the unit's input (its
  pre-activation), so that perturbing the layer's bias by ``eps`` moves the boundary to
  ``z = -eps`` (the bias noise of Patel and Montufar);
* units with more pieces (maxout, max-pool windows): ``z = p_(1) - p_(2)``, the gap between the top
  two pieces (``>= 0``; the boundary is its zero set). A window with a single valid piece has no
  boundary: ``z = +inf`` and gradient 0.

With the activation pattern of x fixed, every piece is an affine function of the input, so
``grad_x z`` is exact: it is carried forward from the input with the tangents of one pass. The
tangents are an orthonormal basis ``Q`` of the row space of the first affine layer when the input
feeds one affine layer with fewer outputs than inputs (every hidden gradient lies in that row space,
so ``|Q^T g| = |g|`` while ``rank <= width`` tangents replace ``d``), else the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from relulab.core.errors import InvalidInputError, ResourceLimitError, UnsupportedLayerError
from relulab.core.threads import threads_for
from relulab.core.layers import Add, Affine, MaxUnits, numel
from relulab.results import Result

__all__ = ["unit_gradients", "UnitGradients", "output_sensitivity", "tangent_basis"]

_DEFAULT_MEMORY = 512 * 2**20


@dataclass(repr=False)
class UnitGradients(Result):
    """Per input and hidden max unit: ``z`` (B, U) the unit function, ``grad_norm`` (B, U) the exact
    ``|grad_x z|``; ``active`` (B, U) long, the winning piece (two-piece units: 1 means ``z > 0``);
    ``layer`` (U,) the max layer of each unit; optionally ``features`` (B, r, n_feat), the Jacobian of
    the last max layer's output in the tangent basis (rows ``Q^T``-coordinates), and ``output_grad``
    (B, r, n_out) the network's Jacobian in the same basis (``|.|`` and singular values are those of
    the input-space Jacobians); ``vectors`` (B, U, d) the input gradients themselves when asked for."""

    z: torch.Tensor
    grad_norm: torch.Tensor
    active: torch.Tensor
    layer: torch.Tensor
    features: torch.Tensor | None = None
    output_grad: torch.Tensor | None = None
    basis_rank: int = 0
    vectors: torch.Tensor | None = None


def unit_layers(net) -> torch.Tensor:
    """The max-layer index of every unit, (U,) long."""
    sizes = [m.units for m in net.max_units]
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes, dtype=torch.long)) \
        if sizes else torch.zeros(0, dtype=torch.long)


def check_net(net) -> None:
    from relulab.core.plnet import PLNet

    if not isinstance(net, PLNet):
        raise InvalidInputError(f"net must be a relulab.PLNet (use PLNet.from_torch(module, input_shape)), "
                                f"got {type(net).__name__}")
    for n in net.nodes[1:]:
        if not isinstance(n.layer, (Affine, MaxUnits, Add)):
            raise UnsupportedLayerError(f"layer {n.name or type(n.layer).__name__} is neither affine nor a max unit")


def check_inputs(net, x, name: str = "data", min_rows: int = 1) -> torch.Tensor:
    """Inputs as (n, d) in the network's dtype; one clear error for a wrong shape or non-finite entries."""
    check_net(net)
    try:
        t = torch.as_tensor(x)
    except Exception as e:  # noqa: BLE001 - say what was given
        raise InvalidInputError(f"{name} must be array-like, got {type(x).__name__}") from e
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise InvalidInputError(f"{name} must be a real array, got dtype {t.dtype}")
    shp, d = net.input_shape, net.input_dim
    if t.dim() == len(shp) + 1 and tuple(t.shape[1:]) == shp:
        t = t.reshape(t.shape[0], d)
    elif not (t.dim() == 2 and t.shape[1] == d):
        raise InvalidInputError(f"{name} of shape {tuple(t.shape)} does not fit the network: give (n, "
                                f"{', '.join(map(str, shp))}) or (n, {d})")
    if t.shape[0] < min_rows:
        raise InvalidInputError(f"{name} needs at least {min_rows} row(s), got {t.shape[0]}")
    t = t.to(device=net.device, dtype=net.dtype)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(1).nonzero()[0])
        raise InvalidInputError(f"{name} has non-finite entries (first in row {bad})")
    return t


def tangent_basis(net) -> torch.Tensor:
    """Rows (r, d): an orthonormal basis of a subspace that holds every hidden unit's input gradient."""
    d = net.input_dim
    eye = torch.eye(d, dtype=net.dtype, device=net.device)
    users = [i for i, nd in enumerate(net.nodes) if 0 in nd.inputs]
    if len(users) != 1 or not isinstance(net.nodes[users[0]].layer, Affine):
        return eye
    layer = net.nodes[users[0]].layer
    n1 = numel(layer.out_shape)
    if n1 >= d or n1 * d > 5 * 10**7:
        return eye
    L, _ = layer.dense()
    Q, _ = torch.linalg.qr(L.T.to(net.dtype))  # columns span the row space of L (rank <= n1)
    return Q.T.contiguous()


def _unit_z(layer: MaxUnits, zin, tin, B):
    """(z, tangent of z or None, winners) of a max layer from its input value and tangents."""
    if layer.elementwise_units and layer.index.shape[1] == 2:
        p = layer.pieces(zin)
        w = p.argmax(-1)
        return zin, tin, w
    p = layer.pieces(zin)
    w = p.argmax(-1)
    K = p.shape[-1]
    if K == 1:
        return torch.full_like(zin[:, :layer.units], math.inf), None, w
    top, idx = p.topk(2, dim=-1)
    z = top[..., 0] - top[..., 1]
    single = ~torch.isfinite(z)
    z = torch.where(single, torch.full_like(z, math.inf), z)
    if tin is None:
        return z, None, w
    tb = tin.expand(B, -1, -1) if tin.shape[0] != B else tin
    m = tb.shape[1]
    ii = layer.index[torch.arange(layer.units, device=idx.device)[None, :, None].expand(B, -1, 2), idx]  # (B, U, 2)
    cf = layer.coef.expand(B, -1, -1).gather(2, idx)  # (B, U, 2)
    g = tb.gather(2, ii.reshape(B, 1, -1).expand(B, m, -1)).reshape(B, m, layer.units, 2)
    tz = g[..., 0] * cf[:, None, :, 0] - g[..., 1] * cf[:, None, :, 1]
    tz = tz.masked_fill(single[:, None, :], 0.0)
    return z, tz, w


def _pass(net, x, T, want_features: bool, want_vectors: bool = False):
    """One pass over (B, d) inputs with tangents T (1, m, d) or None: per-layer (z, |grad z|, winners)."""
    B = x.shape[0]
    vals = {0: x}
    tans = {0: T}
    zs, gs, ws, vs = [], [], [], []
    feat = None
    last_max = net.max_layers[-1] if net.max_layers else -1
    last_use = net._last_use  # the node after which each value is no longer needed
    for i, node in enumerate(net.nodes[1:], start=1):
        layer, a = node.layer, node.inputs[0]
        t = None
        if not isinstance(layer, MaxUnits):  # affine maps and additions
            v = layer.forward(*(vals[j] for j in node.inputs))
            t = None if T is None else layer.tangent(*(tans[j] for j in node.inputs))
        else:
            zin, tin = vals[a], tans[a]
            z, tz, w = _unit_z(layer, zin, tin, B)
            zs.append(z)
            ws.append(w)
            if tz is not None:
                gn = tz.norm(dim=1)
                gs.append(gn.expand(B, -1) if gn.shape[0] != B else gn)
                if want_vectors:
                    vs.append((tz.transpose(1, 2) @ T[0]).expand(B, -1, -1))
            else:
                gs.append(torch.zeros_like(z) if T is not None else None)
                if want_vectors:
                    vs.append(z.new_zeros(B, z.shape[1], x.shape[1]))
            v, idx, cf = layer.select(zin, w)
            if T is not None:
                t = layer.selected_tangent(tin, idx, cf)
            if want_features and i == last_max and t is not None:
                feat = t.expand(B, -1, -1) if t.shape[0] != B else t
        vals[i], tans[i] = v, t
        for j in node.inputs:
            if last_use.get(j) == i:
                vals.pop(j, None)
                tans.pop(j, None)
    last = len(net.nodes) - 1
    out_t = tans.get(last)
    if out_t is not None and out_t.shape[0] != B:
        out_t = out_t.expand(B, -1, -1)
    return zs, gs, ws, feat, out_t, vs


def unit_gradients(net, x, *, gradients: bool = True, features: bool = False, outputs: bool = False,
                   vectors: bool = False, memory: int = _DEFAULT_MEMORY, progress=None) -> UnitGradients:
    """Unit functions ``z`` and exact ``|grad_x z|`` of every hidden max unit at every input.

    ``x`` (n, *input_shape) or (n, d). ``features``/``outputs``: also the Jacobians of the last max
    layer's output and of the network output, in the tangent basis (see the module docstring).
    ``vectors``: also every gradient ``grad_x z`` (n, U, d) (checked against ``memory`` first).
    ``memory`` (bytes) bounds the working set of one chunk of inputs; ``progress(done, total)`` is
    called after every chunk.
    """
    X = check_inputs(net, x, "x")
    n = X.shape[0]
    U = net.n_units
    if U == 0:
        raise InvalidInputError("the network has no hidden max units (it is affine): nothing to measure")
    if not isinstance(memory, (int, float)) or isinstance(memory, bool) or memory <= 0:
        raise InvalidInputError(f"memory must be a positive number of bytes, got {memory!r}")
    if vectors and n * U * net.input_dim * 8 > memory:
        raise ResourceLimitError(f"the gradients would take {n * U * net.input_dim * 8 / 2**20:.2f} MiB "
                                 f"({n} x {U} x {net.input_dim}); raise memory= (now {memory / 2**20:.2f} MiB) "
                                 f"or ask for norms only (vectors=False)")
    gradients = gradients or vectors
    Q = tangent_basis(net) if gradients or features or outputs else None
    m = 0 if Q is None else Q.shape[0]
    widest = max([numel(nd.layer.out_shape) for nd in net.nodes[1:]] + [net.input_dim])
    kmax = max(mu.index.shape[1] for mu in net.max_units)
    # tangents are processed in groups small enough for the budget: squared norms add over groups
    per_tangent = 8 * widest * (3 + kmax)
    group = max(1, min(max(m, 1), int(memory // (3 * per_tangent)) - 2)) if m else 0
    if m and 8 * (group + 2) * widest * (3 + kmax) > memory:
        raise ResourceLimitError(f"one input with one tangent needs about {3 * per_tangent / 2**20:.1f} MiB of "
                                 f"working memory (widest layer {widest}); raise memory= (now "
                                 f"{memory / 2**20:.0f} MiB)")
    per_row = 8 * (group + 2) * widest * (3 + kmax)
    chunk = max(1, int(memory // per_row))
    parts = []
    groups = [None] if Q is None else [Q[None, g:g + group] for g in range(0, m, group)]
    # small operations, or a busy machine, run on one thread (core.threads)
    with torch.no_grad(), threads_for(min(n, chunk) * (group + 2) * widest):
        for s in range(0, n, chunk):
            xb = X[s:s + chunk]
            acc = None
            for T in groups:
                zs, gs, ws, feat, out_t, vs = _pass(net, xb, T, features, vectors)
                cur = [torch.cat(zs, 1), torch.cat(gs, 1) ** 2 if gradients else None, torch.cat(ws, 1),
                       feat, out_t if outputs else None, torch.cat(vs, 1) if vectors else None]
                if acc is None:
                    acc = cur
                    continue
                if gradients:
                    acc[1] = acc[1] + cur[1]
                if features and feat is not None:
                    acc[3] = torch.cat([acc[3], feat], 1)
                if outputs:
                    acc[4] = torch.cat([acc[4], cur[4]], 1)
                if vectors:
                    acc[5] = acc[5] + cur[5]
            if gradients:
                acc[1] = acc[1].sqrt()
            parts.append(tuple(acc))
            if progress is not None:
                progress(min(n, s + chunk), n)
    z = torch.cat([p[0] for p in parts])
    g = torch.cat([p[1] for p in parts]) if gradients else torch.zeros_like(z)
    w = torch.cat([p[2] for p in parts])
    F = torch.cat([p[3] for p in parts]) if features and parts[0][3] is not None else None
    O = torch.cat([p[4] for p in parts]) if outputs else None
    G = torch.cat([p[5] for p in parts]) if vectors else None
    return UnitGradients(z=z, grad_norm=g, active=w, layer=unit_layers(net).to(z.device), features=F,
                         output_grad=O, basis_rank=m, vectors=G)


def output_sensitivity(net, x, memory: int = _DEFAULT_MEMORY) -> tuple[torch.Tensor, torch.Tensor]:
    """``(|df/dy_k|, |dc_k|)``, each (n, U): the norm over outputs of the derivative of the network
    output with respect to every unit's output at x (activation pattern of x held fixed), and the
    size of the unit's slope change at its boundary (two-piece units ``|c_1 - c_0|``, i.e. 1 for ReLU,
    ``1 - a`` for leaky ReLU, 2 for abs; units with more pieces: 1, their gap ``z`` being the
    difference of the two pieces that swap). Crossing unit k's boundary changes ``grad f`` by a
    rank-one matrix of norm ``|df/dy_k| |dc_k| |grad z_k|``."""
    X = check_inputs(net, x, "x")
    n = X.shape[0]
    widest = max([numel(nd.layer.out_shape) for nd in net.nodes[1:]] + [net.input_dim])
    chunk = max(1, int(memory // (8 * widest * 8)))
    sens = []
    for s in range(0, n, chunk):
        xb = X[s:s + chunk]
        B = xb.shape[0]
        with torch.enable_grad():
            deltas = []
            vals = {0: xb}
            last_use = net._last_use
            for i, node in enumerate(net.nodes[1:], start=1):
                layer, a = node.layer, node.inputs[0]
                if not isinstance(layer, MaxUnits):  # affine maps and additions
                    v = layer.forward(*(vals[j] for j in node.inputs))
                else:
                    w = layer.pieces(vals[a].detach()).argmax(-1)
                    v, _, _ = layer.select(vals[a], w)
                    dl = torch.zeros(B, layer.units, dtype=v.dtype, device=v.device, requires_grad=True)
                    deltas.append(dl)
                    v = v + dl
                vals[i] = v
                for j in node.inputs:
                    if last_use.get(j) == i:
                        vals.pop(j, None)
            out = vals[len(net.nodes) - 1].reshape(B, -1)
            sq = torch.zeros(B, net.n_units, dtype=out.dtype, device=out.device)
            for o in range(out.shape[1]):
                gs = torch.autograd.grad(out[:, o].sum(), deltas, retain_graph=o + 1 < out.shape[1], allow_unused=True)
                g = torch.cat([torch.zeros_like(dl) if gi is None else gi for gi, dl in zip(gs, deltas)], 1)
                sq += g.detach() ** 2
        sens.append(sq.sqrt())
    dc = []
    for m in net.max_units:
        if m.elementwise_units and m.index.shape[1] == 2:
            dc.append((m.coef[:, 1] - m.coef[:, 0]).abs())
        else:
            dc.append(torch.ones(m.units, dtype=net.dtype, device=net.device))
    return torch.cat(sens), torch.cat(dc)[None].expand(n, -1)
