"""threads_for: one torch thread for small work or on a busy machine, the caller's setting otherwise."""

import os

import pytest
import torch

import relulab.core.threads as threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("busy, work, inside", [(False, 10, 1), (False, 1 << 20, 2), (True, 1 << 20, 1),
                                                (True, 10, 1)])
def test_threads_for_choice_and_restore(monkeypatch, two_threads, busy, work, inside):
    monkeypatch.setattr(threads, "machine_busy", lambda: busy)
    with threads.threads_for(work):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == 2


def test_machine_busy_follows_the_load_average(monkeypatch):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 0.5, 0.0, 0.0))
    assert threads.machine_busy()
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.5, 0.0, 0.0))
    assert not threads.machine_busy()

    def unavailable():
        raise OSError("no load average")

    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert not threads.machine_busy()
