"""The facet-representation engine of ``full_space`` (``method="facet"``) against independent references.

References (no code shared with the engine): Zaslavsky's count for hyperplanes in general position,
hand counts of degenerate arrangements, brute force over every activation pattern with an LP
feasibility test (scipy HiGHS), and the vertex engine on the same networks.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from torch import nn

import relulab
from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.regions import full_space
from relulab.regions._exact import exact_product_sum
from relulab.regions._lp_batch import OPTIMAL, lp_batch, lp_batch_dual


def mlp(widths, seed=0, act=nn.ReLU, bias=True):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1], bias=bias).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64) / math.sqrt(widths[i]))
            if bias:
                lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=torch.float64))
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers).eval()


def plnet(module, d):
    return relulab.PLNet.from_torch(module, (d,))


def zaslavsky(m, d):
    return sum(math.comb(m, i) for i in range(min(m, d) + 1))


def brute_force(net, box=None):
    """Every pattern whose region has interior (largest inscribed ball radius > 0, HiGHS)."""
    K = torch.cat([m.valid.sum(1) for m in net.max_units]).tolist()
    d = net.input_dim
    found = set()
    for p in itertools.product(*[range(k) for k in K]):
        G, h = net.region_inequalities(torch.tensor(p))
        G, h = G.numpy(), h.numpy()
        nrm = np.linalg.norm(G, axis=1)
        zero = nrm == 0
        if np.any(zero & (h < 0)):
            continue
        # identical pieces: the lower index wins, so a pattern taking the higher one is not realized
        if _ties_lose(net, p, zero & (h == 0)):
            continue
        G, h, nrm = G[~zero] / nrm[~zero, None], h[~zero] / nrm[~zero], np.ones(int((~zero).sum()))
        bounds = [(None, None)] * d + [(None, 1.0)]
        if box is not None:
            lo, hi = (np.full(d, float(v)) for v in box)
            bounds = list(zip(lo, hi)) + [(None, 1.0)]
            G = np.vstack([G, np.eye(d), -np.eye(d)])
            h = np.concatenate([h, -lo, hi])
            nrm = np.ones(G.shape[0])
        A = np.hstack([-G, nrm[:, None]])
        c = np.zeros(d + 1)
        c[-1] = -1
        res = linprog(c, A_ub=A if len(h) else None, b_ub=h if len(h) else None, bounds=bounds, method="highs")
        if res.status == 0 and res.x[-1] > 1e-9:
            found.add(p)
    return found


def _ties_lose(net, p, zero_rows):
    units = net.inequality_units().tolist()
    k = 0
    for l, layer in enumerate(net.max_units):
        npieces = layer.valid.sum(1).tolist()
        for j in range(layer.units):
            w = p[net.unit_offsets[l] + j]
            for o in [b for b in range(npieces[j]) if b != w]:
                if zero_rows[k] and o < w:
                    return True
                k += 1
    assert k == len(units)
    return False


def pattern_set(t):
    return {tuple(r) for r in t.tolist()}


def check_witnesses(net, res):
    """Witnesses have their region's pattern, with every unit's winner strictly ahead (exactly)."""
    x = res.interior_points
    assert pattern_set(net.pattern(x)) == pattern_set(res.patterns) or res.count == 0
    assert torch.equal(net.pattern(x).long(), res.patterns.long())


# ---------------------------------------------------------------------------------------- LP
def test_lp_batch_matches_highs_and_its_multipliers_certify():
    g = torch.Generator().manual_seed(3)
    B, n, m = 200, 14, 5
    A = torch.randn(B, n, m, generator=g, dtype=torch.float64)
    beta = torch.rand(B, n, generator=g, dtype=torch.float64)
    c = torch.randn(B, m, generator=g, dtype=torch.float64)
    z, obj, lam, st = lp_batch(A, beta, c)
    for i in range(B):
        res = linprog(c[i].numpy(), A_ub=A[i].numpy(), b_ub=beta[i].numpy(), bounds=[(None, None)] * m,
                      method="highs")
        if res.status == 3:
            assert st[i] != OPTIMAL
            continue
        assert st[i] == OPTIMAL
        assert abs(res.fun - float(obj[i])) <= 1e-8 * (1 + abs(res.fun))
        assert (A[i] @ z[i] - beta[i]).max() <= 1e-9
        # weak duality with the returned multipliers: c = -lam A, obj = -lam beta
        assert (lam[i] >= 0).all()
        assert torch.allclose(c[i], -(lam[i] @ A[i]), atol=1e-9)
        assert abs(float(obj[i] + lam[i] @ beta[i])) <= 1e-9


@pytest.mark.parametrize("d,n", [(2, 7), (4, 14), (8, 22)])
def test_lp_batch_dual_from_a_simplex_basis_matches_highs(d, n):
    # Chebyshev LPs of random polytopes inside a simplex: the simplex rows are a dual feasible start
    g = torch.Generator().manual_seed(d)
    B = 120
    from relulab.regions.space import _simplex_normals

    a = _simplex_normals(d, torch.float64, "cpu")
    gr = torch.randn(B, n, d, generator=g, dtype=torch.float64)
    gr[:, :d + 1] = -a
    gr = gr / gr.norm(dim=-1, keepdim=True)
    A = torch.cat([-gr, torch.ones(B, n, 1, dtype=torch.float64)], 2)
    beta = torch.rand(B, n, generator=g, dtype=torch.float64)
    beta[:, :d + 1] += 1.0
    perm = torch.argsort(torch.rand(B, n, generator=g), 1)
    A, beta = A.gather(1, perm[:, :, None].expand(-1, -1, d + 1)), beta.gather(1, perm)
    basis = torch.argsort(perm, 1)[:, :d + 1]
    c = torch.zeros(B, d + 1, dtype=torch.float64)
    c[:, -1] = -1.0
    z, obj, lam, st = lp_batch_dual(A, beta, c, basis)
    assert bool((st == OPTIMAL).all())
    for i in range(B):
        res = linprog(c[i].numpy(), A_ub=A[i].numpy(), b_ub=beta[i].numpy(), bounds=[(None, None)] * (d + 1),
                      method="highs")
        assert res.status == 0
        assert abs(res.fun - float(obj[i])) <= 1e-8 * (1 + abs(res.fun))
        assert (A[i] @ z[i] - beta[i]).max() <= 1e-9
        assert (lam[i] >= 0).all()
        assert torch.allclose(c[i], -(lam[i] @ A[i]), atol=1e-9)
        assert abs(float(obj[i] + lam[i] @ beta[i])) <= 1e-9
    # a start basis that is not dual feasible (its multipliers do not span 0) is refused, not solved wrongly
    bad = basis.clone()
    bad[:, 0] = torch.argsort(perm, 1)[:, d + 1]
    z2, obj2, lam2, st2 = lp_batch_dual(A, beta, c, bad)
    ok = st2 == OPTIMAL
    assert torch.allclose(obj2[ok], obj[ok], atol=1e-9)


# ---------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize("d,m", [(2, 6), (3, 7), (4, 7), (5, 8), (6, 8), (7, 9), (8, 9), (9, 9), (10, 9),
                                 (11, 9), (12, 9)])
def test_one_hidden_layer_matches_zaslavsky_up_to_d12(d, m):
    net = plnet(mlp([d, m, 1], seed=d * 31 + m), d)
    res = full_space(net, method="facet")
    assert res.complete and res.certified
    assert res.count == zaslavsky(m, d)
    check_witnesses(net, res)


@pytest.mark.parametrize("widths,seed", [([2, 4, 3, 1], 0), ([3, 3, 3, 2], 1), ([4, 4, 3, 1], 3)])
def test_deep_nets_against_brute_force_and_vertex_engine(widths, seed):
    net = plnet(mlp(widths, seed=seed), widths[0])
    res = full_space(net, method="facet")
    ref = brute_force(net)
    assert pattern_set(res.patterns) == ref
    assert full_space(net, method="vertex").count == res.count
    assert res.certified
    check_witnesses(net, res)


@pytest.mark.parametrize("box", [(-1.0, 1.0), (-1e9, 1e9), (-0.05, 0.3)])
def test_boxes_against_brute_force(box):
    net = plnet(mlp([3, 4, 3, 1], seed=5), 3)
    res = full_space(net, box=box, method="facet")
    assert pattern_set(res.patterns) == brute_force(net, box)
    assert res.domain == "box" and res.certified
    x = res.interior_points
    assert ((x > box[0]) & (x < box[1])).all()
    check_witnesses(net, res)


@pytest.mark.parametrize("act", ["leaky", "abs"])
def test_other_activations_match_vertex_engine(act):
    from relulab import nn as rnn

    module = mlp([3, 5, 4, 1], seed=7, act=(lambda: nn.LeakyReLU(0.1)) if act == "leaky" else rnn.Abs)
    net = plnet(module, 3)
    a, b = full_space(net, method="facet"), full_space(net, method="vertex")
    assert pattern_set(a.patterns) == pattern_set(b.patterns)
    check_witnesses(net, a)


def test_maxout_and_maxpool_match_vertex_engine():
    from relulab import nn as rnn

    torch.manual_seed(0)
    maxout = nn.Sequential(nn.Linear(3, 8), rnn.GroupMax(4), nn.Linear(2, 3), rnn.GroupMax(3), nn.Linear(1, 1)).double()
    net = plnet(maxout, 3)
    a, b = full_space(net, method="facet"), full_space(net, method="vertex")
    assert pattern_set(a.patterns) == pattern_set(b.patterns) == brute_force(net)
    pool = nn.Sequential(nn.Unflatten(1, (1, 6)), nn.MaxPool1d(3), nn.Flatten(), nn.Linear(2, 1)).double()
    netp = relulab.PLNet.from_torch(pool, (6,))
    # two pools of 3, each a 3-piece max: 3 x 3 regions. Every boundary passes through 0 and meets
    # the others at infinity: the facet engine proves its count or raises, and "auto" then falls
    # back to the vertex engine
    try:
        a = full_space(netp, method="facet")
        assert a.count == 9 and a.certified
        check_witnesses(netp, a)
    except DegenerateGeometryError:
        pass
    assert full_space(netp).count == full_space(netp, method="vertex").count == 9


# ---------------------------------------------------------------------------------------- degenerate
def _net_from(W, b, d):
    lin = nn.Linear(d, W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W, dtype=torch.float64))
        lin.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return plnet(nn.Sequential(lin, nn.ReLU(), nn.Linear(W.shape[0], 1).double()), d)


@pytest.mark.parametrize("W,b,count", [
    # three concurrent planes through 0 in R^5 (rank 3 normals): 6 regions
    (np.array([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0], [1.0, 1.0, 0, 0, 0]]), [0.0, 0.0, 0.0], 6),
    # two parallel planes and one crossing, in R^5: 6 regions
    (np.array([[1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]]), [0.0, -1.0, 0.0], 6),
    # a duplicated neuron: 2 planes, 4 regions
    (np.array([[1.0, 2.0, 0, 0, 0], [1.0, 2.0, 0, 0, 0], [0, 0, 1.0, 0, 0]]), [0.5, 0.5, 0.0], 4),
    # a dead neuron (zero weights, negative bias) and one plane: 2 regions
    (np.array([[0.0, 0, 0, 0, 0], [0, 0, 0, 1.0, 0]]), [-1.0, 0.25], 2),
])
def test_degenerate_arrangements_exactly(W, b, count):
    net = _net_from(W, b, 5)
    res = full_space(net, method="facet")
    assert res.count == count and res.certified
    assert res.count == full_space(net, method="vertex").count
    check_witnesses(net, res)


def test_bias_free_deep_net_is_exact():
    """All boundaries through the origin (a central arrangement, every cell touching 0 and
    infinity): every touching decision goes through exact arithmetic."""
    net = plnet(mlp([5, 4, 3, 1], seed=11, bias=False), 5)
    res = full_space(net, method="facet")
    assert res.certified
    assert pattern_set(res.patterns) == brute_force(net)
    assert res.stats["exact_certificates"] > 0
    check_witnesses(net, res)


def test_thin_slab_is_counted_or_raised():
    """Parallel walls 1e-13 apart in R^5: float64 cannot separate them at the box's scale; the
    count is exact (witness proven) or the engine raises."""
    W = np.array([[1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]])
    net = _net_from(W, [0.0, -1e-13, 0.0], 5)
    try:
        res = full_space(net, method="facet")
    except DegenerateGeometryError:
        return
    assert res.count == 6 and res.certified
    check_witnesses(net, res)


# ---------------------------------------------------------------------------------------- budgets
def test_time_limit_in_d12_box_returns_regions_found_so_far():
    net = plnet(mlp([12, 24, 24, 1], seed=0), 12)
    res = full_space(net, box=(-1.0, 1.0), time_limit=2.0)
    assert not res.complete and res.stopped_by == "time_limit" and not res.certified
    assert res.count > 0
    check_witnesses(net, res)


@pytest.mark.parametrize("widths,charts", [([6, 5, 4, 1], "pyramids"), ([6, 8, 5, 1], "orthants")])
def test_max_regions_and_memory_budget(widths, charts):
    net = plnet(mlp(widths, seed=4), 6)
    full = full_space(net, method="facet")
    assert full.stats["charts"] == charts and full.certified
    part = full_space(net, method="facet", max_regions=50)
    assert part.count == 50 and part.stopped_by == "max_regions" and not part.complete
    assert pattern_set(part.patterns) <= pattern_set(full.patterns)
    check_witnesses(net, part)
    small = full_space(net, method="facet", memory_budget=1e4)
    assert small.stopped_by == "memory" and not small.complete
    assert pattern_set(small.patterns) <= pattern_set(full.patterns)


def test_auto_method_and_validation():
    net = plnet(mlp([6, 5, 1], seed=1), 6)
    res = full_space(net)
    assert res.stats.get("method") == "facet" and res.linear_count is None and res.bounded is None
    assert full_space(net, neighbours=True).neighbours is not None  # the vertex engine
    with pytest.raises(InvalidInputError, match="method"):
        full_space(net, method="lp")
    with pytest.raises(InvalidInputError, match="neighbours"):
        full_space(net, method="facet", neighbours=True)
    low = full_space(plnet(mlp([3, 5, 1], seed=1), 3))
    assert low.stats.get("method") != "facet" and low.linear_count is not None


@settings(max_examples=8, deadline=None)
@given(d=st.integers(2, 4), w1=st.integers(1, 4), w2=st.integers(0, 3), seed=st.integers(0, 10**6),
       scale=st.sampled_from([1.0, 1e-3, 1e4]))
def test_random_nets_against_brute_force(d, w1, w2, seed, scale):
    widths = [d, w1] + ([w2] if w2 else []) + [1]
    module = mlp(widths, seed=seed)
    with torch.no_grad():
        module[0].bias.mul_(scale)
    net = plnet(module, d)
    res = full_space(net, method="facet")
    assert pattern_set(res.patterns) == brute_force(net)
    assert res.certified
    check_witnesses(net, res)


def test_exact_reference_helper_is_exact():
    # the brute force trusts HiGHS; the engine's own exact arithmetic is checked here on a case
    # float64 gets wrong: (1e16 + 1) - 1e16 - 1 == 0 exactly
    num, _ = exact_product_sum([[1e16], [1.0], [-1e16], [-1.0]])
    assert num == 0


# ------------------------------------------------------------------- dedup and LP-free answers
def test_multiword_keys_and_hash_collisions_keep_every_region(monkeypatch):
    """Over 62 units the patterns take several int64 words; with every hash equal (all collide)
    the exact word comparison alone must still keep each region once."""
    import relulab.regions._enum_lp as E

    net = plnet(mlp([2, 32, 32, 1], seed=3), 2)
    assert net.n_units > 62
    ref = full_space(net, method="vertex", certify=False)
    res = full_space(net, method="facet")
    assert res.complete and pattern_set(res.patterns) == pattern_set(ref.patterns)
    assert res.count == ref.count == len(pattern_set(res.patterns))
    monkeypatch.setattr(E.LPEngine, "_hash", lambda self, keys: torch.zeros(keys.shape[0], dtype=torch.long))
    again = full_space(net, method="facet")
    assert again.count == res.count and pattern_set(again.patterns) == pattern_set(res.patterns)
    check_witnesses(net, again)


def test_simplex_answers_like_the_lps(monkeypatch):
    """"No" answers proven from a cell's enclosing simplex (no LP) give the same regions as the LPs
    alone, with proven witnesses; the simplices do answer some of them."""
    import relulab.regions._enum_lp as E

    net = plnet(mlp([5, 6, 4, 1], seed=5), 5)
    res = full_space(net, method="facet")
    assert res.stats["simplex_no"] > 0
    monkeypatch.setattr(E, "USE_SIMPLEX", False)
    ref = full_space(net, method="facet")
    assert ref.stats["simplex_no"] == 0 and ref.stats["lps"] > res.stats["lps"]
    assert pattern_set(res.patterns) == pattern_set(ref.patterns) == brute_force(net)
    check_witnesses(net, res)


@pytest.mark.parametrize("act", ["relu", "leaky", "abs", "negleaky"])
def test_sign_answers_like_the_lps(monkeypatch, act):
    """"No" answers proven by exact weight signs (a unit's pre-activation a non-positive combination
    of the previous layer's rows and the constant, no LP) give the same regions as the LPs alone."""
    import relulab.regions._enum_lp as E
    from relulab import nn as rnn

    acts = {"relu": nn.ReLU, "leaky": lambda: nn.LeakyReLU(0.1), "abs": rnn.Abs, "negleaky": lambda: nn.LeakyReLU(-0.5)}
    module = mlp([3, 5, 4, 1], seed=21, act=acts[act])
    with torch.no_grad():
        # make some second-layer units sign-definite on many cells
        module[2].weight[:2] = -module[2].weight[:2].abs()
        module[2].bias[:2] = -module[2].bias[:2].abs()
        module[2].weight[2] = module[2].weight[2].abs()
        module[2].bias[2] = module[2].bias[2].abs() + 0.1
    net = plnet(module, 3)
    res = full_space(net, method="facet")
    assert res.certified
    if act == "relu":
        assert res.stats["sign_no"] > 0
    monkeypatch.setattr(E, "USE_SIGNS", False)
    ref = full_space(net, method="facet")
    assert ref.stats["sign_no"] == 0 and ref.certified
    assert pattern_set(res.patterns) == pattern_set(ref.patterns) == brute_force(net)
    check_witnesses(net, res)


def test_identity_solver_exact_on_identities_and_near_identities():
    """The input-space identity test accepts exactly the vectors that a nonnegative combination of
    the rows cancels: an identity, not a near-identity one unit off in the constant, not one that
    needs a negative multiplier (reference: the identity built from known multipliers)."""
    from relulab.regions._enum_lp import solve_identities

    big = 1 << 120
    r1, r2, r3 = [big + 7, 3, -5 * big, 11], [-2, big, 9, -big], [5, 5, big // 3, 1]
    q = [-(a + 2 * b + 3 * c) for a, b, c in zip(r1, r2, r3)]
    near = [q[0] + 1] + q[1:]  # F = 1 identically: not an identity (p_a - p_b > p_b - p_b somewhere)
    neg = [-(a - 2 * b + 3 * c) for a, b, c in zip(r1, r2, r3)]  # needs lam_2 = -2
    s = [1, 0, 0, 0]
    q1 = [-2 * a + b for a, b in zip(r1, r3)]  # q1 + q2 = -3 r1: nu = (1/2, 1/2), lam = 3/2
    q2 = [-a - b for a, b in zip(r1, r3)]
    cases = [([r1, r2, r3], [q], True), ([r1, r2, r3, s], [q], True), ([r1, r2, r3], [near], False),
             ([r1, r2, r3, s], [near], False), ([r1, r2, r3], [neg], False), ([s], [[-1, 0, 0, 0]], True),
             ([s], [[1, 0, 0, 0]], False), ([r1, r2, r3, s], [[v - 5 for v in q]], False), None,
             ([r1], [q1, q2], True), ([r1, r2, r3], [q, near], False)]
    want = [c[2] if c else False for c in cases]
    assert solve_identities([c[:2] if c else None for c in cases], 3) == want
    # random identities and near-identities (one unit off) against Gauss-Jordan over Fractions
    g = np.random.default_rng(3)
    systems, want = [], []
    while len(systems) < 80:
        n = int(g.integers(1, 5))
        rows = [[int(v) << int(g.integers(0, 90)) for v in g.integers(-9, 10, 4)] for _ in range(n)]
        lam = [int(v) for v in g.integers(1, 7, n)]
        q = [-sum(l_ * r[k] for l_, r in zip(lam, rows)) for k in range(4)]
        if len(systems) % 2:
            q[int(g.integers(0, 4))] += 1
        ref = _fraction_combination(rows, [-v for v in q])
        if ref == "dependent":
            continue
        systems.append((rows, [q]))
        want.append(ref is not None and all(v >= 0 for v in ref))
    got = solve_identities(systems, 3)
    assert got == want and 20 <= sum(want) <= 60


def _fraction_combination(cols, v):
    """The unique ``lam`` with ``sum lam_i cols_i = v`` (Fractions), None if there is none, or
    "dependent" when the columns are linearly dependent."""
    from fractions import Fraction

    m, n = len(v), len(cols)
    A = [[Fraction(cols[j][i]) for j in range(n)] + [Fraction(v[i])] for i in range(m)]
    r = 0
    for c in range(n):
        p = next((i for i in range(r, m) if A[i][c] != 0), None)
        if p is None:
            return "dependent"
        A[r], A[p] = A[p], A[r]
        A[r] = [x / A[r][c] for x in A[r]]
        for i in range(m):
            if i != r and A[i][c] != 0:
                A[i] = [x - A[i][c] * y for x, y in zip(A[i], A[r])]
        r += 1
    if any(A[i][n] != 0 for i in range(r, m)):
        return None
    return [A[i][n] for i in range(n)]


@pytest.mark.parametrize("orthants", [True, False])
def test_identity_answers_are_proven_by_the_exact_lp(monkeypatch, orthants):
    """Every "no" proven by an input-space identity is confirmed by the exact largest-margin LP in
    rational arithmetic (no identity involved), on a deep net where the identities occur; and no
    identity is found among a cell's rows for a decision whose part is open (a "yes" of the LPs).
    Counts equal those of the chart certificates alone and of brute force."""
    import relulab.regions._enum_lp as E

    monkeypatch.setattr(E, "USE_ORTHANTS", orthants)
    checked = {"no": 0, "yes": 0, "all": 0}
    pending = []
    orig_sys = E.LPEngine._identity_system
    orig_solve = E.solve_identities
    orig_chunk = E.LPEngine._piece_lps_chunk

    def identity_system(self, u, a, pat, lr, lq, b, k):
        pending.append((self, u, a, pat, b))
        return orig_sys(self, u, a, pat, lr, lq, b, k)

    def solve(systems, d):
        out = orig_solve(systems, d)
        assert len(out) == len(pending)
        for (eng, u, a, pat, b), ok in zip(pending, out):
            checked["all"] += ok
            if ok and checked["no"] < 40:
                c = int(np.flatnonzero((b["pat"].long().cpu().numpy() == pat).all(1))[0])
                t = torch.tensor
                assert eng._exact_interior(0, t([c]), t([u]), t([a]), b) is None
                checked["no"] += 1
        pending.clear()
        return out

    g = np.random.default_rng(0)

    def chunk(self, R, ER, P, EP, b, cell, unit, piece, valid, check):
        out = orig_chunk(self, R, ER, P, EP, b, cell, unit, piece, valid, check)
        pats = b["pat"].long().cpu().numpy()
        nc = self.charts.rows.shape[1]
        for i in out[0].nonzero().squeeze(1).tolist()[:20]:
            live = (R[int(cell[i])].abs().sum(-1) > 0).cpu().numpy()
            live[:nc] = False
            live[self.d] = True
            for _ in range(3):
                lr = np.zeros(R.shape[1])
                pick = g.permutation(np.flatnonzero(live))[:self.d + 1]
                lr[pick] = 1.0
                lq = np.ones(P.shape[2])
                lq[int(piece[i])] = 0.0
                sy = orig_sys(self, int(unit[i]), int(piece[i]), pats[int(cell[i])], lr, lq, b, int(b["ch"][int(cell[i])]))
                assert sy is not None and orig_solve([sy], self.d) == [False]
                checked["yes"] += 1
        return out

    monkeypatch.setattr(E.LPEngine, "_identity_system", identity_system)
    monkeypatch.setattr(E, "solve_identities", solve)
    monkeypatch.setattr(E.LPEngine, "_piece_lps_chunk", chunk)
    net = plnet(mlp([3, 4, 4, 3, 1], seed=1), 3)
    res = full_space(net, method="facet")
    assert res.complete and res.certified and res.stats["charts"] == ("orthants" if orthants else "pyramids")
    assert checked["no"] > 0 and checked["yes"] > 0 and res.stats["identities"] == checked["all"]
    monkeypatch.setattr(E.LPEngine, "_piece_lps_chunk", orig_chunk)
    monkeypatch.setattr(E, "USE_IDENTITY", False)
    ref = full_space(net, method="facet")
    assert ref.stats["identities"] == 0 and ref.certified
    assert pattern_set(res.patterns) == pattern_set(ref.patterns) == brute_force(net)
    check_witnesses(net, res)


def test_identities_shared_across_charts_are_proven_by_the_exact_lp(monkeypatch):
    """A "no" proven by an input-space identity in one chart's cell of a region answers the same
    decision in the region's cells of the other charts (no LP): each such answer is confirmed by the
    exact largest-margin LP of that cell, and the regions equal those found without sharing and by
    brute force. A time limit keeps the batches small, so that the charts' cells come one after
    another."""
    import relulab.regions._enum_lp as E

    monkeypatch.setattr(E, "USE_ORTHANTS", False)  # a region lies in one orthant chart: nothing to share
    checked = {"n": 0}
    orig = E.LPEngine._known_no

    def known_no(self, b, cell, unit, piece):
        hit = orig(self, b, cell, unit, piece)
        for i in hit.nonzero().squeeze(1).tolist():
            if checked["n"] < 40:
                assert self._exact_interior(i, cell, unit, piece, b) is None
            checked["n"] += 1
        return hit

    monkeypatch.setattr(E.LPEngine, "_known_no", known_no)
    net = plnet(mlp([3, 4, 4, 3, 1], seed=1), 3)
    res = full_space(net, method="facet", time_limit=1e4)
    assert res.complete and res.certified
    assert res.stats["shared_no"] > 0 and checked["n"] >= res.stats["shared_no"]
    monkeypatch.setattr(E, "USE_SHARED_NO", False)
    ref = full_space(net, method="facet", time_limit=1e4)
    assert ref.stats["shared_no"] == 0 and ref.certified and ref.stats["lps"] > res.stats["lps"]
    assert pattern_set(res.patterns) == pattern_set(ref.patterns) == brute_force(net)
    check_witnesses(net, res)
