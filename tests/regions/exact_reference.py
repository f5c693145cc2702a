"""Exact references shared by the region tests: activation patterns in rational arithmetic."""

from __future__ import annotations

import torch


def exact_patterns(net, a, b, ts):
    """Activation patterns at ``a + t (b - a)`` in exact rational arithmetic on the float64 weights
    (ties to the lowest index): the reference where float64 ``net.pattern`` rounds."""
    from fractions import Fraction as Fr

    from relulab.core.layers import Add, MaxUnits

    tabs = {}
    for i, nd in enumerate(net.nodes[1:], 1):
        if not isinstance(nd.layer, (Add, MaxUnits)):
            W, c = nd.layer.dense()
            tabs[i] = ([[Fr(w) for w in row] for row in W.tolist()], [Fr(x) for x in c.tolist()])
    out = []
    for t in ts:
        t = Fr(t)
        vals = {0: [Fr(x) + t * (Fr(y) - Fr(x)) for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist())]}
        pat = []
        for i, nd in enumerate(net.nodes[1:], 1):
            lay = nd.layer
            if isinstance(lay, Add):
                vals[i] = [p + q for p, q in zip(vals[nd.inputs[0]], vals[nd.inputs[1]])]
            elif isinstance(lay, MaxUnits):
                z = vals[nd.inputs[0]]
                row = []
                for idx, cf, vd in zip(lay.index.tolist(), lay.coef.tolist(), lay.valid.tolist()):
                    p = [Fr(c) * z[j] for j, c, v in zip(idx, cf, vd) if v]
                    row.append(max(p))
                    pat.append(p.index(max(p)))
                vals[i] = row
            else:
                W, c = tabs[i]
                z = vals[nd.inputs[0]]
                vals[i] = [sum(w * x for w, x in zip(r, z)) + ci for r, ci in zip(W, c)]
        out.append(pat)
    return torch.tensor(out)
