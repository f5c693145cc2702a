"""Property test: the transfer-matrix count equals total-order brute force on random window families."""

from hypothesis import given, settings
from hypothesis import strategies as st

from relulab.combinatorics.maxpool import brute_force_orders, count_argmax_tuples


@settings(max_examples=40)
@given(st.integers(3, 7).flatmap(lambda n: st.lists(
    st.sets(st.integers(0, n - 1), min_size=1, max_size=4), min_size=1, max_size=5)))
def test_maxpool_counter_random_windows(windows):
    ws = [tuple(sorted(w)) for w in windows]
    assert count_argmax_tuples(ws) == brute_force_orders(ws)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5).flatmap(lambda r: st.tuples(st.just(r), st.integers(2 * r, 2 * r + 3),
                                                     st.integers(1, 4))))
def test_chain_closed_form_random_chains(rqm):
    # random chains of windows (q inputs each, consecutive windows sharing r, others disjoint, inputs
    # shuffled): the closed form equals acyclic-tuple brute force and the transfer matrix
    import random

    from relulab.combinatorics.maxpool import brute_force_tuples, chain_vertex_count

    r, q, m = rqm
    n = q + (m - 1) * (q - r)
    perm = list(range(n))
    random.Random(n * 31 + q).shuffle(perm)
    ws = [tuple(sorted(perm[i] for i in range(t * (q - r), t * (q - r) + q))) for t in range(m)]
    expected = chain_vertex_count(q, r, m)
    assert count_argmax_tuples(ws) == expected
    if q ** m <= 5_000:
        assert brute_force_tuples(ws) == expected
