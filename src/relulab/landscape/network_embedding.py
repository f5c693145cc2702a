r"""Network embeddings of shallow ReLU-like networks: neuron splitting, zero neurons, widening.

An embedding realizes a width-``m`` network inside a width-``m'`` one with the same function, through an
affine map of parameters ``theta' = M theta + o`` (Wu, Simsek and Ged, arXiv 2402.05626, Section on network
embedding; Fukumizu and Amari for smooth activations):

* splitting neuron ``j`` with ratio ``s``: ``(w_j, a_j) -> (l1 w_j, s a_j / l1), (l2 w_j, (1 - s) a_j / l2)``
  for scales ``l1, l2 > 0``; exact for every ReLU-like ``sigma(z) = max(z, alpha z)`` (including leaky ReLU
  and the absolute value) because ``sigma(l z) = l sigma(z)`` for ``l > 0`` (positive homogeneity);
* adding a zero neuron ``(w, b, a = 0)``: exact since it contributes nothing;
* widening to ``m'`` neurons by a sequence of these steps.

Predictions that :func:`check_embedding` verifies with :func:`relulab.landscape.directional_stationarity`
(derived from the one-sided derivative, in line with the paper's embedding results):

* function values and the loss are unchanged, and any embedding ``theta' = M theta + o`` satisfies
  ``L'_wide(theta'; M v) = L'_narrow(theta; v)`` (the same function along the path);
* splitting neuron ``j`` with ``s`` in ``[0, 1]`` keeps directional stationarity (the copies' output weights
  point the way ``a_j`` does); with ``s`` outside ``[0, 1]`` one copy's block of the one-sided derivative is
  ``-|kappa| phi_j(u)``, ``phi_j(u) = 1/n sum_i (r_i . a_j) sigma'(z_ij; x~_i . u) >= 0``, so stationarity
  survives only when ``phi_j`` vanishes identically (always at differentiable points);
* a zero neuron ``w`` keeps stationarity iff ``sum_i r_i sigma(w . x~_i) = 0`` (its output-weight derivative);
* a zero-output neuron (a zero neuron, or a split with ``s`` in ``{0, 1}``) is an escape neuron iff
  ``h(u) = 1/n sum_i r_i sigma'(w . x~_i; x~_i . u)`` is not identically zero, and then a local minimum of
  the narrow network is a saddle of the wide one; stationary splits with ``s`` not in ``{0, 1}`` keep a
  local minimum (scalar output: the loss stays piecewise convex in ``|a_j| w_j``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import torch

from relulab.core.errors import InvalidInputError
from relulab.landscape.shallow import ShallowNet
from relulab.results import Result

__all__ = ["EmbeddingMap", "split_neuron", "add_zero_neuron", "embed", "check_embedding", "EmbeddingCheck"]


@dataclass
class EmbeddingMap(Result):
    """``theta' = matrix @ theta + offset`` between ``parameters_vector()`` layouts; ``sources[k]`` is the
    narrow neuron that wide neuron ``k`` comes from (``-1`` for a zero neuron)."""

    matrix: torch.Tensor       # (P', P)
    offset: torch.Tensor       # (P',)
    sources: list
    kind: str

    _summary_fields = ("sources", "kind")

    def __call__(self, theta) -> torch.Tensor:
        theta = torch.as_tensor(theta, dtype=self.matrix.dtype, device=self.matrix.device)
        return self.matrix @ theta + self.offset if theta.dim() == 1 else theta @ self.matrix.T + self.offset

    def then(self, other: "EmbeddingMap") -> "EmbeddingMap":
        """The composition: first ``self``, then ``other``."""
        return EmbeddingMap(other.matrix @ self.matrix, other.matrix @ self.offset + other.offset,
                            [self.sources[s] if s >= 0 else -1 for s in other.sources], f"{self.kind}+{other.kind}")


def _check_net(net):
    if not isinstance(net, ShallowNet):
        raise InvalidInputError(f"net must be a relulab.landscape.ShallowNet, got {type(net).__name__}")


def _block_positions(net: ShallowNet):
    """Per block name: an index tensor shaped like the block, into parameters_vector() (or None)."""
    out = {}
    for name, s in net.parameter_slices().items():
        out[name] = torch.arange(s.start, s.stop, device=net.device).reshape(getattr(net, name).shape)
    return out


def _neuron_map(net: ShallowNet, new: ShallowNet, sources: list, in_scale: list, out_scale: list) -> EmbeddingMap:
    """The linear map where new neuron ``k`` has ``w~ = in_scale[k] w~_{sources[k]}`` and
    ``a = out_scale[k] a_{sources[k]}`` (zero neurons: ``sources[k] = -1``, constants in the offset)."""
    old_pos, new_pos = _block_positions(net), _block_positions(new)
    M = torch.zeros(new.n_parameters, net.n_parameters, dtype=net.dtype, device=net.device)
    off = new.parameters_vector().clone()
    for blk in ("W", "b", "a"):
        if blk not in new_pos:
            continue
        for k, s in enumerate(sources):  # one row block per neuron: widths are small, this is bookkeeping
            if s < 0:
                continue
            rows = new_pos[blk][k].reshape(-1)
            cols = old_pos[blk][s].reshape(-1)
            M[rows, cols] = in_scale[k] if blk in ("W", "b") else out_scale[k]
            off[rows] = 0.0
    if "c" in new_pos:
        M[new_pos["c"], old_pos["c"]] = 1.0
        off[new_pos["c"]] = 0.0
    return EmbeddingMap(M, off, list(sources), "")


def split_neuron(net: ShallowNet, j: int, ratio: float = 0.5, scales: tuple = (1.0, 1.0)):
    r"""Split neuron ``j`` into ``(l1 w_j, l1 b_j, s a_j / l1)`` (kept at position ``j``) and
    ``(l2 w_j, l2 b_j, (1 - s) a_j / l2)`` (appended), ``s = ratio``, ``(l1, l2) = scales > 0``.

    Returns ``(wide_net, EmbeddingMap)``. Exact for ReLU, leaky ReLU and abs by positive homogeneity."""
    _check_net(net)
    if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < net.m:
        raise InvalidInputError(f"j must be a neuron index in [0, {net.m}), got {j!r}")
    ratio = float(ratio)
    l1, l2 = (float(x) for x in scales)
    if not (l1 > 0 and l2 > 0) or not all(map(lambda x: x < float("inf"), (l1, l2, abs(ratio)))):
        raise InvalidInputError(f"scales must be two finite positive numbers and ratio finite, got {scales}, {ratio}")
    W = torch.cat([net.W, l2 * net.W[j:j + 1]])
    W[j] = l1 * net.W[j]
    b = None
    if net.b is not None:
        b = torch.cat([net.b, l2 * net.b[j:j + 1]])
        b[j] = l1 * net.b[j]
    a = torch.cat([net.a, (1.0 - ratio) / l2 * net.a[j:j + 1]])
    a[j] = ratio / l1 * net.a[j]
    new = replace(net, W=W, a=a, b=b, c=None if net.c is None else net.c.clone())
    sources = list(range(net.m)) + [j]
    ins = [1.0] * net.m + [l2]
    ins[j] = l1
    outs = [1.0] * net.m + [(1.0 - ratio) / l2]
    outs[j] = ratio / l1
    emb = _neuron_map(net, new, sources, ins, outs)
    emb.kind = f"split({j}, ratio={ratio})"
    return new, emb


def add_zero_neuron(net: ShallowNet, w=None, b=None):
    """Append a neuron with input weights ``w`` (default 0), bias ``b`` (default 0 when the net has hidden
    biases) and output weight ``a = 0``. Returns ``(wide_net, EmbeddingMap)`` (affine: ``w`` is a constant)."""
    _check_net(net)
    w = torch.zeros(net.d, dtype=net.dtype, device=net.device) if w is None else \
        torch.as_tensor(w, dtype=net.dtype, device=net.device).reshape(-1)
    if w.numel() != net.d or not bool(torch.isfinite(w).all()):
        raise InvalidInputError(f"w must be {net.d} finite numbers, got shape {tuple(w.shape)}")
    if net.b is None and b is not None:
        raise InvalidInputError("b must be None for a network without hidden biases")
    W = torch.cat([net.W, w[None]])
    bb = None
    if net.b is not None:
        b0 = torch.zeros((), dtype=net.dtype, device=net.device) if b is None else \
            torch.as_tensor(b, dtype=net.dtype, device=net.device).reshape(())
        bb = torch.cat([net.b, b0[None]])
    a = torch.cat([net.a, torch.zeros(1, net.o, dtype=net.dtype, device=net.device)])
    new = replace(net, W=W, a=a, b=bb, c=None if net.c is None else net.c.clone())
    emb = _neuron_map(net, new, list(range(net.m)) + [-1], [1.0] * (net.m + 1), [1.0] * (net.m + 1))
    emb.kind = "zero_neuron"
    return new, emb


def embed(net: ShallowNet, m_new: int, sources: Optional[Sequence] = None, ratios: Optional[Sequence] = None,
          zero_weights: Optional[Sequence] = None):
    """Widen to ``m_new`` neurons. ``sources[k]`` (k = 0 .. m_new - m - 1) is the neuron to split for the
    k-th added neuron (default ``k % m``), or ``None`` for a zero neuron with input weights
    ``zero_weights[k]`` (a (d,) vector or (d + 1,) with bias; default 0). ``ratios[k]`` (default 0.5) is the
    split ratio. Returns ``(wide_net, EmbeddingMap)`` composed of the individual steps."""
    _check_net(net)
    if isinstance(m_new, bool) or not isinstance(m_new, int) or m_new < net.m:
        raise InvalidInputError(f"m_new must be an integer >= m = {net.m}, got {m_new!r}")
    extra = m_new - net.m
    sources = [k % net.m for k in range(extra)] if sources is None else list(sources)
    ratios = [0.5] * extra if ratios is None else list(ratios)
    zero_weights = [None] * extra if zero_weights is None else list(zero_weights)
    if not (len(sources) == len(ratios) == len(zero_weights) == extra):
        raise InvalidInputError(f"sources, ratios and zero_weights need m_new - m = {extra} entries")
    P = net.n_parameters
    emb = EmbeddingMap(torch.eye(P, dtype=net.dtype, device=net.device),
                       torch.zeros(P, dtype=net.dtype, device=net.device), list(range(net.m)), "identity")
    cur = net
    for s, r, zw in zip(sources, ratios, zero_weights):
        if s is None:
            if zw is None:
                cur, step = add_zero_neuron(cur)
            else:
                zw = torch.as_tensor(zw, dtype=net.dtype, device=net.device).reshape(-1)
                if net.b is not None and zw.numel() == net.d + 1:
                    cur, step = add_zero_neuron(cur, zw[:-1], zw[-1])
                else:
                    cur, step = add_zero_neuron(cur, zw)
        else:
            if not 0 <= int(s) < net.m:
                raise InvalidInputError(f"sources entries must be neuron indices in [0, {net.m}) or None, got {s}")
            cur, step = split_neuron(cur, int(s), r)
        emb = emb.then(step)
    emb.kind = f"embed({net.m} -> {m_new})"
    return cur, emb


@dataclass
class EmbeddingCheck(Result):
    """What an embedding preserved, against the predictions of the module docstring."""

    max_function_difference: float
    loss_difference: float
    map_consistent: bool                 # wide.parameters_vector() == map(narrow.parameters_vector())
    gradient_pullback_difference: float  # |M^T grad L_wide(E theta) - grad L_narrow(theta)|_inf (autograd)
    narrow_verdict: str
    wide_verdict: str
    narrow_stationary: Optional[bool]
    wide_stationary: Optional[bool]
    predicted_stationary: Optional[bool]
    predicted_escape_neurons: list = field(default_factory=list)
    wide_escape_neurons: list = field(default_factory=list)
    predicted_verdict: Optional[str] = None
    consistent: bool = False
    details: dict = field(default_factory=dict)

    _summary_fields = ("max_function_difference", "loss_difference", "narrow_verdict", "wide_verdict",
                       "predicted_verdict", "consistent")


def check_embedding(net: ShallowNet, X, Y, wide: ShallowNet, emb: EmbeddingMap, atol: float = 1e-12,
                    **stationarity_kwargs) -> EmbeddingCheck:
    """Verify an embedding on data ``(X, Y)``: function values and loss equal (to ``atol``, relative to their
    scale), the parameter map, the autograd gradient pulled back (``M^T g_wide = g_narrow``), stationarity
    carried over, escape neurons and the verdict as predicted (module docstring)."""
    from relulab.landscape.kink_stationarity import _data, _h_vanishes, _model, directional_stationarity

    _check_net(net)
    _check_net(wide)
    X, Y = _data(net, X, Y)
    f0, f1 = net(X), wide(X)
    scale = 1.0 + float(f0.abs().max())
    dfun = float((f0 - f1).abs().max())
    dloss = float(abs(net.loss(X, Y) - wide.loss(X, Y)))
    mapped = emb(net.parameters_vector())
    map_ok = mapped.shape == wide.parameters_vector().shape and \
        bool(torch.allclose(mapped, wide.parameters_vector(), rtol=1e-14, atol=atol))
    rn = directional_stationarity(net, X, Y, **stationarity_kwargs)
    rw = directional_stationarity(wide, X, Y, **stationarity_kwargs)
    kink_rtol = stationarity_kwargs.get("kink_rtol", 1e-12)
    stat_rtol = stationarity_kwargs.get("stat_rtol", 1e-9)
    zero_atol = stationarity_kwargs.get("zero_atol", 0.0)
    # predictions from the narrow network's residuals: new zero-output neurons in the wide one
    mdl = _model(wide, X, Y, kink_rtol)
    new_zero = []
    if wide.trainable == "all":
        old_zero = set(rn.zero_output_neurons)
        for k, s in enumerate(emb.sources):
            if float(wide.a[k].abs().max()) <= zero_atol and not (s >= 0 and s in old_zero and k == s):
                new_zero.append(k)
    zero_preds = {k: not _h_vanishes(wide, mdl, k, stat_rtol)[0] for k in new_zero}
    pred_escape = sorted(set(rn.escape_neurons) | {k for k, e in zero_preds.items() if e})
    # stationarity: a copy k of neuron s has block derivative kappa phi_s(u), kappa of the sign of a_k . a_s,
    # phi_s(u) = 1/n sum_i (r_i . a_s) sigma'(z_is; x~_i . u) >= 0: kept unless kappa < 0 and phi_s != 0.
    # A zero neuron also needs sum_i r_i sigma(w . x~_i) = 0.
    pred_stat = rn.stationary
    if pred_stat:
        nmdl = _model(net, X, Y, kink_rtol)
        for k, s in enumerate(emb.sources):
            if s >= 0 and float(wide.a[k] @ net.a[s]) < 0:
                # the scale of the terms before r_i . a_s cancels them, else round-off looks large
                sc = float((nmdl.R.abs() @ net.a[s].abs() * nmdl.Xt.norm(dim=1)).sum() / nmdl.Xt.shape[0])
                if not _h_vanishes(net, nmdl, s, stat_rtol, nmdl.R @ net.a[s][:, None], scale=sc)[0]:
                    pred_stat = False
        Zs = wide.sigma(mdl.Z)
        for k, s in enumerate(emb.sources):
            if s < 0 and wide.trainable == "all":
                # dL/da_k = 1/n sum_i r_i sigma(z_ik), on the same 1/n scale as directional_stationarity
                if float((Zs[:, k] @ mdl.R).abs().max()) / Zs.shape[0] > stat_rtol * (mdl.scale + 1e-300):
                    pred_stat = False
    if pred_stat is False:
        pred_verdict = "not stationary"
    elif pred_stat is None:
        pred_verdict = None
    elif pred_escape:
        pred_verdict = "strict saddle"
    elif rn.verdict == "local minimum":
        pred_verdict = "local minimum" if (wide.o == 1 or wide.trainable == "first" or rn.loss <= rn.tolerance) \
            else None
    else:
        pred_verdict = None
    # autograd takes slope alpha on every kink: a smooth selection of L whose composition with the embedding
    # is the narrow one's, so the chain rule holds exactly for it
    gdiff = float((emb.matrix.T @ rw.gradient_autograd - rn.gradient_autograd).abs().max()) \
        if rn.gradient_autograd.numel() else 0.0
    gscale = 1.0 + float(rn.gradient_autograd.abs().max()) if rn.gradient_autograd.numel() else 1.0
    ok = dfun <= atol * scale and gdiff <= 1e-10 * gscale and dloss <= atol * (1.0 + float(net.loss(X, Y))) and map_ok \
        and (pred_stat is None or rw.stationary == pred_stat) \
        and (pred_verdict is None or rw.verdict == pred_verdict) \
        and (not pred_stat or sorted(rw.escape_neurons) == pred_escape)
    return EmbeddingCheck(dfun, dloss, map_ok, gdiff, rn.verdict, rw.verdict, rn.stationary, rw.stationary, pred_stat,
                          pred_escape, list(rw.escape_neurons), pred_verdict, bool(ok),
                          {"narrow": rn.to_dict(summary=True), "wide": rw.to_dict(summary=True)})
