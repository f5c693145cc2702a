"""Executors shared by every engine that fans work out: a local process pool and Ray.

* :func:`process_pool` -- a ``ProcessPoolExecutor`` whose workers run torch on one thread each (tasks
  run one per core; torch's own threads would oversubscribe) and die with their driver on Linux (no
  orphans computing for nobody after ``kill -9`` of the driver). Workers are forked on Linux (they
  share the driver's imported modules) and spawned elsewhere.
* :func:`connect_ray` -- the ``ray`` module, joined to a cluster or to a local instance it starts
  (start-up retried within a time budget); :class:`~relulab.core.extras.MissingExtraError` names the
  ``ray`` extra when Ray is not installed (:func:`require_ray`).

* :func:`map_tasks` -- ``fn(shared, task)`` for every task, in this process, on the local pool or on
  Ray, results in task order: what the engines that deal out independent pieces of one computation
  (split enumeration's cells, the facet engine's charts) run on.

The sweeps (:mod:`relulab.experiments.sweep`) and split enumeration (:mod:`relulab.regions.split`)
both run on these.
"""

from __future__ import annotations

import os
import socket
import sys
import time

from relulab.core.errors import InvalidInputError, RelulabError
from relulab.core.extras import require

__all__ = ["process_pool", "pool_context", "worker_init", "require_ray", "check_address", "start_timeout",
           "connect_ray", "map_tasks", "RAY_START_TIMEOUT"]

# a local Ray instance gets this long to start (Ray itself gives its raylet a fixed 30 s, which a
# loaded machine can exceed, so start-up is retried until this budget is spent)
RAY_START_TIMEOUT = 180.0


def worker_init() -> None:
    """Initializer of every pool worker: one torch thread, and (Linux) death with the driver."""
    import torch

    torch.set_num_threads(1)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        except OSError:
            pass


def pool_context():
    """The multiprocessing context of the pools: fork on Linux, spawn elsewhere."""
    import multiprocessing as mp

    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def process_pool(workers: int):
    """A ``ProcessPoolExecutor`` of ``workers`` processes started by :func:`pool_context` and
    initialized by :func:`worker_init` (use it as a context manager, or shut it down)."""
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(), initializer=worker_init)


def require_ray(what: str = "--ray"):
    """The ``ray`` module, or :class:`~relulab.core.extras.MissingExtraError` saying that ``what``
    needs the ``ray`` extra."""
    return require("ray", what)


def check_address(address: str) -> None:
    """A cluster address must answer on its port before anything starts (Ray would otherwise retry
    for a long time)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(f"--ray {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379), 'auto' or nothing")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise InvalidInputError(f"--ray {address!r}: the cluster does not answer ({e.strerror or e})") from None


def start_timeout(timeout) -> float:
    """The start-up budget: ``timeout``, else ``RELULAB_RAY_START_TIMEOUT``, else the default."""
    where = "ray_timeout"
    if timeout is None:
        env = os.environ.get("RELULAB_RAY_START_TIMEOUT")
        if not env:
            return RAY_START_TIMEOUT
        where = "RELULAB_RAY_START_TIMEOUT"
        try:
            timeout = float(env)
        except ValueError:
            raise InvalidInputError(f"{where} must be a number of seconds, got {env!r}") from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise InvalidInputError(f"{where} must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _retry_start(start, stop, timeout: float, clock=time.monotonic, sleep=time.sleep):
    """Call ``start()`` until it succeeds or ``timeout`` seconds have passed since the first call (an
    attempt begun in time runs to its end); ``stop()`` cleans up after each failure. Returns the
    number of attempts, or raises ``TimeoutError`` carrying the attempts and the last error."""
    t0 = clock()
    attempts = 0
    while True:
        attempts += 1
        try:
            start()
            return attempts
        except Exception as e:  # Ray raises plain exceptions for start-up failures
            stop()
            last = e
        if clock() - t0 >= timeout:
            err = TimeoutError(f"{attempts} attempt(s) in {clock() - t0:.0f} s; last: "
                               f"{(str(last).splitlines() or [type(last).__name__])[0]}")
            err.attempts = attempts
            raise err from None
        sleep(min(2.0, max(0.0, timeout - (clock() - t0))))


def connect_ray(address: str | None = None, workers: int | None = None, ray_timeout: float | None = None):
    """The ``ray`` module, initialized: join the cluster at ``address`` (``"auto"``: the one this
    machine runs, or ``RAY_ADDRESS``), or start a local instance with ``workers`` CPUs (every core by
    default). A local start is retried until ``ray_timeout`` seconds (default
    :data:`RAY_START_TIMEOUT`, or ``RELULAB_RAY_START_TIMEOUT``) have passed; then, or when a cluster
    does not let us join, one :class:`RelulabError` says what failed and what to do."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    timeout = start_timeout(ray_timeout)
    if address:
        check_address(address)
    kw = dict(address=address or None, num_cpus=None if address else workers, include_dashboard=False,
              logging_level="ERROR", log_to_driver=False)
    if address:
        try:
            ray.init(**kw)
        except Exception as e:
            ray.shutdown()
            raise RelulabError(f"--ray: could not join the Ray cluster at {address!r}: "
                               f"{(str(e).splitlines() or [type(e).__name__])[0]}") from None
        return ray
    # Ray waits for its GCS port for RAY_gcs_server_port_wait_time_s (default 30): give it the budget too
    env_key = "RAY_gcs_server_port_wait_time_s"
    saved = os.environ.get(env_key)
    if saved is None:
        os.environ[env_key] = str(max(30, int(timeout)))
    try:
        _retry_start(lambda: ray.init(**kw), ray.shutdown, timeout)
    except TimeoutError as e:
        raise RelulabError(
            f"--ray: a local Ray instance did not start within {timeout:.0f} s ({e}); on a busy machine give it "
            "longer (--ray-timeout SECONDS, or RELULAB_RAY_START_TIMEOUT), or start Ray yourself "
            "('ray start --head --num-cpus N') and pass --ray auto") from None
    finally:
        if saved is None:
            os.environ.pop(env_key, None)
    return ray


def _pool_call(args):
    fn, shared, task = args
    return fn(shared, task)


def _ray_call(fn, shared, task):
    # one task per core: torch's own threads would oversubscribe (in Ray's workers only; the
    # caller's thread setting is not ours to change)
    import torch

    torch.set_num_threads(1)
    return fn(shared, task)


def map_tasks(fn, tasks, shared=None, *, workers: int | None = 1, ray: bool = False, address: str | None = None,
              ray_timeout: float | None = None, progress=None, stage: str = "tasks") -> tuple[list, int]:
    """``[fn(shared, t) for t in tasks]`` in this process (``workers=1``), on a :func:`process_pool`
    of ``workers`` processes, or on Ray (``ray=True``: joined or started by :func:`connect_ray` with
    ``address``, ``workers`` and ``ray_timeout``; ``shared`` is put in Ray's object store once).
    ``fn`` must be a module-level function (it is pickled by reference). ``progress(done, total,
    stage=stage)`` is called as tasks finish. Returns the results in task order and the number of
    workers that ran them (Ray: the cluster's CPUs). An exception of a task is raised here."""
    from relulab.progress import notify

    n = len(tasks)
    if ray:
        rr = connect_ray(address, workers, ray_timeout)
        ref = rr.put(shared)
        remote = rr.remote(num_cpus=1)(_ray_call)
        refs = [remote.remote(fn, ref, t) for t in tasks]
        pending = list(refs)
        while pending:
            _, pending = rr.wait(pending, num_returns=1)
            notify(progress, n - len(pending), n, stage=stage)
        return rr.get(refs), int(rr.cluster_resources().get("CPU", 1))
    out = []
    if workers == 1:
        for t in tasks:
            out.append(fn(shared, t))
            notify(progress, len(out), n, stage=stage)
        return out, 1
    with process_pool(workers) as pool:
        for r in pool.map(_pool_call, [(fn, shared, t) for t in tasks]):
            out.append(r)
            notify(progress, len(out), n, stage=stage)
    return out, workers
