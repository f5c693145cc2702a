"""Exact partition of segments and polylines by the activation regions of a ``PLNet``.

Along the segment ``x(t) = a + t (b - a)``, ``t`` in [0, 1], every pre-activation of the network is
piecewise affine in ``t`` (exact line walks as in Gamba et al., "Are All Linear Regions Created
Equal?", AISTATS 2022, arXiv 2202.11749; Hanin and Rolnick, "Complexity of Linear Regions in Deep
Networks", ICML 2019). The walk refines
intervals layer by layer: on an interval where the winners of max layers ``< l`` are fixed, every
piece of max layer ``l`` is an affine function ``p_k(t) = p_k(t0) + (t - t0) p_k'`` of ``t``, and the
unit's winner changes exactly at the breakpoints of the upper envelope ``max_k p_k(t)``. For two-piece
units (ReLU, leaky ReLU, abs) that is the root of ``p_1 - p_0``; for K-piece units (maxout, max-pool)
the envelope is walked from ``t0`` in at most ``K - 1`` rounds ("kinetic" walk: from the current
winner ``w`` at time ``tc``, the next breakpoint is ``min_k`` of the crossing times of the pieces that
end above ``w``, and the steepest piece crossing there wins next). All intervals of all segments are
split at once, layer after layer.

The walk carries, for every interval, the affine continuation ``z(t) = z(0) + t z'`` of every live
node of the network (value at ``t = 0`` and derivative along ``b - a``), so each layer is evaluated
once per interval (not once per interval and earlier layer). Intervals are processed depth-first in
batches (``memory``/``batch_rows``), which bounds memory and yields the intervals in order along
each segment. Siblings (the intervals one split produced) differ only downstream of the units that
changed at their common ends; a max unit whose pieces are the same functions on a run of siblings
gets one envelope computation for the whole run ("jobs"), which makes max-pooling after ReLU cheap.

Tolerances (all scale-aware)
----------------------------
* ``rtol`` (values): alongside every intermediate value the walk carries a bound ``M`` on the
  magnitudes that entered its computation on the interval (``|a|, |b|`` at the input, ``|L| M + |b|``
  through affine layers, ``|coef| M`` through the winning piece of a max unit; kept in float64 so
  that it does not overflow before the values do), so rounding errors
  are ``O(eps M)``. Two pieces of a unit whose values at both interval ends differ by at most
  ``rtol * M`` (``M`` of the unit's pieces) are one function on the interval, and a crossing within
  that tolerance of an interval end is a crossing *at* the end (no sliver interval is created).
  Because ``M`` follows the winning pieces, tiny but genuine values (e.g. behind a leaky slope of
  1e-12) are still resolved, while exact cancellations (a segment inside a hyperplane) are ties.
* ``ttol`` (in ``t``, i.e. relative to the segment length): breakpoints closer than ``ttol`` to each
  other merge into one (segments through a vertex where several boundaries meet give coinciding
  breakpoints), breakpoints closer than ``ttol`` to an interval end merge into that end. Activation
  regions that meet the segment in an interval shorter than ``ttol`` are therefore not resolved.

Degenerate geometry
-------------------
If two pieces of a unit, one of them the winner, coincide over a whole interval, the walk asks whether
they are the same affine function of the *input* on the region (not only along the segment): pieces
that are structurally constant (e.g. several dead ReLUs feeding one max-pool window) or whose
gradients agree along two random directions are one piece, and the lowest index wins (the convention
of :meth:`PLNet.pattern`); no breakpoint arises. Otherwise the segment lies inside a boundary of the
activation region (e.g. inside a ReLU's hyperplane): ``on_degenerate="raise"`` (default) raises
:class:`~relulab.core.errors.DegenerateGeometryError`; ``on_degenerate="lowest"`` gives such an
interval the lowest-index piece, so each point gets the pattern :meth:`PLNet.pattern` assigns it in
exact arithmetic, and the result lists these ties in ``degenerate``.

Counts
------
``count`` counts *activation regions* met by the segment, i.e. maximal intervals of constant
activation pattern. ``linear_count`` counts the linear pieces of the *restriction* ``t -> f(x(t))``
(adjacent intervals merge when their output slopes ``df/dt`` agree); it is at most ``count`` and can
be smaller than the number of input-space linear regions met, since two regions with different affine
maps may agree along the line.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from relulab.core.budgets import check_budget
from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.core.layers import Add, ChannelScale, Conv, Dense, MaxUnits, Reshape
from relulab.progress import notify
from relulab.results import RegionResult

__all__ = ["on_line", "LinePartition", "LineBatch"]

_MAX_DENSE_PATTERNS = 2 * 10**8  # entries of a dense pattern matrix we agree to materialize
_AUTO_MAP_ENTRIES = 2 * 10**7  # count * out * d below which input-space maps are computed
_DEFAULT_MEMORY = 256 * 2**20  # bytes of working memory per batch of intervals
_MAG = torch.float64  # dtype of the magnitude bounds (float32 would overflow at 3e38)


# ============================================================================ pattern storage
def _dense_patterns(base: torch.Tensor, deltas: torch.Tensor, n: int) -> torch.Tensor:
    """Rows ``0..n-1`` of a pattern sequence stored as ``base`` (row 0) plus sparse changes.

    ``deltas`` (E, 3) long: (row, unit, new - old) for every entry that differs from the row before.
    """
    U = base.numel()
    if n * U > _MAX_DENSE_PATTERNS:
        raise InvalidInputError(
            f"the dense pattern matrix would have {n} x {U} entries; use pattern(i) for single rows "
            f"or the sparse pattern_deltas")
    D = torch.zeros(n, U, dtype=torch.long, device=base.device)
    if n:
        D[0] = base.long()
        if deltas.numel():
            D.index_put_((deltas[:, 0], deltas[:, 1]), deltas[:, 2], accumulate=True)
    return D.cumsum(0)


def _pattern_rows(base: torch.Tensor, deltas: torch.Tensor, i0: int, i1: int) -> torch.Tensor:
    """Rows ``i0..i1-1`` of a pattern sequence (dense for those rows only)."""
    D = torch.zeros(i1 - i0, base.numel(), dtype=torch.long, device=base.device)
    D[0] = _pattern_row(base, deltas, i0)
    if deltas.numel():
        sel = (deltas[:, 0] > i0) & (deltas[:, 0] < i1)
        D.index_put_((deltas[sel, 0] - i0, deltas[sel, 1]), deltas[sel, 2], accumulate=True)
    return D.cumsum(0)


def _pattern_row(base: torch.Tensor, deltas: torch.Tensor, i: int) -> torch.Tensor:
    p = base.long().clone()
    if deltas.numel():
        sel = deltas[:, 0] <= i
        p.index_add_(0, deltas[sel, 1], deltas[sel, 2])
    return p


# ============================================================================ results
@dataclass(kw_only=True)
class LinePartition(RegionResult):
    """Activation regions met by one segment (or one polyline), in order along it.

    The path is parametrized by ``t`` in [0, 1] (for a polyline: arc length over total length).

    * ``count``: activation regions met (maximal intervals of constant pattern); ``intervals``
      (count, 2) their ``[t_start, t_end]`` (for a closed path whose first and last intervals lie in
      one region, that region's interval wraps around: ``t_start > t_end``); ``breakpoints`` (sorted,
      in (0, 1)): where the pattern changes.
    * The restriction ``t -> f(x(t))`` is continuous and piecewise affine: ``knots`` (M + 1,) are the
      ends of its pieces (breakpoints plus polyline vertices), ``values`` (M + 1, out) its values
      there, ``slopes`` (M, out) its derivative ``df/dt`` on each piece, so
      ``f(x(t)) = values[i] + (t - knots[i]) * slopes[i]`` on piece ``i``; ``piece_region`` (M,)
      says which region each piece lies in. :meth:`values_at` evaluates it.
    * ``linear_count``: linear pieces of the restriction (adjacent pieces merge when their slopes
      agree to ``1e-9`` of the function's scale); ``linear_breakpoints`` where the slope changes.
    * ``curve_length``: exact Euclidean length of the image curve ``t -> f(x(t))``,
      ``sum_i |slopes[i]| (knots[i+1] - knots[i])``; ``length``: the input path's length;
      ``length_ratio = curve_length / length`` (length distortion).
    * ``patterns`` (count, n_units): the activation pattern of each region (stored sparsely as
      ``pattern_base`` plus ``pattern_deltas`` rows (region, unit, change); ``pattern(i)`` gives one).
    * ``A`` (count, out, d), ``c`` (count, out): the input-space affine map ``f(x) = A x + c`` of each
      region, computed when ``count * out * d`` is small (or when asked for), else None.
    * ``complete``: False when a budget stopped the walk (``stopped_by`` says which); the partition
      is then exact on ``[0, covered]`` and counts only that part. ``certified``: the pattern
      sequence was checked against, or taken from, the walk in exact rational arithmetic (see
      :func:`on_line`). ``seconds``: wall time.
    """

    breakpoints: torch.Tensor
    intervals: torch.Tensor
    knots: torch.Tensor
    values: torch.Tensor
    slopes: torch.Tensor
    piece_region: torch.Tensor
    linear_breakpoints: torch.Tensor
    curve_length: float
    length: float
    length_ratio: float
    covered: float
    domain: str = "segment"
    vertices: torch.Tensor | None = None
    n_units: int = 0
    pattern_base: torch.Tensor | None = None
    pattern_deltas: torch.Tensor | None = None
    A: torch.Tensor | None = None
    c: torch.Tensor | None = None
    degenerate: list = field(default_factory=list)
    counts_what: str = "activation regions met by the path (intervals of constant pattern)"

    _summary_fields = ("count", "linear_count", "curve_length", "length", "length_ratio", "complete",
                       "stopped_by", "certified", "covered", "domain", "breakpoints", "counts_what", "seconds")

    @property
    def patterns(self) -> torch.Tensor:
        return _dense_patterns(self.pattern_base, self.pattern_deltas, self.count)

    def pattern(self, i: int) -> torch.Tensor:
        """The activation pattern (n_units,) of region ``i``."""
        if not 0 <= i < self.count:
            raise InvalidInputError(f"region index {i} out of range [0, {self.count})")
        return _pattern_row(self.pattern_base, self.pattern_deltas, i)

    @property
    def out0(self) -> torch.Tensor:
        """Per piece, the value at ``t = 0`` of its affine function: ``f = out0 + t * slopes``."""
        return self.values[:-1] - self.knots[:-1, None] * self.slopes

    def values_at(self, t) -> torch.Tensor:
        """``f(x(t))`` from the piecewise affine restriction, for ``t`` in the covered range."""
        t = torch.as_tensor(t, dtype=self.knots.dtype, device=self.knots.device)
        i = torch.searchsorted(self.knots[1:-1].contiguous(), t.reshape(-1), right=True)
        v = self.values[i] + (t.reshape(-1) - self.knots[i])[:, None] * self.slopes[i]
        return v.reshape(*t.shape, -1)

    def to_dict(self, summary: bool = False) -> dict:
        d = super().to_dict(summary=summary)
        if not summary and self.count * self.n_units <= 10**6:
            from relulab.results import to_plain

            d["patterns"] = to_plain(self.patterns)
        return d

    def plot(self, ax=None, outputs=None, max_outputs: int = 10):
        """The output along ``t`` (one line per output coordinate) with pattern breakpoints marked
        (thin grey lines), slope changes (dots) and polyline vertices (dashed)."""
        import matplotlib

        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(8, 4))
        k = self.values.detach().cpu().numpy()
        x = self.knots.detach().cpu().numpy()
        cols = list(range(min(k.shape[1], max_outputs))) if outputs is None else list(outputs)
        for bp in self.breakpoints.detach().cpu().numpy():
            ax.axvline(bp, color="0.8", lw=0.5, zorder=0)
        if self.vertices is not None:
            for v in self.vertices.detach().cpu().numpy():
                ax.axvline(v, color="0.4", lw=0.8, ls="--", zorder=0)
        cmap = matplotlib.colormaps.get_cmap("tab10")
        for j, o in enumerate(cols):
            ax.plot(x, k[:, o], color=cmap(j % 10), lw=1.2, label=f"out {o}")
        lb = self.linear_breakpoints.detach().cpu()
        if lb.numel():
            vals = self.values_at(lb).detach().cpu().numpy()
            for j, o in enumerate(cols):
                ax.plot(lb.numpy(), vals[:, o], ".", color=cmap(j % 10), ms=3)
        ax.set_xlabel("t")
        ax.set_ylabel("network output")
        ax.set_title(f"{self.count} activation regions, {self.linear_count} linear pieces along the "
                     f"{self.domain}; length ratio {self.length_ratio:.3g}")
        if len(cols) > 1:
            ax.legend(fontsize=7, loc="best")
        ax.set_xlim(0, max(self.covered, 1e-12))
        return ax


@dataclass(kw_only=True)
class LineBatch(RegionResult):
    """Activation regions met by each of ``S`` segments, flattened: interval ``i`` lies on segment
    ``segment[i]`` (sorted by segment, then ``t``) and spans ``[t0[i], t1[i]]``; on it the output is
    ``values0[i] + (t - t0[i]) * slopes[i]``. ``batch[s]`` is segment ``s``'s :class:`LinePartition`.

    ``counts``, ``linear_counts``, ``curve_lengths``, ``lengths``, ``length_ratios``, ``covered``
    and ``segment_complete`` are per segment; ``count`` is the total number of intervals. Patterns
    are stored as ``pattern_base`` (pattern of interval 0) plus ``pattern_deltas`` rows (interval,
    unit, change) over the flattened sequence; ``pattern(i)``, ``patterns`` (dense, if it fits).
    """

    counts: torch.Tensor
    segment: torch.Tensor
    t0: torch.Tensor
    t1: torch.Tensor
    values0: torch.Tensor
    slopes: torch.Tensor
    linear_counts: torch.Tensor
    curve_lengths: torch.Tensor
    lengths: torch.Tensor
    length_ratios: torch.Tensor
    segment_complete: torch.Tensor
    covered: torch.Tensor
    n_units: int
    pattern_base: torch.Tensor
    pattern_deltas: torch.Tensor
    degenerate: list = field(default_factory=list)
    domain: str = "segments"
    counts_what: str = "activation regions met by each segment (intervals of constant pattern)"
    _net: object = field(default=None, repr=False)
    _input_maps: object = field(default=None, repr=False)
    _ab: tuple = field(default=(), repr=False)

    _summary_fields = ("count", "counts", "linear_counts", "curve_lengths", "lengths", "length_ratios",
                       "complete", "stopped_by", "certified", "segment_complete", "covered", "domain", "seconds")

    def to_dict(self, summary: bool = False) -> dict:
        d = super().to_dict(summary=summary)
        for k in ("_net", "_input_maps", "_ab"):
            d.pop(k, None)
        return d

    def __len__(self) -> int:
        return int(self.counts.numel())

    def __getitem__(self, s: int) -> LinePartition:
        S = len(self)
        if not -S <= s < S:
            raise IndexError(f"segment index {s} out of range for {S} segments")
        s = s % S
        return _partition(self, [s], closed=False, domain="segment", net=self._net,
                          input_maps=self._input_maps)

    def __iter__(self):
        return (self[s] for s in range(len(self)))

    @property
    def patterns(self) -> torch.Tensor:
        return _dense_patterns(self.pattern_base, self.pattern_deltas, self.count)

    def pattern(self, i: int) -> torch.Tensor:
        """The activation pattern (n_units,) of interval ``i`` (flattened index)."""
        if not 0 <= i < self.count:
            raise InvalidInputError(f"interval index {i} out of range [0, {self.count})")
        return _pattern_row(self.pattern_base, self.pattern_deltas, i)

    @property
    def breakpoints(self) -> list[torch.Tensor]:
        """Per segment, the sorted breakpoints in (0, 1)."""
        starts = torch.cumsum(self.counts, 0) - self.counts
        out = []
        for s in range(len(self)):
            lo, n = int(starts[s]), int(self.counts[s])
            out.append(self.t0[lo + 1:lo + n])
        return out


# ============================================================================ the walk
class _Stop(Exception):
    pass


class _Overflow(Exception):
    """A float64 value of the walk is not finite."""


def _change_operator(layer):
    """Which outputs of an affine layer can change when the given inputs change, (R, n_in) bool ->
    (R, n_out) bool; over-approximations are safe (they only cost sharing)."""
    if isinstance(layer, (Reshape, ChannelScale)):
        return lambda m: m
    if isinstance(layer, Dense):
        n_out = layer.weight.shape[0]
        return lambda m: m.any(1, keepdim=True).expand(m.shape[0], n_out)
    if isinstance(layer, Conv):
        import torch.nn.functional as F

        conf, dim = layer.conf, layer.dim
        k = tuple(layer.weight.shape[2:])
        pad = conf["padding"] if isinstance(conf["padding"], (tuple, list)) else (conf["padding"],) * dim
        c_out = layer.out_shape[0]

        def op(m):
            # an output sees a change if any input channel changed inside its (dilated) window
            R = m.shape[0]
            x = m.reshape(R, *layer.in_shape).any(1, keepdim=True).to(torch.float32)
            padding = [p for q in reversed(pad) for p in (q, q)]
            x = F.pad(x, padding)
            pool = F.max_pool1d if dim == 1 else F.max_pool2d
            y = pool(x, k, stride=conf["stride"], dilation=conf["dilation"]) > 0
            return y.expand(R, c_out, *y.shape[2:]).reshape(R, -1)
        return op
    return lambda m: layer.abs_linear(m.to(_MAG)) > 0


class _Walk:
    """Layer-by-layer refinement of intervals on ``S`` segments (see the module docstring)."""

    def __init__(self, net, rtol, ttol, on_degenerate, max_regions, time_limit, batch_rows, memory,
                 progress=None):
        self.net = net
        self.progress = progress
        self.rtol, self.ttol = float(rtol), float(ttol)
        self.on_degenerate = on_degenerate
        self.max_regions = max_regions
        self.deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
        self.nodes = net.nodes
        self.last = len(self.nodes) - 1
        last_use: dict[int, int] = {}
        for i, n in enumerate(self.nodes):
            for j in n.inputs:
                last_use[j] = i
        last_use[self.last] = len(self.nodes)  # the output stays
        self.last_use = last_use
        self.max_of_node = {node: l for l, node in enumerate(net.max_layers)}
        affine = [i for i, n in enumerate(self.nodes) if i > 0 and not isinstance(n.layer, (MaxUnits, Add))]
        self.change_op = {i: _change_operator(self.nodes[i].layer) for i in affine}
        # per max layer: indices/coefs with invalid pieces replaced by piece 0 (an identical copy
        # never wins: ties go to the lowest index and a copy never ends strictly above its original)
        self.fixed = []
        kmax = 1
        for layer in net.max_units:
            first_i = layer.index[:, :1].expand_as(layer.index)
            first_c = layer.coef[:, :1].expand_as(layer.coef)
            idx = torch.where(layer.valid, layer.index, first_i).contiguous()
            cf = torch.where(layer.valid, layer.coef, first_c).contiguous()
            U, K = idx.shape
            n_in = int(math.prod(layer.in_shape))
            elementwise = bool(K == 2 and U == n_in and torch.equal(idx[:, 0], idx[:, 1])
                               and torch.equal(idx[:, 0], torch.arange(U, device=idx.device)))
            self.fixed.append({"idx": idx, "cf": cf, "valid": layer.valid, "const": cf == 0,
                               "unit_coef": bool((cf == 1).all()), "elementwise": elementwise,
                               "csum": cf.abs().sum(1), "cabs32": cf.abs().to(_MAG),
                               "all_valid": bool(layer.valid.all())})
            kmax = max(kmax, K)
        self.pdtype = torch.int8 if kmax <= 127 else (torch.int16 if kmax <= 32767 else torch.int32)
        self.tail = self._affine_tail()
        # rows per batch from a memory estimate: live states (value, derivative, flag) plus the
        # largest (units x pieces) work arrays of a max layer
        width = max(int(math.prod(getattr(n.layer, "out_shape", net.input_shape))) for n in self.nodes[1:]) \
            if len(self.nodes) > 1 else net.input_dim
        width = max(width, net.input_dim)
        uk = max((m.index.numel() for m in net.max_units), default=1)
        per_row = 8 * (6 * width + 14 * uk) + net.n_units + 64
        self.rows = int(batch_rows) if batch_rows else max(1, int(memory) // per_row)
        self.leaves = []  # (segment, t0, t1, output at t0, output slope) chunks, in global order
        self.n_leaves = 0
        self.last_pattern = None
        self.base = None
        self.deltas = []
        self.stopped = False
        self.stopped_by = None
        self.degenerate = []
        self.n_degenerate = 0
        g = torch.Generator().manual_seed(20240607)
        self.probe = torch.randn(2, net.input_dim, generator=g, dtype=torch.float64).to(
            device=net.device, dtype=net.dtype)
        self.probe = self.probe / self.probe.norm(dim=1, keepdim=True)

    # ------------------------------------------------------------------ driver
    def run(self, a: torch.Tensor, b: torch.Tensor):
        self.a, self.D = a, b - a
        S = a.shape[0]
        dev, dt = a.device, a.dtype
        for s0 in range(0, S, self.rows):
            s1 = min(S, s0 + self.rows)
            seg = torch.arange(s0, s1, device=dev)
            R = s1 - s0
            state = {
                "seg": seg,
                "t0": torch.zeros(R, dtype=dt, device=dev),
                "t1": torch.ones(R, dtype=dt, device=dev),
                "pat": torch.full((R, self.net.n_units), -1, dtype=self.pdtype, device=dev),
                # per node: value at t = 0, derivative along t, constant flags, magnitude bound
                "vals": {0: (a[s0:s1], self.D[s0:s1], None,
                             torch.maximum(a[s0:s1].abs(), b[s0:s1].abs()).to(_MAG))},
                # rows that start a group (children of one interval); per node computed since the last
                # split, where it may differ from the previous row of the same group
                "gstart": torch.ones(R, dtype=torch.bool, device=dev),
                "chg": {},
            }
            try:
                self._descend(state, 1)
            except _Stop:
                self.stopped = True
                break
        return self

    def _report(self):
        """Tell the progress callback how many regions are found and how far along the segments."""
        if self.progress is not None and self.leaves:
            seg, _, t1 = self.leaves[-1][:3]
            S = max(1, self.a.shape[0])
            notify(self.progress, self.n_leaves, None, regions=self.n_leaves,
                   covered=round((float(seg[-1]) + float(t1[-1])) / S, 4))

    def _check_budget(self):
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.stopped_by = "time_limit"
            raise _Stop

    def _descend(self, st, start: int):
        """Run nodes ``start..`` on a batch of intervals; split at max layers and recurse."""
        vals, chg = st["vals"], st["chg"]
        for i in range(start, len(self.nodes)):
            node = self.nodes[i]
            layer = node.layer
            if isinstance(layer, MaxUnits):
                self._check_budget()
                self._max_layer(st, i)
                return
            a_id = node.inputs[0]
            if isinstance(layer, Add):
                b_id = node.inputs[1]
                Va, Ta, Za, Na = vals[a_id]
                Vb, Tb, Zb, Nb = vals[b_id]
                Z = None if Za is None or Zb is None else Za & Zb
                vals[i] = (Va + Vb, Ta + Tb, Z, Na + Nb)
                if a_id in chg or b_id in chg:
                    chg[i] = chg[a_id] | chg[b_id] if (a_id in chg and b_id in chg) else chg.get(a_id, chg.get(b_id))
            else:
                V, T, Z, N = vals[a_id]
                R = V.shape[0]
                Y = layer.linear(torch.cat([V, T], 0))
                Vn, Tn = Y[:R], Y[R:]
                # |L| N + |b| bounds the magnitudes summed into the values (their rounding scale)
                Nn = layer.magnitude(N)
                if layer.bias is not None:
                    Vn = Vn + layer.bias
                Zn = Z if isinstance(layer, (Reshape, ChannelScale)) else None
                vals[i] = (Vn, Tn, Zn, Nn)
                if a_id in chg:
                    chg[i] = self.change_op[i](chg[a_id])
            self._release(vals, i)
        self._emit(st)

    def _release(self, vals, i):
        for j in self.nodes[i].inputs:
            if self.last_use.get(j) == i:
                vals.pop(j, None)

    # ------------------------------------------------------------------ one max layer
    def _max_layer(self, st, i: int):
        """Split every interval of the batch where a unit of this max layer changes its winner.

        Work is organized in *jobs* (unit, run of consecutive intervals of one group on which the
        unit's pieces are one set of affine functions): siblings produced by the last split differ
        only downstream of the units that changed there, so most units share one envelope
        computation over many siblings. Without such sharing, every (interval, unit) is a job."""
        l = self.max_of_node[i]
        node = self.nodes[i]
        inp = node.inputs[0]
        info = self.fixed[l]
        idx, cf = info["idx"], info["cf"]
        U, K = idx.shape
        V, T, Z, N = st["vals"][inp]
        if not bool(torch.isfinite(V).all() & torch.isfinite(T).all()):
            raise _Overflow
        t0, t1 = st["t0"], st["t1"]
        C = V.shape[0]
        dev = V.device
        ttol = self.ttol
        # ---- jobs
        shared = None
        if K > 1 and C > 1:
            chg = st["chg"].get(inp)
            if chg is None:
                ch_u = st["gstart"][:, None].expand(C, U)
            else:
                if not info["elementwise"]:
                    chg = chg.index_select(1, idx.reshape(-1)).view(C, U, K).any(-1)
                ch_u = chg | st["gstart"][:, None]
            if int(ch_u.sum()) < 0.3 * C * U:
                shared = ch_u
        if shared is not None:
            jr, ju = shared.nonzero().unbind(1)
            n = jr.numel()
            perm = torch.argsort(ju, stable=True)
            jrp, jup = jr[perm], ju[perm]
            cep = torch.full_like(jrp, C - 1)
            # a run ends before the unit's next run; every group's first row starts a run of every unit
            cep[:-1] = torch.where(jup[1:] == jup[:-1], jrp[1:] - 1, C - 1)
            ce = torch.empty_like(cep)
            ce[perm] = cep
            J0 = torch.full((C, U), -1, dtype=torch.long, device=dev)
            J0[jr, ju] = torch.arange(n, device=dev)
            jobid = J0.cummax(0).values
            n_in = V.shape[1]
            del J0, perm, jrp, jup, cep
            ta, tb = t0[jr], t1[ce]

            jflat = jr * U + ju

            def rows_(X):  # (C, U) -> per job
                return torch.take(X, jflat)

            def units_(x):  # (U, ...) -> per job
                return x[ju]
        else:
            n = C * U
            jr = ju = ce = jobid = None
            ta = t0[:, None].expand(C, U).reshape(-1)
            tb = t1[:, None].expand(C, U).reshape(-1)

            def rows_(X):
                return X.reshape(-1)

            def units_(x):
                return x[None].expand(C, *x.shape).reshape(n, *x.shape[1:])
        # ---- the envelope of every job
        sus = None
        if K == 1:
            W = torch.zeros(n, 1, dtype=torch.long, device=dev)
            tau = None
        elif K == 2:
            if info["elementwise"]:
                Vj, Tj = rows_(V), rows_(T)
                dc = units_(cf[:, 1] - cf[:, 0])
                d0, d1 = (Vj + ta * Tj) * dc, (Vj + tb * Tj) * dc
                vtol = self.rtol * rows_(N) * units_(info["csum"])
                del Vj, Tj
            else:
                E0, E1, vtol = self._job_pieces(info, V, T, N, jr, ju, ta, tb)
                d0, d1 = E0[:, 1] - E0[:, 0], E1[:, 1] - E1[:, 0]
                vtol = vtol[:, 0]
                del E0, E1
            # winner at t0+: the larger piece, ties (within vtol) to the steeper one, then to piece 0
            w0 = (d0 > vtol) | ((d0 >= -vtol) & (d1 > vtol))
            cross = torch.where(w0, d1 < -vtol, d1 > vtol)
            tau = torch.where(cross, ta + (tb - ta) * (d0 / (d0 - d1)), math.inf)[:, None]
            W = torch.stack([w0, w0 ^ cross], 1).long()
            # pieces equal at both ends coincide along the whole job: one function of x, or degenerate
            tie = (d0.abs() <= vtol) & (d1.abs() <= vtol)
            del d0, d1, vtol, cross
            if not info["all_valid"]:
                tie &= units_(info["valid"][:, 1])  # one valid piece: nothing to tie with
            if bool(tie.any()):
                const = units_(info["const"])
                if Z is not None:
                    const = const | (rows_(Z)[:, None] if info["elementwise"] else
                                     (Z.index_select(1, idx.reshape(-1)).reshape(-1, 2) if shared is None
                                      else torch.take(Z, jr[:, None] * n_in + idx[ju])))
                tie &= ~(const[:, 0] & const[:, 1])
                if bool(tie.any()):
                    jt = tie.nonzero()[:, 0]
                    sus = (jt, 1 - W[jt, 0], W[jt, 0])
            del tie
        else:
            E0, E1, vtol = self._job_pieces(info, V, T, N, jr, ju, ta, tb)
            valid = units_(info["valid"])
            const = units_(info["const"])
            if Z is not None:
                const = const | (Z.index_select(1, idx.reshape(-1)).reshape(n, K) if shared is None
                                 else torch.take(Z, jr[:, None] * n_in + idx[ju]))
            W, tau, sus = self._walk_k(E0, E1, ta, tb, vtol, valid, const)
            del E0, E1, vtol, valid, const
        if sus is not None:
            jt, partner, winner = sus
            r_ = jt // U if shared is None else jr[jt]
            u_ = jt % U if shared is None else ju[jt]
            self._check_ties(st, l, r_, u_, partner, winner, ta[jt], tb[jt])
        # ---- breakpoints: snap to job ends, to row boundaries inside runs, and cluster per row
        J = 0 if tau is None else tau.shape[1]
        snapped = None
        ev_rows = torch.zeros(0, dtype=torch.long, device=dev)
        times = torch.zeros(0, dtype=V.dtype, device=dev)
        if J:
            lo_, hi_ = (ta + ttol)[:, None], (tb - ttol)[:, None]
            interior = (tau > lo_) & (tau < hi_)
            snapped = torch.full_like(tau, math.inf).masked_fill_(tau <= lo_, -math.inf)
            ev = interior.nonzero()
            times = tau[interior]
            del interior, lo_, hi_
            if shared is None:
                ev_rows = ev[:, 0] // U
            else:
                lo, hi = jr[ev[:, 0]], ce[ev[:, 0]]
                while True:  # the row of the run holding each breakpoint (binary search)
                    act = lo < hi
                    if not bool(act.any()):
                        break
                    mid = (lo + hi + 1) // 2
                    go = t0[mid] <= times
                    lo = torch.where(act & go, mid, lo)
                    hi = torch.where(act & ~go, mid - 1, hi)
                ev_rows = lo
                at_l = times - t0[ev_rows] <= ttol
                at_r = ~at_l & (t1[ev_rows] - times <= ttol)
                edge = at_l | at_r
                if bool(edge.any()):  # on a boundary between rows of the run: no new split
                    e = ev[edge]
                    snapped[e[:, 0], e[:, 1]] = torch.where(at_l[edge], t0[ev_rows[edge]], t1[ev_rows[edge]])
                    keep = ~edge
                    ev, times, ev_rows = ev[keep], times[keep], ev_rows[keep]
            if times.numel():
                order = torch.argsort(times, stable=True)
                order = order[torch.argsort(ev_rows[order], stable=True)]
                ev, times, ev_rows = ev[order], times[order], ev_rows[order]
                new = torch.ones_like(ev_rows, dtype=torch.bool)
                new[1:] = (ev_rows[1:] != ev_rows[:-1]) | (times[1:] - times[:-1] > ttol)
                cid = torch.cumsum(new.long(), 0) - 1
                rep = times[new]
                snapped[ev[:, 0], ev[:, 1]] = rep[cid]
                ev_all, cid_all = ev, cid
                times, ev_rows = rep, ev_rows[new]
        ncl_row = torch.bincount(ev_rows, minlength=C)
        nchild = ncl_row + 1
        cstart = torch.cumsum(nchild, 0) - nchild
        D = int(nchild.sum())
        parent = torch.repeat_interleave(torch.arange(C, device=dev), nchild)
        left = t0[parent].clone()
        right = t1[parent].clone()
        if times.numel():
            first_cl = torch.cumsum(ncl_row, 0) - ncl_row
            rank = torch.arange(times.numel(), device=dev) - first_cl[ev_rows]
            cidx = cstart[ev_rows] + rank + 1
            left[cidx] = times
            right[cidx - 1] = times
        # ---- children in slices of at most `rows`; depth-first keeps leaves in global order
        live = st["vals"]
        Vp, Tp, Zp, Np = live[inp]
        units = torch.arange(U, device=dev)
        sl = self.net.layer_slice(l)
        Wc = W.contiguous()
        if J:
            # most jobs have no breakpoint inside: their winner is the one after the breakpoints at
            # their start (-inf), the same for every child
            n_before = (snapped == -math.inf).sum(1)
            w_fix = Wc.gather(1, n_before[:, None])[:, 0]
            inside = (torch.isfinite(snapped)).any(1)
            del n_before
        else:
            w_fix = Wc[:, 0]
        if self.tail is not None and i == self.tail[0] and info["elementwise"] and K == 2:
            cl_child = cidx if times.numel() else None
            events = (ev_all, cid_all) if times.numel() else None
            self._sparse_leaves(st, i, l, info, V, T, Wc, w_fix, inside if J else None, snapped, shared,
                                ju, jobid, parent, left, right, cstart, events, cl_child)
            return
        cab = info["cabs32"]
        for c0_ in range(0, D, self.rows):
            if self.stopped:
                raise _Stop
            c1_ = min(D, c0_ + self.rows)
            par = parent[c0_:c1_]
            lft = left[c0_:c1_]
            jid = par[:, None] * U + units if shared is None else jobid.index_select(0, par)
            # each child's winner: the job's winner after the breakpoints at or before its start
            wc = torch.take(w_fix, jid)
            if J:
                hit = torch.take(inside, jid).nonzero()
                if hit.numel():
                    hj = jid[hit[:, 0], hit[:, 1]]
                    step = (snapped[hj] <= lft[hit[:, 0]][:, None]).sum(1)
                    wc[hit[:, 0], hit[:, 1]] = Wc[hj, step]
                del hit
            del jid
            if info["elementwise"]:
                Vs, Ts, Ns = Vp.index_select(0, par), Tp.index_select(0, par), Np.index_select(0, par)
                on = wc.bool()
                wcf = torch.where(on, cf[:, 1], cf[:, 0])
                Vc, Tc = Vs * wcf, Ts * wcf
                Nc = Ns * torch.where(on, cab[:, 1], cab[:, 0])
                Zc = wcf == 0
                if Zp is not None:
                    Zc |= Zp.index_select(0, par)
                del Vs, Ts, Ns
            else:
                flat = units * K + wc
                widx = torch.take(idx, flat)
                src = par[:, None] * Vp.shape[1] + widx  # read only the winning inputs
                Vc, Tc, Nc = torch.take(Vp, src), torch.take(Tp, src), torch.take(Np, src)
                wcf = torch.take(cf, flat)
                if not info["unit_coef"]:
                    Vc, Tc, Nc = Vc * wcf, Tc * wcf, Nc * torch.take(cab, flat)
                Zc = wcf == 0
                if Zp is not None:
                    Zc |= torch.take(Zp, src)
                del flat, widx, src
            pat = st["pat"].index_select(0, par)
            pat[:, sl] = wc.to(self.pdtype)
            vals = {}
            for j, (v, tt, z, nn_) in live.items():
                if self.last_use.get(j, -1) > i:
                    vals[j] = tuple(None if x is None else x.index_select(0, par) for x in (v, tt, z, nn_))
            vals[i] = (Vc, Tc, Zc, Nc)
            gstart = torch.ones(c1_ - c0_, dtype=torch.bool, device=dev)
            gstart[1:] = par[1:] != par[:-1]
            ch = torch.ones_like(wc, dtype=torch.bool)
            ch[1:] = wc[1:] != wc[:-1]
            child = {"seg": st["seg"][par], "t0": lft, "t1": right[c0_:c1_], "pat": pat, "vals": vals,
                     "gstart": gstart, "chg": {i: ch | gstart[:, None]}}
            del Vc, Tc, Zc, Nc, pat, wc, wcf, ch
            self._descend(child, i + 1)

    def _affine_tail(self):
        """For a chain whose last max layer is followed by dense (and reshape) layers only: (node of
        that max layer, M (out, U), c (out,)) with ``output = M z + c`` for the max layer's output
        ``z``; else None. With it, the leaves of the last max layer are assembled from the sparse
        winner changes (cost ~ regions x outputs, not regions x units)."""
        nodes = self.nodes
        if not self.net.max_layers or not all(nd.inputs == (j - 1,) for j, nd in enumerate(nodes) if j > 0):
            return None
        i = self.net.max_layers[-1]
        layers = [nd.layer for nd in nodes[i + 1:]]
        if not all(isinstance(lay, (Dense, Reshape)) for lay in layers):
            return None
        U = nodes[i].layer.units
        dense = [lay for lay in layers if isinstance(lay, Dense)]
        out = self.net.output_dim
        if out * U > 2 * 10**7:
            return None
        dev, dt = self.net.device, self.net.dtype
        M = torch.eye(U, dtype=dt, device=dev) if not dense else dense[-1].weight
        for lay in reversed(dense[:-1]):
            M = M @ lay.weight
        c = torch.zeros(1, U, dtype=dt, device=dev)
        for lay in dense:
            c = c @ lay.weight.T + (lay.bias if lay.bias is not None else 0)
        return i, M.T.contiguous(), c[0]

    def _sparse_leaves(self, st, i, l, info, V, T, Wc, w_fix, inside, snapped, shared, ju, jobid, parent,
                       left, right, cstart, events, cl_child):
        """Leaves of the last max layer (two-piece elementwise units) from the winners at each row's
        start plus the sparse winner changes inside rows: outputs by cumulative sums of the changed
        units' columns of the affine tail, patterns as deltas."""
        _, Mt, c = self.tail  # Mt (U, out)
        cf = info["cf"]
        C, U = V.shape
        dev = V.device
        units = torch.arange(U, device=dev)
        D = int(parent.numel())
        # winners at each row's first child
        jid = torch.arange(C, device=dev)[:, None] * U + units if shared is None else jobid
        wc = torch.take(w_fix, jid)
        if inside is not None:
            hit = torch.take(inside, jid).nonzero()
            if hit.numel():
                hj = jid[hit[:, 0], hit[:, 1]]
                step = (snapped[hj] <= st["t0"][hit[:, 0]][:, None]).sum(1)
                wc[hit[:, 0], hit[:, 1]] = Wc[hj, step]
        wcf = torch.where(wc.bool(), cf[:, 1], cf[:, 0])
        Yv, Yt = (V * wcf) @ Mt + c, (T * wcf) @ Mt
        off = self.net.unit_offsets[l]
        prow = st["pat"].clone()
        prow[:, off:off + U] = wc.to(self.pdtype)
        accv = torch.zeros(D, Mt.shape[1], dtype=V.dtype, device=dev)
        acct = torch.zeros_like(accv)
        ev_child = ev_unit = ev_new = ev_old = torch.zeros(0, dtype=torch.long, device=dev)
        if events is not None:
            ev, cid = events
            job, slot = ev[:, 0], ev[:, 1]
            ev_child = cl_child[cid]
            ev_unit = job % U if shared is None else ju[job]
            ev_old, ev_new = Wc[job, slot], Wc[job, slot + 1]
            row = parent[ev_child]
            dcf = cf[ev_unit, ev_new] - cf[ev_unit, ev_old]
            accv.index_add_(0, ev_child, (dcf * V[row, ev_unit])[:, None] * Mt[ev_unit])
            acct.index_add_(0, ev_child, (dcf * T[row, ev_unit])[:, None] * Mt[ev_unit])
        # cumulative within rows (the first child of a row has no change)
        csv, cst = accv.cumsum(0), acct.cumsum(0)
        first = cstart[parent]
        yv = Yv[parent] + csv - csv[first]
        yt = Yt[parent] + cst - cst[first]
        n = D
        if self.max_regions is not None and self.n_leaves + D > self.max_regions:
            n = self.max_regions - self.n_leaves
            self.stopped, self.stopped_by = True, "max_regions"
        if n > 0:
            keep_ev = ev_child < n
            ev_child, ev_unit, ev_new, ev_old = (x[keep_ev] for x in (ev_child, ev_unit, ev_new, ev_old))
            rows_n = parent[:n]
            R = int(rows_n[-1]) + 1
            # each row's last pattern (changes applied), to diff against the next row's first
            plast = prow[:R].clone()
            plast[parent[ev_child], off + ev_unit] = ev_new.to(self.pdtype)
            prev = torch.cat([(prow[:1] if self.last_pattern is None else self.last_pattern[None]), plast[:-1]])
            if self.base is None:
                self.base = prow[0].clone()
            diff = prow[:R] != prev
            nz = diff.nonzero()
            d_rows = torch.stack([cstart[nz[:, 0]] + self.n_leaves, nz[:, 1],
                                  prow[:R][nz[:, 0], nz[:, 1]].long() - prev[nz[:, 0], nz[:, 1]].long()], 1)
            d_ev = torch.stack([ev_child + self.n_leaves, off + ev_unit, ev_new - ev_old], 1)
            dl = torch.cat([d_rows, d_ev])
            if dl.numel():
                self.deltas.append(dl[torch.argsort(dl[:, 0], stable=True)])
            self.last_pattern = plast[-1].clone()
            if n < D:  # the last kept leaf: its row's pattern with the changes up to it
                self.last_pattern = prow[R - 1].clone()
                sel = parent[ev_child] == R - 1
                self.last_pattern[off + ev_unit[sel]] = ev_new[sel].to(self.pdtype)
            lft = left[:n]
            self.leaves.append((st["seg"][rows_n], lft, right[:n], yv[:n] + lft[:, None] * yt[:n], yt[:n]))
            self.n_leaves += n
            self._report()
        if self.stopped:
            raise _Stop

    def _job_pieces(self, info, V, T, N, jr, ju, ta, tb):
        """Every job's piece values at its two ends, (n, K) each, and its value tolerance (n, 1)."""
        idx, cf = info["idx"], info["cf"]
        U, K = idx.shape
        if jr is None:  # every (row, unit)
            C = V.shape[0]
            flat = idx.reshape(-1)
            P0 = V.index_select(1, flat).view(C * U, K)
            PT = T.index_select(1, flat).view(C * U, K)
            Nk = N.index_select(1, flat).view(C * U, K)
            cfj = cf.repeat(C, 1) if not info["unit_coef"] else None
        else:
            ij = jr[:, None] * V.shape[1] + idx[ju]
            P0, PT, Nk = torch.take(V, ij), torch.take(T, ij), torch.take(N, ij)
            cfj = cf[ju] if not info["unit_coef"] else None
        if cfj is not None:
            P0, PT, Nk = P0 * cfj, PT * cfj, Nk * cfj.abs()
        E0 = P0 + ta[:, None] * PT
        E1 = P0 + tb[:, None] * PT
        return E0, E1, 2 * self.rtol * Nk.amax(-1, keepdim=True)

    def _walk_k(self, E0, E1, ta, tb, vtol, valid, const):
        """K pieces per job, (n, K): walk the upper envelope from the job's start in at most K - 1
        rounds. Only jobs with a piece ending above the first winner take part in the rounds.
        Returns winners (n, J + 1), breakpoints (n, J) (inf where none), and the jobs whose winner
        coincides with another piece (job, partner, winner) or None."""
        n, K = E0.shape
        ttol = self.ttol
        kr = torch.arange(K, device=E0.device)
        # winner at the start: highest value, then steepest, then lowest index
        c = E0 >= E0.amax(-1, keepdim=True) - vtol
        e1c = torch.where(c, E1, -math.inf)
        c &= E1 >= e1c.amax(-1, keepdim=True) - vtol
        w0 = c.to(torch.uint8).argmax(-1)
        del c, e1c
        ew0 = E0.gather(-1, w0[:, None])
        ew1 = E1.gather(-1, w0[:, None])
        act = (E1 > ew1 + vtol).any(-1)  # some piece ends strictly above the first winner
        ident = ((E0 - ew0).abs() <= vtol) & ((E1 - ew1).abs() <= vtol)
        ident &= valid & (kr != w0[:, None])
        sus = []
        if bool(ident.any()):
            ident &= ~(const.gather(-1, w0[:, None]) & const)  # both constant and equal: one function
            nz = ident.nonzero()
            if nz.numel():
                sus.append(torch.stack([nz[:, 0], nz[:, 1], w0[nz[:, 0]].long()], 1))
        del ident, ew0, ew1
        w0 = w0.long()
        aj = act.nonzero()[:, 0]
        ws_c, taus_c = [], []
        if aj.numel():
            e0, e1 = E0[aj], E1[aj]
            vn = vtol[aj]
            cn, vl = const[aj], valid[aj]
            ts, te = ta[aj][:, None], tb[aj][:, None]
            span = te - ts
            safe = torch.where(span > 0, span, torch.ones_like(span))
            w = w0[aj]
            tcur = ts[:, 0].clone()
            ec = e0
            for _ in range(K - 1):
                ew1 = e1.gather(-1, w[:, None])
                over = e1 > ew1 + vn
                if not bool(over.any()):
                    break
                dc = (ec.gather(-1, w[:, None]) - ec).clamp_min(0)
                tk = tcur[:, None] + (te - tcur[:, None]) * dc / (dc + (e1 - ew1))
                tk = torch.where(over, tk, math.inf)
                tmin = tk.amin(-1)
                has = torch.isfinite(tmin)
                cand = over & (tk <= tmin[:, None] + ttol)
                e1c = torch.where(cand, e1, -math.inf)
                cand &= e1 >= e1c.amax(-1, keepdim=True) - vn
                w = torch.where(has, cand.to(torch.uint8).argmax(-1).long(), w)
                ws_c.append(w)
                taus_c.append(torch.where(has, tmin, math.inf))
                tcur = torch.where(has, tmin, tcur)
                ec = e0 + (e1 - e0) * ((tcur[:, None] - ts) / safe)
                # a later winner that coincides with another piece over the whole job
                wd = w[:, None]
                ident = ((e0 - e0.gather(-1, wd)).abs() <= vn) & ((e1 - e1.gather(-1, wd)).abs() <= vn)
                ident &= vl & (kr != wd) & ~(cn.gather(-1, wd) & cn)
                if bool(ident.any()):
                    nz = ident.nonzero()
                    sus.append(torch.stack([aj[nz[:, 0]], nz[:, 1], w[nz[:, 0]]], 1))
        J = len(taus_c)
        W = w0[:, None].repeat(1, J + 1)
        tau = torch.full((n, J), math.inf, dtype=E0.dtype, device=E0.device)
        for j in range(J):
            W[aj, j + 1] = ws_c[j]
            tau[aj, j] = taus_c[j]
        if sus:
            s = torch.unique(torch.cat(sus, 0), dim=0)
            return W, (tau if J else None), (s[:, 0], s[:, 1], s[:, 2])
        return W, (tau if J else None), None

    # ------------------------------------------------------------------ degenerate ties
    def _check_ties(self, st, l, rows_, units_, partner, winner, ta, tb):
        """Jobs whose winner coincides with another piece over the whole job. They are one piece if
        they are the same affine function of the input on the region (their derivatives agree along
        two random directions); otherwise the segment runs inside the tie set, handled per
        ``on_degenerate``."""
        rows, inv = torch.unique(rows_, return_inverse=True)
        seg = st["seg"][rows]
        tm = (st["t0"][rows] + st["t1"][rows]) / 2
        x = self.a[seg] + tm[:, None] * self.D[seg]
        tr = self.net.trace(x, directions=self.probe, pattern=st["pat"][rows].long(), upto=l)
        G = tr.piece_tangents[l]  # (n_rows, 2, U, K)
        gscale = G.masked_fill(~torch.isfinite(G), 0).abs().amax((1, 2, 3))
        gw = G[inv, :, units_, winner]
        gk = G[inv, :, units_, partner]
        # relative to the pair's own gradients (tiny pieces, e.g. of small leaky slopes, still count)
        thr = 1e-8 * (gw.abs() + gk.abs()) + 1e-14 * gscale[inv, None]
        genuine = ((gw - gk).abs() > thr).any(1)
        if not bool(genuine.any()):
            return
        off = self.net.unit_offsets[l]
        g = genuine.nonzero()[:, 0]
        if self.on_degenerate == "raise":
            k = int(g[0])
            raise DegenerateGeometryError(
                f"segment {int(seg[inv[k]])} lies inside the tie set of unit {int(units_[k]) + off} "
                f"(max layer {l}, pieces {int(winner[k])} and {int(partner[k])}) for t in "
                f"[{float(ta[k]):.12g}, {float(tb[k]):.12g}]: the segment runs inside a boundary of an "
                f"activation region, so the regions it meets are ambiguous. Pass on_degenerate='lowest' "
                f"to give such intervals the lowest-index piece (the convention of PLNet.pattern).")
        keys = {}
        for k in g.tolist():
            keys.setdefault((int(seg[inv[k]]), float(ta[k]), int(units_[k])), float(tb[k]))
        self.n_degenerate += len(keys)
        for (s_, a_, u_), b_ in sorted(keys.items())[: max(0, 1000 - len(self.degenerate))]:
            self.degenerate.append({"segment": s_, "t0": a_, "t1": b_, "unit": u_ + off, "layer": l})

    # ------------------------------------------------------------------ leaves
    def _emit(self, st):
        V, T = st["vals"][self.last][:2]
        n = V.shape[0]
        pat = st["pat"]
        seg, t0, t1 = st["seg"], st["t0"], st["t1"]
        if self.max_regions is not None and self.n_leaves + n > self.max_regions:
            n = self.max_regions - self.n_leaves
            self.stopped = True
            self.stopped_by = "max_regions"
            V, T, pat, seg, t0, t1 = V[:n], T[:n], pat[:n], seg[:n], t0[:n], t1[:n]
        if n > 0:
            prev = pat[0] if self.last_pattern is None else self.last_pattern
            if self.base is None:
                self.base = pat[0].clone()
            shifted = torch.cat([prev[None], pat[:-1]], 0)
            diff = pat != shifted
            if bool(diff.any()):
                nz = diff.nonzero()
                d = pat[nz[:, 0], nz[:, 1]].long() - shifted[nz[:, 0], nz[:, 1]].long()
                nz[:, 0] += self.n_leaves
                self.deltas.append(torch.cat([nz, d[:, None]], 1))
            self.last_pattern = pat[-1].clone()
            self.leaves.append((seg, t0, t1, V + t0[:, None] * T, T))
            self.n_leaves += n
            self._report()
        if self.stopped:
            raise _Stop


# ============================================================================ exact walk
def _to_float(num, e: int) -> float:
    """``num / 2**e`` rounded to float64; beyond its range, an infinity of the right sign (the
    network's values on segments near 1e308 need not be representable; the count still is)."""
    try:
        return float(Fraction(int(num), 1 << e))
    except OverflowError:
        return math.inf if num > 0 else -math.inf


class _ExactWalk:
    """The same walk in exact rational arithmetic on the float64 weights and segment ends (for
    certificates; chain networks of affine and max layers). On an interval ``[t0, t1]`` (fractions)
    every node is ``c0 + c1 t`` with integer coefficients over a power of two; a unit's winner
    changes only at roots of differences of its pieces, so the interval is cut at those roots
    inside it and each part takes the piece that is largest at its midpoint (exact comparisons; ties
    that hold along the whole part are identical pieces on the segment). Fills the fields of
    :class:`_Walk` that :func:`_batch_result` reads."""

    def __init__(self, net, tabs, on_degenerate, max_regions, deadline, pdtype):
        self.net, self.tabs = net, tabs
        self.on_degenerate, self.max_regions, self.deadline = on_degenerate, max_regions, deadline
        self.pdtype = pdtype
        self.last = len(net.nodes) - 1
        self.leaves, self.n_leaves, self.last_pattern, self.base, self.deltas = [], 0, None, None, []
        self.stopped, self.stopped_by, self.degenerate, self.n_degenerate = False, None, [], 0

    def run(self, a: torch.Tensor, b: torch.Tensor):
        from relulab.regions._exact import dyadic

        dev = a.device
        try:
            for s in range(a.shape[0]):
                A, ea = dyadic(a[s])
                B, eb = dyadic(b[s])
                e = max(ea, eb)
                A, B = A * (1 << (e - ea)), B * (1 << (e - eb))
                Z = np.stack([A, B - A], 1)  # x(t) = a + t (b - a), exactly
                out = []
                self._walk(s, Fraction(0), Fraction(1), Z, e, 0, [], out, None)
                if not out:
                    continue
                n = len(out)
                t0 = torch.tensor([float(o[0]) for o in out], dtype=a.dtype, device=dev)
                t1 = torch.tensor([float(o[1]) for o in out], dtype=a.dtype, device=dev)
                V = torch.tensor([[_to_float(z, o[3]) for z in o[2][:, 0]] for o in out],
                                 dtype=a.dtype, device=dev).reshape(n, -1)
                T = torch.tensor([[_to_float(z, o[3]) for z in o[2][:, 1]] for o in out],
                                 dtype=a.dtype, device=dev).reshape(n, -1)
                pat = torch.tensor([o[4] for o in out], dtype=self.pdtype, device=dev).reshape(n, -1)
                st = {"vals": {self.last: (V, T)}, "pat": pat, "t0": t0, "t1": t1,
                      "seg": torch.full((n,), s, dtype=torch.long, device=dev)}
                _Walk._emit(self, st)
        except _Stop:
            self.stopped = True
        return self

    def _report(self):  # the exact walk is a check: its progress is the float walk's
        pass

    def _walk(self, s, t0, t1, Z, e, k, pat, out, zrow):
        """``zrow``: rows of ``Z`` that are structurally zero (a zero-coefficient winner), or None."""
        from relulab.regions._exact import exact_affine

        while k < len(self.tabs) and self.tabs[k][0] == "affine":
            Z, e = exact_affine(self.tabs[k], Z, e)
            k += 1
            zrow = None
        if k == len(self.tabs):
            out.append((t0, t1, Z, e, pat))
            return
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.stopped_by = "time_limit"
            raise _Stop
        _, index, coef, ec, valid = self.tabs[k]
        U, K = index.shape
        rows = Z.tolist()
        idx_l, cf_l = index.tolist(), coef.tolist()
        # per unit: where its winner changes inside (t0, t1), and the winners in between
        changes, allcuts, cache = [], set(), {}
        for u in range(U):
            g = [(j, cf_l[u][j] * rows[idx_l[u][j]][0], cf_l[u][j] * rows[idx_l[u][j]][1])
                 for j in range(K) if valid[u, j]]
            roots = set()
            for x in range(len(g)):
                for y in range(x + 1, len(g)):
                    d0, d1 = g[x][1] - g[y][1], g[x][2] - g[y][2]
                    if d1 != 0:
                        r = Fraction(-d0, d1)
                        if t0 < r < t1:
                            roots.add(r)
            ends = [t0, *sorted(roots), t1]
            pts, wins = [], []
            for lo, hi in zip(ends[:-1], ends[1:]):
                m = (lo + hi) / 2
                mp, mq = m.numerator, m.denominator  # compare c0 + c1 m as c0 mq + c1 mp (mq > 0)
                vals = [(c0 * mq + c1 * mp, j) for j, c0, c1 in g]
                top = max(v[0] for v in vals)
                tied = [v[1] for v in vals if v[0] == top]  # equal inside the part: equal on it
                if len(tied) > 1 and not all(cf_l[u][j] == 0 or (zrow is not None and zrow[idx_l[u][j]])
                                             for j in tied):  # several zero pieces are one piece
                    self._tie(s, lo, hi, k, u, pat, tied, cache)
                if not wins or wins[-1] != tied[0]:
                    if wins:
                        pts.append(lo)
                    wins.append(tied[0])
            changes.append((pts, wins))
            allcuts.update(pts)
        ends = [t0, *sorted(allcuts), t1]
        parts = []
        for lo, hi in zip(ends[:-1], ends[1:]):
            win = [w[bisect.bisect_right(p, lo)] for p, w in changes]
            parts.append([lo, hi, win])
        sel = np.arange(U)
        for lo, hi, win in parts:
            W = np.array(win)
            src = index[sel, W]
            Zn = Z[src] * coef[sel, W][:, None]
            zn = np.array([c == 0 for c in coef[sel, W].tolist()]) | (zrow[src] if zrow is not None else False)
            self._walk(s, lo, hi, Zn, e + ec, k + 1, pat + win, out, zn)

    def _tie(self, s, lo, hi, k, u, pat, tied, cache):
        """Pieces equal along a whole part of the segment: one piece if they are the same affine
        function of the input on the region (then the lowest index stands for them), else the
        segment lies inside the region's boundary."""
        # input-space maps of the pieces under the pattern so far, exactly
        if "Zx" in cache:
            Zx, l = cache["Zx"]
        else:
            Zx, l = self._input_maps(k, pat)
            cache["Zx"] = (Zx, l)
        _, index, coef, ec, valid = self.tabs[k]
        g = {j: tuple(coef[u, j] * z for z in Zx[index[u, j]]) for j in tied}
        first = tied[0]
        if all(g[j] == g[first] for j in g):
            return
        self.n_degenerate += 1
        off = self.net.unit_offsets[l]
        if self.on_degenerate == "raise":
            others = [j for j in g if g[j] != g[first]]
            raise DegenerateGeometryError(
                f"segment {s} lies inside the tie set of unit {u + off} (max layer {l}, pieces {first} and "
                f"{others[0]}) for t in [{float(lo):.17g}, {float(hi):.17g}] (exact arithmetic): the segment "
                f"runs inside a boundary of an activation region, so the regions it meets are ambiguous. "
                f"Pass on_degenerate='lowest' to give such intervals the lowest-index piece (the "
                f"convention of PLNet.pattern).")
        if len(self.degenerate) < 1000:
            self.degenerate.append({"segment": s, "t0": float(lo), "t1": float(hi), "unit": u + off, "layer": l})

    def _input_maps(self, k, pat):
        """Exact input-space maps (rows: features of layer ``k``'s input; column 0 the constant)
        under the pattern ``pat`` of the max layers before ``k``, and the max-layer number."""
        from relulab.regions._exact import exact_affine

        d = self.net.input_dim
        Zx = np.zeros((d, d + 1), dtype=object)
        for i in range(d):
            Zx[i, i + 1] = 1
        ez, w_at, l = 0, 0, 0
        for tab in self.tabs[:k]:
            if tab[0] == "affine":
                Zx, ez = exact_affine(tab, Zx, ez)
            else:
                _, index, coef, ec, valid = tab
                n = index.shape[0]
                W = np.array(pat[w_at:w_at + n])
                Zx = Zx[index[np.arange(n), W]] * coef[np.arange(n), W][:, None]
                ez += ec
                w_at += n
                l += 1
        return Zx, l


# ============================================================================ assembly
def _batch_result(walk: _Walk, a, b, net, input_maps, certified: bool = False) -> LineBatch:
    S = a.shape[0]
    dev, dt = a.device, a.dtype
    out = net.output_dim
    if walk.leaves:
        seg, t0, t1, y0, sl = (torch.cat(x, 0) for x in zip(*walk.leaves))
    else:
        seg = torch.zeros(0, dtype=torch.long, device=dev)
        t0 = t1 = torch.zeros(0, dtype=dt, device=dev)
        y0 = sl = torch.zeros(0, out, dtype=dt, device=dev)
    y0, sl = y0.reshape(-1, out), sl.reshape(-1, out)
    N = seg.numel()
    counts = torch.bincount(seg, minlength=S)
    lengths = (b - a).norm(dim=1)
    curve = torch.zeros(S, dtype=dt, device=dev).index_add_(0, seg, sl.norm(dim=1) * (t1 - t0))
    ratios = torch.where(lengths > 0, curve / torch.where(lengths > 0, lengths, 1), torch.nan)
    # linear pieces of the restriction: a new one where the segment starts or the slope changes
    newlin = torch.ones(N, dtype=torch.bool, device=dev)
    if N > 1:
        vend = y0 + (t1 - t0)[:, None] * sl
        sc = torch.zeros(S, dtype=dt, device=dev)
        mags = torch.maximum(sl.abs().amax(1), torch.maximum(y0.abs().amax(1), vend.abs().amax(1))) \
            if out else torch.zeros(N, dtype=dt, device=dev)
        sc = sc.scatter_reduce(0, seg, mags, reduce="amax")
        same_seg = seg[1:] == seg[:-1]
        tol = 1e-9 * sc[seg[1:]]
        same_slope = ((sl[1:] - sl[:-1]).abs() <= tol[:, None]).all(1) if out else torch.ones_like(same_seg)
        newlin[1:] = ~(same_seg & same_slope)
    lin = torch.bincount(seg[newlin], minlength=S)
    covered = torch.zeros(S, dtype=dt, device=dev)
    done = torch.ones(S, dtype=torch.bool, device=dev)
    if walk.stopped:
        done[:] = False
        if N:
            last = int(seg[-1])
            done[:last] = True
            covered[:last] = 1.0
            covered[last] = t1[-1]
            done[last] = bool(t1[-1] >= 1.0)
    else:
        covered[:] = 1.0
    base = walk.base if walk.base is not None else torch.full((net.n_units,), -1, dtype=torch.long, device=dev)
    deltas = torch.cat(walk.deltas, 0) if walk.deltas else torch.zeros(0, 3, dtype=torch.long, device=dev)
    if walk.n_degenerate > len(walk.degenerate):
        walk.degenerate.append({"more": walk.n_degenerate - len(walk.degenerate)})
    return LineBatch(count=N, counts=counts, segment=seg, t0=t0, t1=t1, values0=y0, slopes=sl,
                     linear_counts=lin, curve_lengths=curve, lengths=lengths, length_ratios=ratios,
                     complete=bool(done.all()), segment_complete=done, covered=covered,
                     n_units=net.n_units, pattern_base=base.long(), pattern_deltas=deltas,
                     degenerate=list(walk.degenerate), _net=net, _input_maps=input_maps, _ab=(a, b),
                     certified=certified, stopped_by=None if bool(done.all()) else walk.stopped_by)


def _partition(batch: LineBatch, segs: list[int], closed: bool, domain: str, net, input_maps,
               vertices_t=None) -> LinePartition:
    """One path (the given segments of ``batch`` in order, each of length > 0 or a lone point)
    as a :class:`LinePartition` in the arc-length parameter."""
    dev, dt = batch.t0.device, batch.t0.dtype
    starts = torch.cumsum(batch.counts, 0) - batch.counts
    rows = torch.cat([torch.arange(int(starts[s]), int(starts[s] + batch.counts[s]), device=dev) for s in segs])
    lengths = batch.lengths[segs]
    total = float(lengths.sum())
    # map each segment's t to the path parameter: t_path = (cum + t * L_s) / total
    cum = torch.cumsum(lengths, 0) - lengths
    pos_t = torch.full((len(batch),), -1, dtype=torch.long, device=dev)
    pos_t[torch.tensor(segs, dtype=torch.long, device=dev)] = torch.arange(len(segs), device=dev)
    k_of_row = pos_t[batch.segment[rows]]
    if len(segs) > 1 and total > 0:
        scale_t = lengths[k_of_row] / total
        shift_t = cum[k_of_row] / total
    else:
        scale_t = torch.ones(rows.numel(), dtype=dt, device=dev)
        shift_t = torch.zeros(rows.numel(), dtype=dt, device=dev)
    M = rows.numel()
    t0 = shift_t + batch.t0[rows] * scale_t
    t1 = shift_t + batch.t1[rows] * scale_t
    y0 = batch.values0[rows]
    sl = batch.slopes[rows] / torch.where(scale_t > 0, scale_t, 1)[:, None]
    knots = torch.cat([t0, t1[-1:]]) if M else torch.zeros(1, dtype=dt, device=dev)
    values = torch.cat([y0, (y0[-1:] + (t1[-1:] - t0[-1:])[:, None] * sl[-1:])]) if M else \
        torch.zeros(1, batch.values0.shape[1], dtype=dt, device=dev)
    # regions: a new one wherever the pattern changes from the previous piece (rows with deltas)
    dl = batch.pattern_deltas
    changed = torch.zeros(batch.count + 1, dtype=torch.bool, device=dev)
    if dl.numel():
        changed[dl[:, 0]] = True
    newreg = changed[rows] if M else torch.zeros(0, dtype=torch.bool, device=dev)
    if M:
        newreg[0] = True
    region = torch.cumsum(newreg.long(), 0) - 1
    count = int(newreg.sum())
    complete = bool(batch.segment_complete[segs].all())
    first_rows = rows[newreg]
    base = batch.pattern(int(rows[0])) if M else batch.pattern_base.clone()
    keep_last = None
    if closed and complete and count > 1:
        if torch.equal(batch.pattern(int(rows[0])), batch.pattern(int(rows[-1]))):
            keep_last = int(region[-1])
            region = torch.where(region == keep_last, 0, region)
            count -= 1
    # region-level pattern deltas: the changes at each region's first piece
    if dl.numel() and count > 1:
        reg_of_row = torch.full((batch.count + 1,), -1, dtype=torch.long, device=dev)
        starts_reg = torch.arange(first_rows.numel(), device=dev)
        reg_of_row[first_rows] = starts_reg
        if keep_last is not None:
            reg_of_row[first_rows[keep_last]] = -1
        sel = reg_of_row[dl[:, 0]] >= 1
        pdel = dl[sel].clone()
        pdel[:, 0] = reg_of_row[pdel[:, 0]]
    else:
        pdel = torch.zeros(0, 3, dtype=torch.long, device=dev)
    # region intervals and breakpoints
    nreg_rows = first_rows.numel()
    rstart = t0[newreg]
    rend = torch.cat([t0[newreg][1:], t1[-1:]]) if M else torch.zeros(0, dtype=dt, device=dev)
    intervals = torch.stack([rstart, rend], 1) if M else torch.zeros(0, 2, dtype=dt, device=dev)
    bps = rstart[1:]
    if keep_last is not None:
        intervals = intervals[:nreg_rows - 1].clone()
        intervals[0, 0] = rstart[keep_last]
    # linear pieces of the restriction (pieces split at polyline vertices too)
    if M > 1:
        mags = torch.maximum(sl.abs().amax(1), values.abs().amax(1)[:-1]) if sl.shape[1] else sl.new_zeros(M)
        tol = 1e-9 * float(mags.max()) if mags.numel() else 0.0
        same = ((sl[1:] - sl[:-1]).abs() <= tol).all(1)
        lin_bp = t0[1:][~same]
    else:
        lin_bp = torch.zeros(0, dtype=dt, device=dev)
    linear_count = int(lin_bp.numel()) + (1 if M else 0)
    if closed and complete and M > 1 and linear_count > 1:
        if bool(((sl[0] - sl[-1]).abs() <= 1e-9 * float(sl.abs().max())).all()):
            linear_count -= 1
    # parametrization-invariant: the sum of the segments' exact image lengths
    curve = float(batch.curve_lengths[segs].sum())
    covered = float(t1[-1]) if M else 0.0
    if complete:
        covered = 1.0
    A = c = None
    d = net.input_dim
    # automatic: only when the maps (count x out x d) and the patterns behind them (count x units) are small
    want = input_maps if input_maps is not None else count * (net.output_dim * d + net.n_units) <= _AUTO_MAP_ENTRIES
    if want and count:
        reg_first = first_rows[:count]
        # midpoint of each region's first piece
        k = k_of_row[newreg][:count]
        s_idx = torch.tensor(segs, dtype=torch.long, device=dev)[k]
        tm = (batch.t0[reg_first] + batch.t1[reg_first]) / 2
        aa, bb = batch._ab
        x = aa[s_idx] + tm[:, None] * (bb[s_idx] - aa[s_idx])
        As, cs = [], []
        for i0 in range(0, count, 512):
            xs = x[i0:i0 + 512]  # batched input shape: unambiguous even for one row
            pats = _pattern_rows(base, pdel, i0, min(count, i0 + 512))
            A_, c_ = net.local_affine(xs.reshape(xs.shape[0], *net.input_shape), pattern=pats)
            As.append(A_)
            cs.append(c_)
        A, c = torch.cat(As), torch.cat(cs)
    verts = None
    if vertices_t is not None:
        verts = vertices_t
    return LinePartition(count=count, breakpoints=bps, intervals=intervals, knots=knots, values=values,
                         slopes=sl, piece_region=region, linear_count=linear_count, linear_breakpoints=lin_bp,
                         curve_length=curve, length=total, length_ratio=curve / total if total > 0 else math.nan,
                         complete=complete, covered=covered, domain=domain, vertices=verts,
                         n_units=net.n_units, pattern_base=base.long(), pattern_deltas=pdel, A=A, c=c,
                         degenerate=[g for g in batch.degenerate if g.get("segment") in set(segs) or "more" in g],
                         certified=batch.certified, stopped_by=None if complete else batch.stopped_by,
                         seconds=batch.seconds)


# ============================================================================ entry point
def _certified_walk(net, a, b, kw, certify):
    """The float walk, checked against (or replaced by) the exact walk per ``certify``.
    Returns (walk, certified)."""
    from relulab.regions._exact import exact_chain

    walk, overflow, unsure = None, not bool(torch.isfinite(b - a).all()), None
    if not overflow:
        try:
            walk = _Walk(net, **kw).run(a, b)
            overflow = any(not bool(torch.isfinite(x).all()) for leaf in walk.leaves for x in leaf[1:])
        except _Overflow:
            overflow = True
        except DegenerateGeometryError as err:
            # float64 saw a tie it cannot resolve (a genuine one, or values below its resolution on
            # a long segment): exact arithmetic decides, where it may run
            if certify is False:
                raise
            unsure = err
    if overflow and certify is False:
        raise DegenerateGeometryError(
            "float64 overflow: the network's values along the segments (or b - a) are not finite in "
            "float64; use shorter segments, or certify=None/True to settle them in exact arithmetic")
    if certify is False:
        return walk, False
    if unsure is not None:
        tabs = exact_chain(net)
        if tabs is None:
            raise unsure
        overflow = True  # no float walk to compare with: the exact walk is the result
    if not overflow:
        if walk.stopped:
            if certify is None:
                return walk, False
        else:
            notify(kw.get("progress"), walk.n_leaves, None, regions=walk.n_leaves, stage="certifying")
            outcome = _filter_certify(net, a, b, walk)
            walk.cert = outcome
            if outcome.ok:
                return walk, True
            if outcome.ok is None and certify is None:
                weights = sum(int(math.prod(getattr(n.layer, "in_shape", (1,)))) * int(math.prod(getattr(
                    n.layer, "out_shape", (1,)))) for n in net.nodes[1:])
                if walk.n_leaves * (weights + 20 * net.n_units) > _CERTIFY_WORK:
                    return walk, False
    tabs = exact_chain(net)
    if tabs is None:
        if walk is not None and getattr(walk, "cert", None) is not None and walk.cert.ok is False:
            raise DegenerateGeometryError(
                f"float64 cannot decide the regions along these segments ({walk.cert.reason}) and the exact "
                f"walk handles chains of affine and max layers only (this network has residual additions)")
        if certify is True or overflow:
            raise (DegenerateGeometryError if overflow else InvalidInputError)(
                "exact certification handles chains of affine and max layers only (this network has "
                "residual additions)" + (", and float64 overflows along these segments" if overflow else ""))
        return walk, False
    deadline = None if kw["time_limit"] is None else time.perf_counter() + kw["time_limit"]
    kmax = max([m.index.shape[1] for m in net.max_units] or [1])
    pdtype = torch.int8 if kmax <= 127 else (torch.int16 if kmax <= 32767 else torch.int32)
    ex = _ExactWalk(net, tabs, kw["on_degenerate"], kw["max_regions"], deadline, pdtype).run(a, b)
    if ex.stopped_by == "time_limit":
        if overflow:
            raise DegenerateGeometryError("float64 overflow along the segments, and the exact walk ran past "
                                          "time_limit")
        return walk, False
    if walk is not None and walk.n_leaves == ex.n_leaves and walk.stopped == ex.stopped:
        n = walk.n_leaves
        segs_f = torch.cat([leaf[0] for leaf in walk.leaves]) if n else None
        segs_e = torch.cat([leaf[0] for leaf in ex.leaves]) if n else None
        pf = _dense_patterns(walk.base, torch.cat(walk.deltas, 0) if walk.deltas else
                             torch.zeros(0, 3, dtype=torch.long, device=a.device), n) if n else None
        pe = _dense_patterns(ex.base, torch.cat(ex.deltas, 0) if ex.deltas else
                             torch.zeros(0, 3, dtype=torch.long, device=a.device), n) if n else None
        if n == 0 or (torch.equal(segs_f, segs_e) and torch.equal(pf, pe)):
            return walk, True
    return ex, True



_CERTIFY_WORK = 2_000_000  # exact-walk work (regions x (weights + 20 units)) the default spends


def _filter_certify(net, a, b, walk):
    """The float walk's intervals checked by filtered predicates (:mod:`relulab.regions._line_cert`)."""
    from relulab.regions._line_cert import certify_segments

    dev = a.device
    if walk.n_leaves == 0:
        from relulab.regions._line_cert import CertOutcome

        return CertOutcome(True)
    seg, t0, t1 = (torch.cat([leaf[k] for leaf in walk.leaves]) for k in range(3))
    deltas = torch.cat(walk.deltas, 0) if walk.deltas else torch.zeros(0, 3, dtype=torch.long, device=dev)
    return certify_segments(net, a, b, seg, t0, t1, walk.base, deltas)


def _check_tol(name, v, dtype):
    if v is None:  # float64: 1e-13 (values), 1e-14 (t); float32: 50 and 10 times the unit roundoff
        if dtype == torch.float64:
            return 1e-13 if name == "rtol" else 1e-14
        return min(1e-3, (50 if name == "rtol" else 10) * torch.finfo(dtype).eps)
    if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v < 1e-2):
        raise InvalidInputError(f"{name} must be a number in [0, 1e-2), got {v!r}")
    return float(v)


def on_line(net, a, b=None, *, closed: bool = False, max_regions: int | None = None,
            time_limit: float | None = None, on_degenerate: str = "raise", rtol: float | None = None,
            ttol: float | None = None, input_maps: bool | None = None, batch_rows: int | None = None,
            memory: int = _DEFAULT_MEMORY, certify: bool | None = None, progress=None):
    from relulab.core.plnet import PLNet
    from relulab.core.threads import threads_for

    # operations touch (intervals in a batch) x (widest layer) elements: for a few segments that
    # is small work, fastest on one thread (and far faster than many threads under load)
    per_op = 1 << 30
    if isinstance(net, PLNet):
        width = max([int(math.prod(getattr(n.layer, "out_shape", net.input_shape))) for n in net.nodes[1:]]
                    + [net.input_dim])
        n_seg = a.shape[0] if isinstance(a, torch.Tensor) and b is not None and a.dim() > len(net.input_shape) else 1
        per_op = 8 * n_seg * width
    with torch.no_grad(), threads_for(per_op):
        return _on_line(net, a, b, closed=closed, max_regions=max_regions, time_limit=time_limit,
                        on_degenerate=on_degenerate, rtol=rtol, ttol=ttol, input_maps=input_maps,
                        batch_rows=batch_rows, memory=memory, certify=certify, progress=progress)


def _on_line(net, a, b=None, *, closed: bool = False, max_regions: int | None = None,
             time_limit: float | None = None, on_degenerate: str = "raise", rtol: float | None = None,
             ttol: float | None = None, input_maps: bool | None = None, batch_rows: int | None = None,
             memory: int = _DEFAULT_MEMORY, certify: bool | None = None, progress=None):
    """Exact activation regions along a segment, a polyline, or many segments at once.

    * ``on_line(net, a, b)`` with ``a``, ``b`` one input each: the segment ``a + t (b - a)``,
      ``t`` in [0, 1] -> :class:`LinePartition`.
    * ``on_line(net, points)`` with ``points`` (P, *input_shape) or (P, d): the polyline through
      them (``closed=True`` adds the edge back to the first point) -> :class:`LinePartition` in the
      arc-length parameter.
    * ``on_line(net, a, b)`` with ``a``, ``b`` batches (S, *input_shape) or (S, d): all segments
      refined together in the same tensor operations -> :class:`LineBatch`.

    Budgets: ``max_regions`` (intervals in all) and ``time_limit`` (seconds) stop the walk early; the
    result is then exact on a prefix (``covered``) and has ``complete=False``. ``on_degenerate``:
    "raise" or "lowest" (see the module docstring). ``rtol``/``ttol``: the value and parameter
    tolerances (default 1e-13 and 1e-14 for float64 networks; else 50 and 10 times the unit
    roundoff).

    Certification (``certify``): the float walk's pattern sequence is checked against exact
    rational arithmetic on the float64 weights and segment ends (every float64 is a dyadic
    rational) by filtered predicates (:mod:`relulab.regions._line_cert`): every decision is settled
    in float64 under a rigorous error bound, and the few the bound cannot settle in exact integer
    arithmetic; any network (residual additions included). If the check finds the float sequence
    wrong, the exact walk (chains of affine and max layers) is the result, else
    :class:`DegenerateGeometryError` is raised. ``certify=None`` (default) certifies complete walks
    whose certificate fits its work budget (about 1e8 checks; beyond it, and for incomplete walks,
    ``certified=False``); ``True`` always (the exact walk where the filter cannot decide; raises
    :class:`InvalidInputError` where neither runs); ``False`` never. ``certified`` on the result says
    whether it happened. A float64 overflow (segments near 1e308, or values beyond it) is settled
    exactly where certification is allowed, else raises :class:`DegenerateGeometryError`.
    ``progress``: a callback ``progress(done, total, **info)`` (:mod:`relulab.progress`), called as
    regions are found with ``done`` = regions so far, ``total`` None, ``regions`` and ``covered``
    (the fraction of the segments walked), then once with ``stage="certifying"``.
    ``input_maps``: compute ``A``, ``c`` (None: when count * out * d <= 2e7). ``batch_rows``,
    ``memory``: intervals processed together (default: from a budget of ``memory`` bytes).

    Example::

        net = relulab.PLNet.from_torch(model, (1, 28, 28))
        res = on_line(net, x0, x1)
        res.count, res.linear_count, res.length_ratio, res.breakpoints
    """
    from relulab.core.plnet import PLNet

    if not isinstance(net, PLNet):
        raise InvalidInputError(f"net must be a relulab.PLNet (use PLNet.from_torch(module, input_shape)), "
                                f"got {type(net).__name__}")
    if on_degenerate not in ("raise", "lowest"):
        raise InvalidInputError(f"on_degenerate must be 'raise' or 'lowest', got {on_degenerate!r}")
    t_start = time.perf_counter()
    rtol, ttol = _check_tol("rtol", rtol, net.dtype), _check_tol("ttol", ttol, net.dtype)
    max_regions, time_limit = check_budget(max_regions, time_limit)
    if certify not in (None, True, False):
        raise InvalidInputError(f"certify must be None (automatic), True or False, got {certify!r}")
    if batch_rows is not None and (not isinstance(batch_rows, int) or batch_rows < 1):
        raise InvalidInputError(f"batch_rows must be a positive integer or None, got {batch_rows!r}")
    if not isinstance(memory, (int, float)) or isinstance(memory, bool) or not memory > 0:
        raise InvalidInputError(f"memory must be a positive number of bytes, got {memory!r}")
    shp, d = net.input_shape, net.input_dim

    def as_tensor(x, name):
        try:
            x = torch.as_tensor(x)
        except Exception as e:  # noqa: BLE001 - report what was passed
            raise InvalidInputError(f"{name} must be array-like, got {type(x).__name__}") from e
        if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
            raise InvalidInputError(f"{name} must be a real tensor, got dtype {x.dtype}")
        x = x.to(device=net.device, dtype=net.dtype)
        if not bool(torch.isfinite(x).all()):
            raise InvalidInputError(f"{name} has non-finite entries")
        return x

    def one(x):
        return tuple(x.shape) == shp or tuple(x.shape) == (d,)

    def many(x):
        return (x.dim() == len(shp) + 1 and tuple(x.shape[1:]) == shp) or (x.dim() == 2 and x.shape[1] == d)

    kw = dict(rtol=rtol, ttol=ttol, on_degenerate=on_degenerate, max_regions=max_regions,
              time_limit=time_limit, batch_rows=batch_rows, memory=memory, progress=progress)
    a = as_tensor(a, "a" if b is not None else "points")
    if b is None:
        if not many(a) or a.shape[0] < 1:
            raise InvalidInputError(f"points must have shape (P, {', '.join(map(str, shp))}) or (P, {d}) with "
                                    f"P >= 1, got {tuple(a.shape)}")
        pts = a.reshape(a.shape[0], d)
        nxt = torch.roll(pts, -1, 0) if closed else pts[1:]
        A_, B_ = (pts, nxt) if closed else (pts[:-1], nxt)
        L = (B_ - A_).norm(dim=1)
        keep = (L > 0).nonzero()[:, 0]
        if keep.numel():
            A_, B_, Lk = A_[keep], B_[keep], L[keep]
        else:  # every point the same: the path is one point
            A_, B_, Lk = pts[:1], pts[:1], torch.zeros(1, dtype=pts.dtype, device=pts.device)
        walk, cert = _certified_walk(net, A_, B_, kw, certify)
        batch = _batch_result(walk, A_, B_, net, input_maps, cert)
        batch.seconds = time.perf_counter() - t_start
        tot = Lk.sum()
        verts = (torch.cumsum(Lk, 0)[:-1] / tot) if tot > 0 and Lk.numel() > 1 else \
            torch.zeros(0, dtype=pts.dtype, device=pts.device)
        domain = "closed polyline" if closed else "polyline"
        res = _partition(batch, list(range(A_.shape[0])), closed=closed, domain=domain, net=net,
                         input_maps=input_maps, vertices_t=verts)
        res.seconds = time.perf_counter() - t_start
        return res
    if closed:
        raise InvalidInputError("closed=True applies to a polyline: call on_line(net, points, closed=True)")
    b = as_tensor(b, "b")
    if tuple(a.shape) != tuple(b.shape):
        raise InvalidInputError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if one(a):
        A_, B_ = a.reshape(1, d), b.reshape(1, d)
        walk, cert = _certified_walk(net, A_, B_, kw, certify)
        batch = _batch_result(walk, A_, B_, net, input_maps, cert)
        res = batch[0]
        res.seconds = time.perf_counter() - t_start
        return res
    if many(a):
        A_, B_ = a.reshape(a.shape[0], d), b.reshape(b.shape[0], d)
        walk, cert = _certified_walk(net, A_, B_, kw, certify)
        res = _batch_result(walk, A_, B_, net, input_maps, cert)
        res.seconds = time.perf_counter() - t_start
        return res
    raise InvalidInputError(f"a and b must be one input {shp} (or ({d},)) or a batch (S, {', '.join(map(str, shp))}) "
                            f"or (S, {d}), got {tuple(a.shape)}")


on_line.__doc__ = _on_line.__doc__  # the documentation lives with the implementation
