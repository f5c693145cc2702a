"""``PLNet``: the canonical piecewise-linear representation of a network.

A ``PLNet`` is a directed acyclic graph whose nodes are affine maps, layers of max units and
residual additions (see :mod:`relulab.core.layers`). An *activation pattern* records the winning
piece of every max unit; on the set of inputs sharing a pattern (an activation region, a convex
polyhedron) the network is one affine map. Everything else in relulab is built on the batched
primitives here: :meth:`PLNet.trace`, :meth:`PLNet.pattern`, :meth:`PLNet.local_affine` and
:meth:`PLNet.region_inequalities`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from relulab.core.errors import InvalidInputError
from relulab.core.layers import Add, Affine, MaxUnits, Shape, numel


@dataclass
class Node:
    layer: Affine | MaxUnits | Add
    inputs: tuple[int, ...]
    name: str = ""


@dataclass
class Trace:
    """What one pass through the network records.

    ``pieces[l]`` (B, units, K): piece values of max layer ``l`` (invalid pieces ``-inf``);
    ``piece_tangents[l]`` (B, m, units, K): their derivatives along the ``m`` directions given;
    ``output`` (B, n_out) and ``output_tangent`` (B, m, n_out); ``pattern`` (B, units_total).
    """

    output: torch.Tensor | None
    output_tangent: torch.Tensor | None
    pattern: torch.Tensor
    pieces: list[torch.Tensor]
    piece_tangents: list[torch.Tensor | None]


class PLNet:
    """A piecewise-linear network: a DAG of affine maps, max-unit layers and additions.

    Node 0 is the input; the last node is the output. Build one with :meth:`from_torch`.
    Inputs may be given batched ``(B, *input_shape)``, flattened ``(B, d)`` or as one sample
    ``input_shape`` or ``(d,)``. Geometry runs in float64 by default.
    """

    def __init__(self, nodes: list[Node], input_shape: Shape, dtype=torch.float64, device=None):
        self.nodes = list(nodes)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._index()

    def _index(self) -> None:
        self.max_layers = [i for i, n in enumerate(self.nodes) if isinstance(n.layer, MaxUnits)]
        sizes = [self.nodes[i].layer.units for i in self.max_layers]
        self.unit_offsets = [0]
        for s in sizes:
            self.unit_offsets.append(self.unit_offsets[-1] + s)
        last_use = {}
        for i, n in enumerate(self.nodes):
            for j in n.inputs:
                last_use[j] = i
        self._last_use = last_use

    # ------------------------------------------------------------------ structure
    @classmethod
    def from_torch(cls, module, input_shape, dtype=torch.float64, device=None, verify: bool = True) -> "PLNet":
        """Convert a stock ``nn.Module`` exactly and check the result against the module on probe inputs
        (see :func:`relulab.core.convert.from_torch`)."""
        from relulab.core.convert import from_torch

        return from_torch(module, input_shape, dtype=dtype, device=device, verify=verify)

    def to_torch(self):
        """An ``nn.Module`` (a ``torch.fx.GraphModule`` of stock layers) computing the same function."""
        from relulab.core.convert import to_torch

        return to_torch(self)

    @property
    def input_dim(self) -> int:
        return numel(self.input_shape)

    @property
    def output_shape(self) -> Shape:
        return self.nodes[-1].layer.out_shape if len(self.nodes) > 1 else self.input_shape

    @property
    def output_dim(self) -> int:
        return numel(self.output_shape)

    @property
    def n_units(self) -> int:
        """Total number of max units (the length of an activation pattern)."""
        return self.unit_offsets[-1]

    @property
    def max_units(self) -> list[MaxUnits]:
        return [self.nodes[i].layer for i in self.max_layers]

    def layer_slice(self, l: int) -> slice:
        """Positions of max layer ``l``'s units inside a pattern."""
        return slice(self.unit_offsets[l], self.unit_offsets[l + 1])

    def activations(self) -> list[str]:
        return sorted({m.kind for m in self.max_units})

    def n_parameters(self) -> int:
        """Number of trainable parameters of the equivalent torch module (BatchNorm folded)."""
        return sum(p.numel() for p in self.to_torch().parameters())

    def to(self, device=None, dtype=None) -> "PLNet":
        """Move (in place) to a device and/or floating dtype; returns self.

        ``net.to("cuda")``, ``net.to(dtype=torch.float32)`` and ``net.to(torch.float32)`` all work.
        """
        if isinstance(device, torch.dtype):
            device, dtype = None, device if dtype is None else dtype
        if dtype is not None and not dtype.is_floating_point:
            raise InvalidInputError(f"dtype must be a floating dtype, got {dtype}")
        for n in self.nodes[1:]:  # node 0 is the input
            n.layer.to(device=device, dtype=dtype)
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        return self

    def describe(self) -> dict:
        """Layers, units, parameters and activations, as plain data."""
        layers = []
        for i, n in enumerate(self.nodes[1:], start=1):
            d = {"index": i, "name": n.name, "kind": n.layer.kind, "inputs": list(n.inputs),
                 "in_shape": list(n.layer.in_shape), "out_shape": list(n.layer.out_shape)}
            if isinstance(n.layer, MaxUnits):
                d["units"] = n.layer.units
                d["pieces"] = int(n.layer.valid.sum(1).max())
            layers.append(d)
        return {"input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "layers": layers, "max_units": self.n_units, "max_layers": len(self.max_layers),
                "parameters": self.n_parameters(), "activations": self.activations(),
                "residual": any(isinstance(n.layer, Add) for n in self.nodes)}

    def __repr__(self) -> str:
        body = "\n".join(f"  ({i}) {n.name or '-'}: {n.layer!r}" for i, n in enumerate(self.nodes[1:], start=1))
        return f"PLNet(input_shape={self.input_shape}, units={self.n_units}\n{body}\n)"

    # ------------------------------------------------------------------ inputs
    def _flat(self, x, check: bool = True) -> tuple[torch.Tensor, bool]:
        """Flatten an input to (B, d); also say whether it came as a single sample."""
        x = torch.as_tensor(x)
        if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
            raise InvalidInputError(f"input must be a real tensor, got dtype {x.dtype}")
        x = x.to(device=self.device, dtype=self.dtype)
        if check and not bool(torch.isfinite(x).all()):
            raise InvalidInputError(f"input contains NaN or infinite values (or values beyond the range of {self.dtype})")
        d, shp = self.input_dim, self.input_shape
        if tuple(x.shape[1:]) == shp:
            return x.reshape(x.shape[0], d), False
        if tuple(x.shape) == shp:
            return x.reshape(1, d), True
        if x.dim() == 2 and x.shape[1] == d:
            return x, False
        if x.dim() == 1 and x.shape[0] == d:
            return x.reshape(1, d), True  # one flattened sample
        raise InvalidInputError(
            f"input of shape {tuple(x.shape)} does not fit the network's input shape {shp}: "
            f"give (batch, {', '.join(map(str, shp))}), (batch, {d}) or one sample {shp} or ({d},)")

    def _directions(self, directions, B: int) -> torch.Tensor:
        """Directions as (1, m, d) when shared by the batch, else (B, m, d)."""
        v = torch.as_tensor(directions).to(device=self.device, dtype=self.dtype)
        d, k = self.input_dim, len(self.input_shape)
        if v.dim() >= k and v.shape[-1] != d and tuple(v.shape[v.dim() - k:]) == self.input_shape:
            v = v.reshape(*v.shape[: v.dim() - k], d)
        if v.dim() not in (1, 2, 3) or v.shape[-1] != d:
            raise InvalidInputError(f"directions of shape {tuple(v.shape)}: expected (m, {d}) or (batch, m, {d})")
        if v.dim() == 1:
            v = v[None]
        if v.dim() == 2:
            return v[None]
        if v.shape[0] != B:
            raise InvalidInputError(f"directions have batch {v.shape[0]}, inputs have {B}")
        return v

    def _pattern_arg(self, pattern, B: int | None = None, free_ok: bool = True) -> torch.Tensor:
        """A pattern argument as (B, n_units) long, checked against every unit's number of pieces."""
        try:
            pat = torch.as_tensor(pattern, device=self.device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise InvalidInputError(f"pattern must be an integer tensor: {e}") from None
        if pat.is_floating_point() or pat.is_complex() or pat.dtype == torch.bool:
            if pat.is_floating_point() and bool((pat == pat.round()).all()):
                pat = pat.long()
            else:
                raise InvalidInputError(f"pattern must hold integers (piece indices), got dtype {pat.dtype}")
        pat = pat.long()
        if pat.dim() == 1 and B is not None:
            pat = pat[None].expand(B, -1)
        elif pat.dim() == 1:
            pat = pat[None]
        if pat.dim() != 2 or pat.shape[1] != self.n_units or (B is not None and pat.shape[0] != B):
            want = f"({B}, {self.n_units}) or ({self.n_units},)" if B is not None else f"(P, {self.n_units}) or ({self.n_units},)"
            raise InvalidInputError(f"pattern of shape {tuple(pat.shape)}: expected {want}")
        if pat.numel() and self.n_units:
            npc = torch.cat([m.n_pieces for m in self.max_units]).to(pat.device)
            low = -1 if free_ok else 0
            bad = (pat < low) | (pat >= npc)
            if bool(bad.any()):
                r, u = (int(i) for i in bad.nonzero()[0])
                l = max(i for i in range(len(self.max_layers)) if self.unit_offsets[i] <= u)
                raise InvalidInputError(
                    f"pattern[{r}, {u}] = {int(pat[r, u])}: unit {u} (max layer {l}) has {int(npc[u])} pieces, "
                    f"so entries must lie in {'-1 (free), ' if free_ok else ''}0..{int(npc[u]) - 1}")
        return pat

    # ------------------------------------------------------------------ the one pass
    def trace(self, x, directions=None, pattern=None, upto: int | None = None, record: bool = True,
              check_finite: bool = False) -> Trace:
        """One batched pass recording every max layer's pieces.

        ``directions`` (m, d) or (B, m, d): also propagate the derivatives along these directions
        (forward mode; ``output_tangent[b] = A(x_b) @ directions[b].T`` on the region of x_b).
        ``pattern`` (B, units) or (units,): force these winners instead of the argmax (entries -1
        stay free), i.e. evaluate the affine continuation of a region's map at x.
        ``upto``: stop after max layer ``upto`` (its pieces are recorded; output is then None).
        Directions shared by the batch are carried unbatched until the first max layer (the leading
        affine layers then act on m vectors, not B * m).
        """
        z, _ = self._flat(x, check=check_finite)
        B = z.shape[0]
        T = None if directions is None else self._directions(directions, B)
        forced = None if pattern is None else self._pattern_arg(pattern, B)
        pieces, ptans = [], []

        def keep(l, layer, za, ta, p, w):
            pieces.append(p)
            if ta is None:
                ptans.append(None)
            else:
                pt = layer.piece_tangents(ta)
                ptans.append(pt.expand(B, *pt.shape[1:]).contiguous() if pt.shape[0] != B else pt)

        out, out_t, winners = self._walk(z, T, forced, upto, keep if record else None, record, check_finite)
        pat = torch.cat(winners, 1) if winners else torch.zeros(B, 0, dtype=torch.long, device=self.device)
        if out_t is not None and out_t.shape[0] != B:
            out_t = out_t.expand(B, *out_t.shape[1:]).contiguous()
        return Trace(out, out_t, pat, pieces, ptans)

    def _walk(self, z, T, forced, upto, visit, record: bool, check: bool = True):
        """The pass behind :meth:`trace` and :meth:`region_inequalities`.

        At max layer l calls ``visit(l, layer, z_in, t_in, pieces, winners)``: ``t_in`` is (1, m, n)
        while the directions are still shared by the batch; ``pieces`` is None when every winner is
        forced and nothing is recorded (no argmax is needed then). Returns
        ``(output, output_tangent, winners)``, output None when stopped by ``upto``.
        """
        vals: dict[int, torch.Tensor] = {0: z}
        tans: dict[int, torch.Tensor | None] = {0: T}
        winners = []
        keep_graph = record and torch.is_grad_enabled()
        need_argmax = record or forced is None or bool((forced < 0).any())
        finite = []  # one flag per max layer's input, read once at the end (no device sync per layer)
        l = -1
        for i, node in enumerate(self.nodes[1:], start=1):
            layer = node.layer
            a = node.inputs[0]
            if not isinstance(layer, MaxUnits):  # affine maps and additions
                v = layer.forward(*(vals[j] for j in node.inputs))
                t = None if T is None else layer.tangent(*(tans[j] for j in node.inputs))
            else:
                l += 1
                if check:
                    finite.append(torch.isfinite(vals[a]).all())
                f = None if forced is None else forced[:, self.layer_slice(l)]
                p = None
                if need_argmax:
                    with torch.set_grad_enabled(keep_graph):  # only the argmax is needed otherwise
                        p = layer.pieces(vals[a])
                    w = p.argmax(-1)
                    if f is not None:
                        w = torch.where(f >= 0, f, w)
                else:
                    w = f
                winners.append(w)
                if visit is not None:
                    visit(l, layer, vals[a], tans[a], p, w)
                if upto is not None and l >= upto:
                    self._check_finite(finite, i)
                    return None, None, winners
                v, idx, cf = layer.select(vals[a], w)
                t = None if T is None else layer.selected_tangent(tans[a], idx, cf)
            vals[i], tans[i] = v, t
            for j in node.inputs:
                if self._last_use.get(j) == i:
                    vals.pop(j, None)
                    tans.pop(j, None)
        last = len(self.nodes) - 1
        if check:
            finite.append(torch.isfinite(vals[last]).all())
            if tans[last] is not None:
                finite.append(torch.isfinite(tans[last]).all())
        self._check_finite(finite, last)
        return vals[last], tans[last], winners

    def _check_finite(self, flags: list, upto_node: int) -> None:
        """Overflow anywhere inside reaches a max layer's input or the output: refuse instead of
        returning patterns or values computed from inf or NaN."""
        if flags and not bool(torch.stack(flags).all()):
            raise InvalidInputError(
                f"non-finite values (inf or NaN) arise inside the network (by node {upto_node}): the inputs or "
                f"weights overflow {self.dtype}; scale the inputs down")

    def magnitude(self, x) -> torch.Tensor:
        """Entrywise bounds ``M`` (B, n_out) with ``|net(y)| <= M`` for every ``y`` with ``|y| <= |x|``
        (the same bound holds for every value computed inside the network): each layer's magnitude
        rule (``|L| m + |b|`` for affine maps, the largest piece bound for max units, sums for
        additions). It sets the scale of rounding errors when comparing outputs."""
        z, _ = self._flat(x)
        vals = {0: z.abs()}
        for i, node in enumerate(self.nodes[1:], start=1):
            vals[i] = node.layer.magnitude(*(vals[j] for j in node.inputs))
            for j in node.inputs:
                if self._last_use.get(j) == i:
                    vals.pop(j, None)
        return vals[len(self.nodes) - 1]

    # ------------------------------------------------------------------ public primitives
    def __call__(self, x) -> torch.Tensor:
        """The network's output, (B, *output_shape) (or output_shape for one sample)."""
        z, single = self._flat(x)
        y = self.trace(z, record=False, check_finite=True).output
        y = y.reshape(z.shape[0], *self.output_shape)
        return y[0] if single else y

    forward = __call__

    def pattern(self, x) -> torch.Tensor:
        """Activation pattern (B, n_units), long: the winning piece of every max unit.

        Ties go to the lowest piece index (so ReLU at 0 counts as inactive, as autograd does).
        For two-piece units (ReLU, leaky ReLU, abs), 1 means the ``z > 0`` side.
        """
        z, single = self._flat(x)
        p = self.trace(z, record=False, check_finite=True).pattern
        return p[0] if single else p

    def local_affine(self, x, pattern=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine map of the region of x: ``A`` (B, n_out, d), ``c`` (B, n_out) with
        ``net(x) = A x + c``; with ``pattern``, the map of that region (evaluated anywhere).

        With the winners fixed the network is affine, so ``A`` is its Jacobian: computed in forward
        mode (d tangents) when ``d <= n_out``, else in reverse mode (n_out cotangents, one batched
        backward pass), whichever carries fewer vectors per sample.
        """
        z, single = self._flat(x)
        d, n_out, B = self.input_dim, self.output_dim, z.shape[0]
        if n_out < d and B > 0 and not torch.is_inference_mode_enabled():
            with torch.enable_grad():
                zz = z.detach().requires_grad_(True)
                y = self.trace(zz, pattern=pattern, record=False, check_finite=True).output
                if y.requires_grad:
                    cot = torch.eye(n_out, dtype=y.dtype, device=y.device)[:, None, :].expand(n_out, B, n_out)
                    (g,) = torch.autograd.grad(y, zz, grad_outputs=cot, is_grads_batched=True)
                else:  # no path from the input to the output
                    g = z.new_zeros(n_out, B, d)
            A, y = g.transpose(0, 1).contiguous(), y.detach()
        else:
            eye = torch.eye(d, dtype=self.dtype, device=self.device)
            tr = self.trace(z, directions=eye, pattern=pattern, record=False, check_finite=True)
            A, y = tr.output_tangent.transpose(1, 2).contiguous(), tr.output
        c = y - (A @ z[:, :, None])[..., 0]
        if not (bool(torch.isfinite(A).all()) and bool(torch.isfinite(c).all())):
            raise InvalidInputError(f"the local affine map overflows {self.dtype} (non-finite Jacobian or offset); "
                                    "the weights or inputs are too large")
        return (A[0], c[0]) if single else (A, c)

    def region_inequalities(self, pattern) -> tuple[torch.Tensor, torch.Tensor]:
        """Half-spaces ``G x + h >= 0`` whose intersection is the (closed) activation region.

        ``pattern`` (units,) or (P, units). Returns ``G`` (P, R, d) and ``h`` (P, R) (no leading P
        for one pattern). Row order: units in pattern order; for each unit, "winner >= piece k" for
        its other valid pieces k in increasing order (``inequality_units()`` names them). With the
        pattern's winners forced, every piece is affine in x: row = (piece_w - piece_k)(x), read off
        one pass at x = 0 with the identity as directions.
        """
        single = torch.as_tensor(pattern).dim() == 1
        pat = self._pattern_arg(pattern, free_ok=False)
        P, d = pat.shape[0], self.input_dim
        L = len(self.max_layers)
        R = sum(int((m.n_pieces - 1).sum()) for m in self.max_units)
        if L == 0 or R == 0:
            G = torch.zeros(P, R, d, dtype=self.dtype, device=self.device)
            h = torch.zeros(P, R, dtype=self.dtype, device=self.device)
            return (G[0], h[0]) if single else (G, h)
        zero = torch.zeros(P, d, dtype=self.dtype, device=self.device)
        eye = torch.eye(d, dtype=self.dtype, device=self.device)
        G = torch.empty(P, R, d, dtype=self.dtype, device=self.device)
        h = torch.empty(P, R, dtype=self.dtype, device=self.device)
        start = [0]

        def rows(l, layer, za, ta, p, w):
            # za (P, n): the layer's input at x = 0; ta (1 or P, d, n): its Jacobian (transposed)
            slot, unit = layer.inequality_rows()
            Rl = unit.numel()
            if Rl == 0:
                return
            win = w[:, unit]  # (P, R_l): the winner of each row's unit
            other = slot[None] + (slot[None] >= win).long()  # skip the winner among the pieces
            K = layer.index.shape[1]
            if layer.elementwise_units and K == 2:
                # unit j has one row, (coef_w - coef_o) * z_j: no gathers, shared tangents broadcast
                cf = layer.coef.expand(P, -1, -1)
                diff = cf.gather(2, win[..., None])[..., 0] - cf.gather(2, other[..., None])[..., 0]
                hl, Gl = za * diff, ta * diff[:, None, :]
            else:
                ix = layer.index[unit].expand(P, -1, -1)
                cf = layer.coef[unit].expand(P, -1, -1)
                iw, io = ix.gather(2, win[..., None])[..., 0], ix.gather(2, other[..., None])[..., 0]
                cw, co = cf.gather(2, win[..., None])[..., 0], cf.gather(2, other[..., None])[..., 0]
                hl = za.gather(1, iw) * cw - za.gather(1, io) * co
                tb = ta.expand(P, -1, -1)
                Gl = (tb.gather(2, iw[:, None, :].expand(P, d, Rl)) * cw[:, None, :]
                      - tb.gather(2, io[:, None, :].expand(P, d, Rl)) * co[:, None, :])
            s0 = start[0]
            G[:, s0:s0 + Rl].copy_(Gl.transpose(1, 2))
            h[:, s0:s0 + Rl] = hl
            start[0] = s0 + Rl

        self._walk(zero, eye[None], pat, L - 1, rows, record=False)
        if not (bool(torch.isfinite(G).all()) and bool(torch.isfinite(h).all())):
            raise InvalidInputError(f"the region inequalities overflow {self.dtype}: the weights are too large")
        return (G[0], h[0]) if single else (G, h)

    @staticmethod
    def _slots(layer: MaxUnits) -> tuple[torch.Tensor, torch.Tensor]:
        """For each inequality row of a layer: its slot (0..n_pieces-2) and unit."""
        return layer.inequality_rows()

    def inequality_units(self) -> torch.Tensor:
        """For each row of :meth:`region_inequalities`, the unit (position in the pattern) it bounds."""
        out = [self._slots(m)[1] + self.unit_offsets[l] for l, m in enumerate(self.max_units)]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)
