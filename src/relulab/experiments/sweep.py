"""Resumable sweeps: the product of parameter lists (and seeds) of a registered experiment, run as
independent tasks on a local process pool or on Ray, one Parquet file per task.

Spec (TOML)::

    experiment = "hanin-rolnick-regions"
    seeds = [0, 1, 2]            # optional: values of the experiment's ``seed`` field
    [parameters]
    depth = [1, 2, 3]            # a list, or one value
    width = [8, 16]

Everything is checked before the first task starts: the experiment exists, every parameter is one of
its configuration fields with values of the field's type, no list is empty, the output folder is
writable, Parquet support is installed, and a Ray address answers.

Resuming: a task's file name is a hash of its configuration (:mod:`relulab.experiments.store`), the
driver writes it atomically when the task returns, and a rerun skips tasks whose file exists. So a
killed driver loses only the tasks in flight (they run again), a killed worker is detected (broken
pool, or Ray's crash error) and its tasks run again on a fresh worker, and nothing is written twice.
A task that raises is recorded in ``failed/`` with its error and the sweep goes on; a rerun retries it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from relulab.core.errors import InvalidInputError
from relulab.core.executors import check_address, connect_ray, pool_context, process_pool, require_ray, start_timeout
from relulab.core.extras import require
from relulab.core.files import atomic_write
from relulab.experiments import registry, store

__all__ = ["SweepSpec", "SweepResult", "load_spec", "run_sweep", "summarize"]

# a task whose worker died this many times is recorded as failed instead of run again
MAX_CRASHES = 2


@dataclass
class SweepSpec:
    experiment: str
    grid: dict

    def points(self) -> list[dict]:
        # checked against the entry's metadata: the entry's module is imported only to run tasks
        return registry.expand_grid(registry.info(self.experiment), self.grid)

    def to_dict(self) -> dict:
        return {"experiment": self.experiment, "grid": self.grid}


def load_spec(source) -> SweepSpec:
    """A spec from a TOML file path, a TOML string (containing a newline) or a dict; checked fully."""
    if isinstance(source, dict):
        doc = source
    else:
        text = str(source)
        if "\n" not in text and not text.lstrip().startswith("experiment"):
            p = Path(text)
            if not p.is_file():
                raise InvalidInputError(f"spec {text!r}: no such file")
            text = p.read_text()
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            tomllib = require("tomli", "reading a TOML spec on Python 3.10")
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise InvalidInputError(f"spec is not valid TOML: {e}") from None
    extra = sorted(set(doc) - {"experiment", "parameters", "seeds"})
    if extra:
        raise InvalidInputError(f"spec: unknown key(s) {', '.join(extra)}; allowed: experiment, seeds, [parameters]")
    if not isinstance(doc.get("experiment"), str):
        raise InvalidInputError("spec: 'experiment' (the registered name, see 'relulab reproduce --list') is required")
    exp = registry.info(doc["experiment"])
    grid = dict(doc.get("parameters", {}))
    if not isinstance(doc.get("parameters", {}), dict):
        raise InvalidInputError("spec: [parameters] must be a table of parameter lists")
    if "seeds" in doc:
        if "seed" not in exp.fields:
            raise InvalidInputError(f"spec: experiment {exp.name!r} has no 'seed' parameter, so 'seeds' does not apply")
        if "seed" in grid:
            raise InvalidInputError("spec: give the seeds either as 'seeds' or as parameters.seed, not both")
        grid["seed"] = doc["seeds"]
    if not grid:
        raise InvalidInputError("spec: the grid is empty: give at least one parameter list under [parameters]")
    spec = SweepSpec(exp.name, grid)
    spec.points()  # every point typed and known, no empty list
    return spec


def _check_folder(out) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".relulab-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InvalidInputError(f"output folder {str(out)!r} is not writable ({e.strerror or e})") from None
    return out


@dataclass
class SweepResult:
    folder: str
    experiment: str
    total: int
    skipped: int
    ran: int
    failed: int
    rows: int
    seconds: float
    executor: str
    workers: int
    failures: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _Progress:
    """done / total, failures and time remaining on stderr (at most one line a second)."""

    def __init__(self, name: str, total: int, skipped: int, stream=None, every: float = 1.0):
        self.name, self.total, self.done, self.failed = name, total, skipped, 0
        self.skipped, self.t0, self.last, self.every = skipped, time.perf_counter(), 0.0, every
        self.stream = sys.stderr if stream is None else stream

    def update(self, ok: bool, force: bool = False) -> None:
        self.done += 1
        self.failed += not ok
        self.show(force)

    def show(self, force: bool = False) -> None:
        now = time.perf_counter()
        state = (self.done, self.failed)
        if state == getattr(self, "_shown", None) or (not force and now - self.last < self.every
                                                       and self.done < self.total):
            return
        self.last, self._shown = now, state
        ran = self.done - self.skipped
        left = self.total - self.done
        eta = "?" if ran == 0 else f"{(now - self.t0) / ran * left:.0f} s"
        print(f"sweep {self.name}: {self.done}/{self.total} done ({self.skipped} skipped), {self.failed} failed, "
              f"{eta} left", file=self.stream, flush=True)


def _run_one(name: str, params: dict):
    """Worker side: rows of one task, or the error text. Returns (ok, rows_or_error, seconds)."""
    t0 = time.perf_counter()
    try:
        rows = registry.get(name).run(params)
        return True, rows, time.perf_counter() - t0
    except Exception as e:  # recorded, never fatal to the sweep
        return False, f"{type(e).__name__}: {e}", time.perf_counter() - t0


def _pool_run(tasks: list, workers: int, record) -> None:
    """Run ``tasks`` [(tid, name, params)] on a process pool, calling ``record(tid, params, ok, value,
    seconds)``; a broken pool (a worker killed) is replaced and its in-flight tasks resubmitted."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    if pool_context().get_start_method() == "fork":
        # forked workers share the driver's modules: import the entries and torch once here rather than
        # in every worker (listing and checking the spec did not import them)
        import torch  # noqa: F401

        for name in {t[1] for t in tasks}:
            registry.get(name)
    crashes: dict[str, int] = {}
    todo = list(tasks)
    while todo:
        pool = process_pool(workers)
        futs = {}
        it = iter(todo)
        todo = []
        broken = False

        def submit_next() -> bool:
            nonlocal broken
            t = next(it, None)
            if t is None:
                return False
            try:
                futs[pool.submit(_run_one, t[1], t[2])] = t
            except BrokenProcessPool:  # a worker died since the last completion
                broken = True
                todo.append(t)
                return False
            return True

        # a bounded window keeps memory flat for large sweeps and lets a broken pool lose little
        for _ in range(2 * workers):
            if not submit_next():
                break
        try:
            while futs:
                done, _ = wait(list(futs), return_when=FIRST_COMPLETED)
                for f in done:
                    t = futs.pop(f)
                    try:
                        ok, value, sec = f.result()
                    except BrokenProcessPool:
                        broken = True
                        crashes[t[0]] = crashes.get(t[0], 0) + 1
                        if crashes[t[0]] >= MAX_CRASHES:
                            record(t[0], t[2], False, "worker process died (killed or crashed) "
                                   f"{crashes[t[0]]} times running this task", 0.0)
                        else:
                            todo.append(t)
                        continue
                    record(t[0], t[2], ok, value, sec)
                    if not broken:
                        submit_next()
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
        if broken:
            todo.extend(it)


def _ray_run(tasks: list, address: str | None, workers: int | None, record, ray_timeout=None) -> int:
    ray = connect_ray(address, workers, ray_timeout)
    remote = ray.remote(num_cpus=1, max_retries=MAX_CRASHES)(_run_one)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    window = max(2, 2 * cpus)
    pending, it = {}, iter(tasks)

    def submit_next():
        t = next(it, None)
        if t is not None:
            pending[remote.remote(t[1], t[2])] = t

    for _ in range(window):
        submit_next()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            t = pending.pop(ref)
            try:
                ok, value, sec = ray.get(ref)
            except Exception as e:  # the worker died more often than Ray retries
                ok, value, sec = False, f"{type(e).__name__}: {e}".splitlines()[0], 0.0
            record(t[0], t[2], ok, value, sec)
            submit_next()
    return cpus


def run_sweep(spec, out, *, workers: int | None = None, ray: bool = False, address: str | None = None,
              ray_timeout: float | None = None, progress: bool = True, stream=None) -> SweepResult:
    """Run (or resume) ``spec`` into folder ``out``; see the module docstring. ``workers``: local
    processes (default: every core) or, with ``ray=True``, the CPUs of a local Ray instance
    started here (retried for ``ray_timeout`` seconds, see :func:`relulab.core.executors.connect_ray`); ``address``: join
    that Ray cluster instead."""
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInputError(f"workers must be a positive integer, got {workers!r}")
    store._pq("relulab sweep")  # the parquet extra, before anything runs
    if ray:
        require_ray()
        start_timeout(ray_timeout)
        if address:
            check_address(address)
    out = _check_folder(out)
    manifest = out / "sweep.json"
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except ValueError:
            old = {}
        if old.get("experiment") not in (None, spec.experiment):
            raise InvalidInputError(f"{str(out)!r} holds a sweep of {old.get('experiment')!r}, not "
                                    f"{spec.experiment!r}: use another folder")
    with atomic_write(manifest, "w") as f:
        json.dump(spec.to_dict(), f, indent=1, default=list)
    points = spec.points()
    ids = [store.task_id(spec.experiment, p) for p in points]
    done = store.finished(out)
    tasks = [(tid, spec.experiment, p) for tid, p in zip(ids, points) if tid not in done]
    tasks = list({t[0]: t for t in tasks}.values())  # a grid listing a value twice is one task
    total = len(set(ids))
    bar = _Progress(spec.experiment, total, total - len(tasks), stream) if progress else None
    failed: list = []
    t0 = time.perf_counter()

    def record(tid, params, ok, value, sec):
        meta = {"experiment": spec.experiment, "params": params, "seconds": sec}
        if ok:
            store.write_rows(out, tid, value, meta)
        else:
            store.write_failure(out, tid, {**meta, "error": value})
            failed.append({"task": tid, "params": params, "error": value})
        if bar:
            bar.update(ok)

    n_workers = workers or os.cpu_count() or 1
    if bar:
        bar.show(force=True)
    if tasks:
        if ray:
            n_workers = _ray_run(tasks, address, workers, record, ray_timeout)
        else:
            _pool_run(tasks, min(n_workers, len(tasks)), record)
    if bar and tasks:
        bar.show(force=True)
    rows = store.row_count(out)
    return SweepResult(folder=str(out), experiment=spec.experiment, total=total, skipped=total - len(tasks),
                       ran=len(tasks), failed=len(failed), rows=rows, seconds=time.perf_counter() - t0,
                       executor="ray" if ray else "local", workers=n_workers, failures=failed)


def summarize(folder, report: bool = True) -> dict:
    """Merge a results folder into ``results.parquet`` / ``results.csv`` and (``report``) write
    ``report.html``; returns counts and the paths written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{str(folder)!r} is not a folder")
    info = store.merge(folder)
    info["files"] = ["results.parquet", "results.csv"]
    if report:
        from relulab.experiments.report import write_report

        write_report(folder)
        info["files"].append("report.html")
    return info
