"""Region gradients with proven rounding bounds, shared by the full-space engine's linear-region merge
and the split counts (equal affine maps are decided under these bounds, never a fixed tolerance)."""

from __future__ import annotations

import math

import torch

from relulab.core.plnet import PLNet


def abs_network(net: PLNet) -> PLNet | None:
    """The network with every weight replaced by its absolute value, or None when some max unit has a
    negative piece coefficient (abs, leaky ReLU with a negative slope): then a forced pattern can
    cancel paths and the abs network's Jacobian no longer bounds the path sums."""
    import copy

    if any(bool((m.coef[m.valid] < 0).any()) for m in net.max_units):
        return None
    try:
        mod = copy.deepcopy(net.to_torch())
        with torch.no_grad():
            for t in list(mod.parameters()) + list(mod.buffers()):
                if t.is_floating_point():
                    t.abs_()
        absnet = PLNet.from_torch(mod, tuple(net.input_shape))
    except Exception:  # a module that does not survive the change: no bound, and the result says so
        return None
    return absnet if absnet.n_units == net.n_units else None


def gradients_with_bounds(net: PLNet, xw: torch.Tensor, patterns: torch.Tensor):
    """Per region, the gradient of every output (R, d * m) under its pattern (evaluated at its witness), and a bound on the
    rounding error of each entry (None when no bound is available, see :func:`abs_network`).

    Every entry of the Jacobian of a region is a sum over input-output paths of products of weights
    and piece coefficients; computing it in float64 (any summation order) errs by at most
    ``gamma_K`` times the same sum with absolute values (Higham, Accuracy and Stability of Numerical
    Algorithms, 2nd ed., Sec. 3.1 and 3.5), ``K`` bounding the number of roundings along a path
    (the fan-ins summed over layers) and ``gamma_K = K u / (1 - K u)``, ``u = 2^-53``. The sum with
    absolute values is the Jacobian of the network with absolute weights under the same pattern."""
    R, d = xw.shape[0], net.input_dim
    eye = torch.eye(d, dtype=xw.dtype)  # shared by the batch: carried unbatched as far as possible
    A = net.trace(xw, directions=eye, pattern=patterns, record=False).output_tangent.reshape(R, -1)
    absnet = abs_network(net)
    if absnet is None:
        return A, None
    P = absnet.trace(xw, directions=eye, pattern=patterns, record=False).output_tangent.reshape(R, -1)
    K = 2 * len(net.nodes) + sum(math.prod(getattr(nd.layer, "in_shape", (1,))) for nd in net.nodes[1:])
    u = 2.0 ** -53
    # the factor 2 absorbs the rounding of the abs network's own pass
    return A, 2 * (K * u / (1 - K * u)) * P.abs()


def elementwise_chain(net: PLNet) -> bool:
    """Whether every node reads the node before it (affine maps and max layers in a chain, no sums)
    and every max unit is elementwise with two pieces ``c_0 z_j, c_1 z_j`` (ReLU, leaky ReLU, abs)."""
    from relulab.core.layers import Add

    if not net.max_units:
        return False
    for i, node in enumerate(net.nodes[1:], start=1):
        if isinstance(node.layer, Add) or list(node.inputs) != [i - 1]:
            return False
    return all(m.elementwise_units and int(m.valid.shape[1]) == 2 for m in net.max_units)


def active_units(net: PLNet, pat: torch.Tensor) -> torch.Tensor:
    """(R, n) for an :func:`elementwise_chain`: whether each unit's winning piece has a nonzero
    coefficient (its output ``c_w z_j`` is not identically zero)."""
    coef = torch.cat([m.coef for m in net.max_units]).to(pat.device)  # (n, 2)
    return coef[torch.arange(coef.shape[0], device=pat.device)[None], pat.long()] != 0


def constant_regions(net: PLNet, pat: torch.Tensor) -> torch.Tensor:
    """(R,) bool: regions on which the network is constant for a structural reason, exactly: in an
    :func:`elementwise_chain`, a max layer whose every winner is a zero piece outputs 0 on the whole
    region, so everything after it is constant (all False for other networks)."""
    if not elementwise_chain(net) or pat.shape[0] == 0:
        return torch.zeros(pat.shape[0], dtype=torch.bool, device=pat.device)
    act = active_units(net, pat)
    dead = torch.zeros(pat.shape[0], dtype=torch.bool, device=pat.device)
    for l in range(len(net.max_units)):
        dead |= ~act[:, net.layer_slice(l)].any(1)
    return dead


# Python-integer multiply-adds the exact settling of undecided equalities may spend (a few seconds)
EXACT_WORK = 3 * 10**7


def equal_gradients(net: PLNet, patterns: torch.Tensor, A: torch.Tensor, err, pairs: torch.Tensor,
                    budget: float = EXACT_WORK) -> tuple[torch.Tensor, bool]:
    """Which pairs ``(i, j)`` of regions (rows of ``pairs``) have equal gradients, and whether every
    answer is proven.

    ``A``, ``err``: the float64 gradients and their rounding bounds from :func:`gradients_with_bounds`.
    Gradients differing by more than the bound differ exactly. A difference inside the bound (even a
    float64 zero: two rounded values can agree while the exact ones differ), and every pair when there
    is no bound, is settled exactly: two regions on which the network is constant by their patterns
    (:func:`constant_regions`) have equal (zero) gradients; other pairs from the Jacobians of the two regions' patterns in rational
    arithmetic on the float64 weights (:func:`relulab.regions._exact.exact_map`). When that would exceed ``budget`` Python-integer multiply-adds, or the network's
    dense weights are too large for exact tables, the float64 answer stands (within the bound:
    equal) and the second value is False."""
    i, j = pairs[:, 0], pairs[:, 1]
    if pairs.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool, device=A.device), True
    diff = (A[i] - A[j]).abs()
    if err is None:
        same = (diff <= 1e-9 * (1 + A.abs().max())).all(1)
        todo = torch.ones_like(same)
    else:
        same = (diff <= err[i] + err[j]).all(1)
        todo = same
    if bool(todo.any()):
        # both regions constant by the pattern: equal (zero) gradients, no arithmetic needed
        flat = constant_regions(net, patterns.to(A.device) if patterns.device != A.device else patterns)
        both = todo & flat[i] & flat[j]
        same = same | both
        todo = todo & ~both
    if not bool(todo.any()):
        return same, True
    ti, tj = i[todo].cpu(), j[todo].cpu()
    regions = torch.unique(torch.cat([ti, tj]))
    from relulab.core.layers import Affine, Reshape

    per_map = (net.input_dim + 1) * sum(math.prod(nd.layer.in_shape) * math.prod(nd.layer.out_shape)
                                        for nd in net.nodes[1:]
                                        if isinstance(nd.layer, Affine) and not isinstance(nd.layer, Reshape))
    if regions.numel() * per_map > budget:
        return same, False
    from relulab.regions._exact import exact_map, exact_tables

    tabs = exact_tables(net)
    if tabs is None:
        return same, False
    maps = {}
    for r in regions.tolist():
        M, e = exact_map(net, tabs, patterns[r].cpu())
        maps[r] = (M[:, 1:], e)
    eq = []
    for a, b in zip(ti.tolist(), tj.tolist()):
        (Ma, ea), (Mb, eb) = maps[a], maps[b]
        E = max(ea, eb)
        eq.append(bool(((Ma * (1 << (E - ea))) == (Mb * (1 << (E - eb)))).all()))
    same = same.clone()
    same[todo] = torch.tensor(eq, dtype=torch.bool, device=same.device)
    return same, True
