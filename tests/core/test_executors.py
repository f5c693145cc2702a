"""The executors in core: the pool and Ray plumbing shared by sweeps and split enumeration."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_executors_do_not_import_the_experiments_or_the_engines():
    code = ("import sys, relulab.core.executors as e; e.pool_context(); "
            "bad = [m for m in sys.modules if m.startswith(('relulab.experiments', 'relulab.regions'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def _threads(_):
    import torch

    return torch.get_num_threads()


def test_pool_workers_run_one_torch_thread():
    import torch

    from relulab.core.executors import pool_context, process_pool

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what forked workers would inherit without the initializer
    try:
        if pool_context().get_start_method() == "fork":
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(1, mp_context=pool_context()) as plain:
                assert plain.submit(_threads, 0).result() == 2
        with process_pool(2) as pool:
            assert list(pool.map(_threads, range(4))) == [1, 1, 1, 1]
    finally:
        torch.set_num_threads(before)


def test_moved_names_say_where_they_went():
    import relulab.experiments as ex
    from relulab.core import executors

    with pytest.raises(AttributeError, match=r"relulab\.core\.executors\.connect_ray"):
        ex.connect_ray  # noqa: B018
    from relulab.core.extras import MissingExtraError

    # the old import path of the error stays the same class (engines and users catch it)
    assert ex.MissingExtraError is MissingExtraError
    assert "connect_ray" in executors.__all__


def test_missing_ray_is_named(monkeypatch):
    from relulab.core.executors import connect_ray
    from relulab.core.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"--ray needs .*relulab\[ray\]"):
        connect_ray()


@pytest.mark.parametrize("address", ["nohostport", "host:port"])
def test_bad_cluster_addresses_are_refused(address):
    from relulab.core.errors import InvalidInputError
    from relulab.core.executors import check_address

    with pytest.raises(InvalidInputError, match="HOST:PORT"):
        check_address(address)
