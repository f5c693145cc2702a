"""Thread counts chosen by the engines for the size of the work.

Many of relulab's inner operations are small (a few thousand elements): with torch's default
intra-op threads they spend most of their time waking and synchronizing threads, and on a machine
where other processes compete for the cores they can run 10-20x slower than on one thread. Engines
wrap such loops in :func:`threads_for` so that a user's default settings are the fast ones.

The same waiting makes large operations slow when the machine is already busy: with the load average
at or above the number of cores, a thread that reaches a barrier waits for a peer the scheduler has
parked, and a plane partition that takes 3.6 CPU s on one thread took 34 CPU s on two (load 12 on 2
cores). Engines therefore also use one thread while the machine is busy.
"""

from __future__ import annotations

import contextlib
import os
import threading

import torch

# below this many elements per operation one thread wins on every machine measured
SMALL_WORK = 1 << 16

_LOCK = threading.Lock()


def machine_busy() -> bool:
    """Whether the 1-minute load average is at least the number of cores (False where the platform
    has no load average)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return load >= (os.cpu_count() or 1)


@contextlib.contextmanager
def threads_for(elements_per_op: int, limit: int | None = None):
    """Run the enclosed block on one torch thread when its typical operation touches fewer than
    ``SMALL_WORK`` elements or the machine is busy (:func:`machine_busy`), else on the caller's
    setting (capped at ``limit`` if given).

    The previous thread count is restored on exit. A caller that set its own count with
    ``torch.set_num_threads(1)`` keeps it (one is never raised)."""
    before = torch.get_num_threads()
    want = 1 if elements_per_op < SMALL_WORK or machine_busy() else before
    if limit is not None:
        want = max(1, min(want, int(limit)))
    if want == before:
        yield
        return
    with _LOCK:
        torch.set_num_threads(want)
    try:
        yield
    finally:
        with _LOCK:
            torch.set_num_threads(before)
