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
