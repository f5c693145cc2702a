"""Sweeps: spec checks, resume, failures, kill -9 of the driver and of a worker, local pool vs Ray."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relulab.core.errors import InvalidInputError
from relulab.experiments import store
from relulab.experiments.sweep import run_sweep, summarize

pytest.importorskip("pyarrow")

SRC = str(Path(__file__).resolve().parents[2] / "src")


def spec(tmp_path, body: str, name="spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


def table(folder):
    t = store.read_table(folder).drop_columns(["task"]).to_pylist()
    return sorted(t, key=lambda r: json.dumps(r, sort_keys=True))


def test_sweep_runs_the_product_and_resumes(tmp_path):
    s = spec(tmp_path, 'experiment = "calibration"\nseeds = [0, 1]\n[parameters]\nindex = [1, 2, 3]\n')
    err = io.StringIO()
    r = run_sweep(s, tmp_path / "out", workers=2, stream=err)
    assert (r.total, r.ran, r.failed, r.rows) == (6, 6, 0, 6)
    rows = table(tmp_path / "out")
    assert sorted((x["index"], x["seed"], x["value"]) for x in rows) == sorted(
        (i, s_, i * i + s_) for i in (1, 2, 3) for s_ in (0, 1))
    assert "6/6 done" in err.getvalue() and "0 failed" in err.getvalue()
    again = run_sweep(s, tmp_path / "out", workers=2, stream=io.StringIO())
    assert (again.skipped, again.ran, again.rows) == (6, 0, 6)
    # a wider grid runs only the new points
    s2 = spec(tmp_path, 'experiment = "calibration"\nseeds = [0, 1]\n[parameters]\nindex = [1, 2, 3, 4]\n', "s2.toml")
    more = run_sweep(s2, tmp_path / "out", workers=2, stream=io.StringIO())
    assert (more.skipped, more.ran, more.rows) == (6, 2, 8)
    info = summarize(tmp_path / "out")
    assert info["rows"] == 8 and (tmp_path / "out" / "report.html").is_file()
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "out" / "results.parquet").num_rows == 8


def test_failing_task_is_recorded_and_the_sweep_goes_on(tmp_path):
    s = spec(tmp_path, 'experiment = "calibration"\n[parameters]\nindex = [1, 2]\nfail = [false, true]\n')
    err = io.StringIO()
    r = run_sweep(s, tmp_path / "o", workers=2, stream=err)
    assert (r.total, r.failed, r.rows) == (4, 2, 2)
    assert "4/4 done (0 skipped), 2 failed, 0 s left" in err.getvalue().splitlines()[-1]
    fails = store.failures(tmp_path / "o")
    assert len(fails) == 2 and all("failed on purpose" in f["error"] for f in fails.values())
    assert all(f["params"]["fail"] for f in fails.values())


@pytest.mark.parametrize("body, match", [
    ('experiment = "nope"\n[parameters]\nindex = [1]\n', "unknown experiment 'nope'"),
    ('experiment = "calibration"\n[parameters]\nindx = [1]\n', "no parameter.*'indx'"),
    ('experiment = "calibration"\n[parameters]\nindex = ["1"]\n', "'index' must be int"),
    ('experiment = "calibration"\n[parameters]\nindex = []\n', "empty list"),
    ('experiment = "calibration"\n', "grid is empty"),
    ('experiment = "calibration"\nworkers = 3\n[parameters]\nindex = [1]\n', "unknown key"),
    ('experiment = "calibration"\n[parameters\n', "not valid TOML"),
])
def test_bad_specs_fail_before_any_task(tmp_path, body, match):
    with pytest.raises(InvalidInputError, match=match):
        run_sweep(spec(tmp_path, body), tmp_path / "o", workers=1)
    assert not (tmp_path / "o" / "tasks").exists()


def test_unwritable_folder_and_dead_cluster_fail_before_any_task(tmp_path):
    s = spec(tmp_path, 'experiment = "calibration"\n[parameters]\nindex = [1]\n')
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError, match="not writable"):
        run_sweep(s, blocker / "sub", workers=1)
    if importlib.util.find_spec("ray"):
        with pytest.raises(InvalidInputError, match="does not answer"):
            run_sweep(s, tmp_path / "o", ray=True, address="127.0.0.1:9")
        assert not (tmp_path / "o").exists()


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "relulab", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_kill_driver_then_resume(tmp_path):
    n = 24
    s = spec(tmp_path, f'experiment = "calibration"\n[parameters]\nindex = {list(range(n))}\nsleep = [0.25]\n')
    out = tmp_path / "o"
    p = _cli("sweep", str(s), "--out", str(out), "--workers", "2")
    deadline = time.time() + 120
    while len(store.finished(out)) < 4 and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = store.read_table(out).num_rows
    assert 4 <= before < n, "the kill must land mid-sweep"
    time.sleep(0.5)  # workers die with the driver (PDEATHSIG); nothing more may appear
    assert store.read_table(out).num_rows == len(store.finished(out))
    q = _cli("sweep", str(s), "--out", str(out), "--workers", "2", "--json")
    stdout, stderr = q.communicate(timeout=120)
    assert q.returncode == 0, stderr
    doc = json.loads(stdout)
    assert doc["skipped"] >= before and doc["skipped"] + doc["ran"] == n
    rows = table(out)
    assert len(rows) == n and sorted(r["index"] for r in rows) == list(range(n))


def test_killed_worker_is_replaced_and_nothing_is_lost(tmp_path):
    marker = tmp_path / "crashed"
    s = spec(tmp_path, f'experiment = "calibration"\n[parameters]\nindex = {list(range(8))}\n'
                       f'crash_once = ["{marker}"]\n')
    r = run_sweep(s, tmp_path / "o", workers=2, stream=io.StringIO())
    assert marker.exists(), "a worker must really have been killed"
    assert (r.failed, r.rows) == (0, 8)
    assert sorted(x["index"] for x in table(tmp_path / "o")) == list(range(8))


# ------------------------------------------------------------------ Ray (a real local instance)
def test_ray_gives_the_same_table_as_the_local_pool(tmp_path, ray_local):
    s = spec(tmp_path, 'experiment = "hanin-rolnick-regions"\nseeds = [0, 1]\n[parameters]\ndepth = [1, 2]\n'
                       'width = [4]\n')
    a = run_sweep(s, tmp_path / "local", workers=2, stream=io.StringIO())
    b = run_sweep(s, tmp_path / "ray", ray=True, stream=io.StringIO())
    assert b.executor == "ray" and (a.rows, b.rows) == (4, 4)
    assert table(tmp_path / "local") == table(tmp_path / "ray")
    assert store.finished(tmp_path / "local") == store.finished(tmp_path / "ray")


def test_ray_killed_worker_and_failures(tmp_path, ray_local):
    marker = tmp_path / "crashed"
    s = spec(tmp_path, f'experiment = "calibration"\n[parameters]\nindex = [0, 1, 2, 3]\nfail = [false, true]\n'
                       f'crash_once = ["{marker}"]\n')
    r = run_sweep(s, tmp_path / "o", ray=True, stream=io.StringIO())
    assert marker.exists()
    assert (r.total, r.failed, r.rows) == (8, 4, 4)
    assert sorted(x["index"] for x in table(tmp_path / "o")) == [0, 1, 2, 3]


def test_missing_extras_are_named(tmp_path, monkeypatch):
    from relulab.core.extras import MissingExtraError

    s = spec(tmp_path, 'experiment = "calibration"\n[parameters]\nindex = [1]\n')
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingExtraError, match=r"relulab\[parquet\]"):
        run_sweep(s, tmp_path / "o", workers=1)
    assert not (tmp_path / "o").exists()
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"--ray needs .*relulab\[ray\]"):
        run_sweep(s, tmp_path / "o", ray=True)
    # reproduce needs neither
    from relulab.experiments.reproduction import reproduce

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert reproduce("calibration", quick=True, out=tmp_path / "r")["rows"]


# ------------------------------------------------------------------ Ray start-up budget
def test_ray_start_is_retried_until_the_budget_is_spent():
    from relulab.core.executors import _retry_start

    now = [0.0]
    calls, stops = [], []

    def start():  # fails twice (Ray's raylet not registered in time), then comes up
        calls.append(now[0])
        now[0] += 30.0
        if len(calls) < 3:
            raise RuntimeError("The current node timed out during startup.\nmore")

    def sleep(s):
        now[0] += s

    assert _retry_start(start, lambda: stops.append(1), 100.0, clock=lambda: now[0], sleep=sleep) == 3
    assert len(stops) == 2
    now[0] = 0.0
    stops.clear()

    def never():
        now[0] += 30.0
        raise RuntimeError("The current node timed out during startup.\nmore")

    # attempts at 0 s and 32 s; the second ends at 62 s, past the 61 s budget: no third
    with pytest.raises(TimeoutError, match=r"2 attempt\(s\) in 62 s; last: The current node timed out during "
                                           r"startup\.$") as e:
        _retry_start(never, lambda: stops.append(1), 61.0, clock=lambda: now[0], sleep=sleep)
    assert e.value.attempts == 2 and len(stops) == 2


@pytest.mark.parametrize("value, env, match", [(0, None, "ray_timeout must be a positive"),
                                               (float("inf"), None, "ray_timeout must be a positive"),
                                               (None, "soon", "RELULAB_RAY_START_TIMEOUT must be a number"),
                                               (None, "-5", "RELULAB_RAY_START_TIMEOUT must be a positive")])
def test_bad_ray_timeouts_are_refused_before_any_task(tmp_path, monkeypatch, value, env, match):
    pytest.importorskip("ray")
    if env is not None:
        monkeypatch.setenv("RELULAB_RAY_START_TIMEOUT", env)
    s = spec(tmp_path, 'experiment = "calibration"\n[parameters]\nindex = [1]\n')
    with pytest.raises(InvalidInputError, match=match):
        run_sweep(s, tmp_path / "o", ray=True, ray_timeout=value)
    assert not (tmp_path / "o").exists()
