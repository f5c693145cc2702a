"""Affine maps of a ``PLNet``'s pieces on cells, with the biases scaled (homogeneous evaluation).

For a scale ``s > 0`` let ``N_s`` be the network with every bias multiplied by ``s``. Max units are
positively homogeneous, so ``N_s(y) = s N(y / s)`` piece by piece; at ``s = 1`` this is the network
itself and at ``s = 0`` its recession ("bias-free") network. The enumeration of all of R^d works in
compactified coordinates where ``s`` is an affine function of the point (see ``space.py``), so
here ``s`` comes with its own tangent.

:func:`layer_maps` evaluates, for a batch of cells, the pieces of one max layer at a point ``y0``
of each cell with the winners of all earlier max layers forced to the cell's pattern. The result is
exact on the whole cell (the pieces are affine there): ``p(y) = val + tan . (y - y0)``.
:meth:`Evaluator.bounds` gives pattern-free magnitude bounds (the network run with ``|W|``, ``|b|``);
the enumeration's zero tests are relative to them.
"""

from __future__ import annotations

import torch

from relulab.core.layers import Add, AvgPool, Dense, MaxUnits, Reshape


class Evaluator:
    """Forced-pattern, bias-scaled forward passes with tangents and magnitude bounds."""

    def __init__(self, net):
        self.net = net
        self._abs = {}

    def _abs_linear(self, i: int, layer, z: torch.Tensor) -> torch.Tensor:
        """``|L| z`` for a non-negative batch ``z`` (N, in_numel)."""
        if isinstance(layer, (Reshape, AvgPool)):
            return layer.linear(z)  # already non-negative operators
        m = self._abs.get(i)
        if m is None:
            W = layer.weight if isinstance(layer, Dense) else layer.dense()[0]
            m = self._abs[i] = W.abs().T.contiguous()
        return z @ m

    def bounds(self, d: int, dtype, device):
        """Pattern-free magnitude bounds: for every max layer ``l``, ``(A_l, B_l)`` with shapes
        (U, K, d) and (U, K), and for the output ``(A, B)`` (n, d), (n,), such that for inputs with
        ``|h| <= r`` (entrywise) and bias scale ``|s| <= sigma`` every quantity the evaluation of a
        piece touches is at most ``A r + B sigma`` in absolute value, whatever the pattern (a max
        unit is bounded by the sum of its pieces' magnitudes, which is linear)."""
        net = self.net
        h = torch.cat([torch.eye(d, dtype=dtype, device=device), torch.zeros(1, d, dtype=dtype, device=device)])
        sig = torch.cat([torch.zeros(d, dtype=dtype, device=device), torch.ones(1, dtype=dtype, device=device)])
        vals = {0: h}
        out = []
        for i, node in enumerate(net.nodes[1:], start=1):
            layer = node.layer
            v = vals[node.inputs[0]]
            if isinstance(layer, Add):
                nv = v + vals[node.inputs[1]]
            elif isinstance(layer, MaxUnits):
                p = v[:, layer.index] * layer.coef.abs() * layer.valid  # (d+1, U, K)
                out.append((p[:d].permute(1, 2, 0).contiguous(), p[d].contiguous()))
                nv = p.sum(-1)
            else:
                nv = self._abs_linear(i, layer, v)
                if layer.bias is not None:
                    nv = nv + sig[:, None] * layer.bias.abs()
            vals[i] = nv
        last = vals[len(net.nodes) - 1]
        return out, (last[:d].T.contiguous(), last[d].contiguous())

    def directional_pattern(self, x, v, bounds, tau: float):
        """Pattern at ``x + eps v`` for all small ``eps > 0`` (lexicographic: value at ``x``, then the
        derivative along ``v``; pieces equal in both tie, lowest index wins). Values closer than
        ``tau`` times the magnitude bounds count as equal."""
        net = self.net
        vals = {0: (x, v)}
        pats = []
        l = -1
        # rounding in the point's coordinates scales with the largest of them
        ax = x.abs().amax(1, keepdim=True).expand_as(x)
        av = v.abs().amax(1, keepdim=True).expand_as(v)
        for i, node in enumerate(net.nodes[1:], start=1):
            layer = node.layer
            h, t = vals[node.inputs[0]]
            if isinstance(layer, Add):
                h2, t2 = vals[node.inputs[1]]
                out = (h + h2, t + t2)
            elif isinstance(layer, MaxUnits):
                l += 1
                A, B = bounds[l]
                p = h[:, layer.index] * layer.coef
                pt = t[:, layer.index] * layer.coef
                tv = tau * (torch.einsum("bd,ukd->bu", ax, A) + B.sum(-1))[:, :, None]
                tt = tau * torch.einsum("bd,ukd->bu", av, A)[:, :, None]
                neg = torch.tensor(-float("inf"), dtype=p.dtype, device=p.device)
                p = torch.where(layer.valid, p, neg)
                top = p >= p.amax(-1, keepdim=True) - 2 * tv
                pt2 = torch.where(top, pt, neg)
                top &= pt2 >= pt2.amax(-1, keepdim=True) - 2 * tt
                w = top.to(torch.int8).argmax(-1)  # lowest index among the remaining ties
                pats.append(w)
                out = (p.gather(2, w[..., None])[..., 0], pt.gather(2, w[..., None])[..., 0])
            else:
                nh = layer.linear(h)
                if layer.bias is not None:
                    nh = nh + layer.bias
                out = (nh, layer.linear(t))
            vals[i] = out
            for j in node.inputs:
                if net._last_use.get(j) == i:
                    vals.pop(j, None)
        return torch.cat(pats, 1) if pats else torch.zeros(x.shape[0], 0, dtype=torch.long, device=x.device)

    def tie_sets(self, x, bounds, tau: float) -> torch.Tensor:
        """For points ``x`` (B, d): (B, units, K) bool, the pieces of every max unit that attain its
        maximum at ``x`` (values within ``tau`` times the magnitude bounds of the maximum count as
        attaining it; ``tau = 0``: exact float64 equality). ``x`` lies in the closure of the
        activation region of a pattern ``p`` iff ``p`` picks a marked piece of every unit: forcing
        marked winners does not change any value at ``x``, so the region's inequalities hold there."""
        net = self.net
        vals = {0: x}
        out = []
        l = -1
        ax = x.abs().amax(1, keepdim=True).expand_as(x)
        kmax = max([int(m.valid.shape[1]) for m in net.max_units] + [1])
        for i, node in enumerate(net.nodes[1:], start=1):
            layer = node.layer
            h = vals[node.inputs[0]]
            if isinstance(layer, Add):
                nh = h + vals[node.inputs[1]]
            elif isinstance(layer, MaxUnits):
                l += 1
                A, B = bounds[l]
                p = h[:, layer.index] * layer.coef
                tv = tau * (torch.einsum("bd,ukd->bu", ax, A) + B.sum(-1))[:, :, None]
                p = torch.where(layer.valid, p, torch.tensor(-float("inf"), dtype=p.dtype, device=p.device))
                top = p.amax(-1, keepdim=True)
                at = (p >= top - tv) & layer.valid
                if at.shape[-1] < kmax:
                    at = torch.nn.functional.pad(at, (0, kmax - at.shape[-1]))
                out.append(at)
                nh = top[..., 0]
            else:
                nh = layer.linear(h)
                if layer.bias is not None:
                    nh = nh + layer.bias
            vals[i] = nh
            for j in node.inputs:
                if net._last_use.get(j) == i:
                    vals.pop(j, None)
        if not out:
            return torch.zeros(x.shape[0], 0, kmax, dtype=torch.bool, device=x.device)
        return torch.cat(out, 1)

    def run(self, upto: int | None, h0, dh0, s, ds, winners):
        """One pass.

        ``h0`` (B, d) network input, ``dh0`` (B, m, d) its tangents, ``s`` (B,) bias scale with
        tangents ``ds`` (B, m); ``winners`` (B, units) long, the forced winners of every max layer
        before ``upto`` (or of all of them when ``upto`` is None).
        Returns ``(val, tan)``: for ``upto`` the pieces of that max layer, (B, U, K) and
        (B, m, U, K); for ``upto=None`` the output, (B, n) and (B, m, n).
        """
        net = self.net
        B, m = dh0.shape[0], dh0.shape[1]
        vals = {0: (h0, dh0)}
        l = -1
        last_use = net._last_use
        for i, node in enumerate(net.nodes[1:], start=1):
            layer = node.layer
            v, t = vals[node.inputs[0]]
            if isinstance(layer, Add):
                v2, t2 = vals[node.inputs[1]]
                out = (v + v2, t + t2)
            elif isinstance(layer, MaxUnits):
                l += 1
                if upto is not None and l == upto:
                    idx, cf = layer.index, layer.coef
                    return v[:, idx] * cf, t[:, :, idx] * cf
                w = winners[:, net.layer_slice(l)]
                ar = torch.arange(layer.units, device=w.device)
                idx = layer.index[ar, w]  # (B, U)
                cf = layer.coef[ar, w]
                out = (v.gather(1, idx) * cf, t.gather(2, idx[:, None, :].expand(B, m, -1)) * cf[:, None, :])
            else:
                nv = layer.linear(v)
                nt = layer.linear(t.reshape(B * m, -1)).reshape(B, m, -1)
                if layer.bias is not None:
                    nv = nv + s[:, None] * layer.bias
                    nt = nt + ds[:, :, None] * layer.bias
                out = (nv, nt)
            vals[i] = out
            for j in node.inputs:
                if last_use.get(j) == i:
                    vals.pop(j, None)
        return vals[len(net.nodes) - 1]


def median_tie_distance(values: torch.Tensor, slopes: torch.Tensor, valid: torch.Tensor) -> float:
    """Median distance from a point to the tie hyperplanes of one max layer: ``|v_k - v_0| /
    |g_k - g_0|`` over valid pieces ``k >= 1`` of every unit, with ``values`` (U, K) and
    ``slopes`` (U, K, d) the pieces' values and gradients there; 1 when there is none. Used only to
    condition tolerances and LPs, so it is clamped to [1e-6, 1e6]."""
    dv = (values[:, 1:] - values[:, :1]).abs()
    dn = (slopes[:, 1:] - slopes[:, :1]).norm(dim=-1)
    ok = valid[:, 1:] & (dn > 0)
    dist = dv[ok] / dn[ok]
    dist = dist[torch.isfinite(dist) & (dist > 0)]
    if dist.numel() == 0:
        return 1.0
    return float(dist.median().clamp(1e-6, 1e6))
