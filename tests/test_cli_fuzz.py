"""Fuzzing the command line's flags: whatever values a careless or hostile user types, ``relulab``
either succeeds or prints exactly one line ``relulab: error: ...`` and exits non-zero; never a
traceback, an internal error, a warning before the error, or a file it did not announce.

Bounded: a fixed number of examples per command, each cheap (tiny models and data, small sizes
when a value is valid), so the whole file runs in seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clitools import run
from relulab.core import io as rio

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# numbers as typed: ordinary, zero, negative, huge, non-finite, malformed
INTS = st.one_of(st.integers(-3, 6).map(str), st.sampled_from(["0", "-1", "99999999999999999999", "1e3", "", "x",
                                                              "2.5", "9" * 40]))
FLOATS = st.one_of(st.floats(-5, 5, allow_nan=False).map(repr),
                   st.sampled_from(["0", "-0", "inf", "-inf", "nan", "1e400", "1e-320", "", "abc", "1e308"]))
POINTS = st.one_of(st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=3).map(
    lambda v: ",".join(map(repr, v))), st.sampled_from(["0,0", "1e308,1e308", "-1e308,1", "nan,0", "inf,1", ",", "a,b"]))


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    rio.save(rio.build("mlp:2-4-4-1:relu", seed=0), d / "mlp.safetensors")
    np.save(d / "x.npy", np.random.default_rng(0).normal(size=(6, 2)))
    return d


def check(d, argv, capsys) -> int:
    before = set(p.name for p in d.iterdir())
    code, out, err = run(argv, capsys)
    lines = err.splitlines()
    if code == 0:
        assert not any(ln.startswith("relulab: error") for ln in lines), err
        if "--json" in argv:
            doc = json.loads(out)
            for key in ("plot", "saved"):
                if key in doc:
                    assert (d / doc[key]).exists() or __import__("pathlib").Path(doc[key]).exists()
    else:
        assert out == "" and len(lines) == 1 and lines[0].startswith("relulab: error: "), (argv, err)
        assert "internal error" not in err and "Traceback" not in err, (argv, err)
        # a refused run writes nothing
        assert set(p.name for p in d.iterdir()) == before, argv
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
    return code


@FUZZ
@given(a=POINTS, b=POINTS, max_regions=INTS, time_limit=FLOATS, plot=st.sampled_from([None, "", "f", "f.svg", "f.xyz"]))
def test_regions_line_flags(d, capsys, a, b, max_regions, time_limit, plot):
    argv = ["regions", str(d / "mlp.safetensors"), "--line", a, b, "--max-regions", max_regions,
            "--time-limit", time_limit, "--json"]
    if plot is not None:
        argv += ["--plot", str(d / plot) if plot else ""]
    check(d, argv, capsys)


@FUZZ
@given(extent=st.lists(FLOATS, min_size=4, max_size=4), max_regions=INTS)
def test_regions_plane_flags(d, capsys, extent, max_regions):
    check(d, ["regions", str(d / "mlp.safetensors"), "--plane", "--extent", *extent, "--max-regions", max_regions,
              "--json"], capsys)


@settings(FUZZ, max_examples=15)
@given(memory=FLOATS, max_points=INTS, weight_var=FLOATS, bias_var=FLOATS, data=st.sampled_from(
    ["x.npy", "spirals:5", "spirals:0", "spirals:-3", "moons:99999999999999999999", "nothing", "xor:abc"]))
def test_ntk_flags(d, capsys, memory, max_points, weight_var, bias_var, data):
    check(d, ["ntk", str(d / "mlp.safetensors"), str(d / data) if data.endswith(".npy") else data, "--memory", memory,
              "--max-points", max_points, "--weight-var", weight_var, "--bias-var", bias_var, "--json"], capsys)


@FUZZ
@given(k=st.one_of(INTS, st.sampled_from(["2-5", "5-2", "2-99999999999999999999", "2,3,x", "-2", "2--3"])),
       pool=st.one_of(st.none(), INTS))
def test_init_maxout_flags(d, capsys, k, pool):
    argv = ["init", "maxout", "--k", k, "--json"]
    if pool is not None:
        argv += ["--pool", pool]
    check(d, argv, capsys)


@FUZZ
@given(dd=INTS, k=INTS, starts=INTS, seed=INTS, memory=FLOATS)
def test_teacher_student_flags_are_checked_before_work(d, capsys, dd, k, starts, seed, memory):
    # only invalid combinations run to the end here (valid ones search critical points: seconds each)
    valid = [v.lstrip("-").isdigit() and 1 <= int(v) <= 10**6 for v in (dd, k, starts)]
    if all(valid):
        starts = "0"
    check(d, ["landscape", "teacher-student", "--d", dd, "--k", k, "--starts", starts, "--seed", seed,
              "--memory", memory, "--json"], capsys)


@FUZZ
@given(dims=st.lists(INTS, min_size=1, max_size=2), ns=st.lists(INTS, min_size=1, max_size=2), ms=INTS,
       samples=INTS, alpha=FLOATS)
def test_jacobian_grid_flags(d, capsys, dims, ns, ms, samples, alpha):
    small = all(v.isdigit() and int(v) <= 4 for v in [*dims, *ns, ms, samples])
    if small:
        samples = "0"  # refused; a valid grid would sample and take seconds
    check(d, ["landscape", "jacobian-rank", "--grid", "--dims", *dims, "--ns", *ns, "--ms", ms, "--samples", samples,
              "--activation", "leaky_relu", "--alpha", alpha, "--workers", "1", "--json"], capsys)


@FUZZ
@given(top=INTS, bottom=INTS, trace=INTS, steps=INTS, memory=FLOATS, tol=FLOATS)
def test_hessian_flags(d, capsys, top, bottom, trace, steps, memory, tol):
    np.save(d / "y.npy", np.zeros((6, 1)))
    check(d, ["hessian", str(d / "mlp.safetensors"), str(d / "x.npy"), "--targets", str(d / "y.npy"), "--loss", "mse",
              "--top", top, "--bottom", bottom, "--trace-queries", trace, "--max-steps", steps, "--memory", memory,
              "--tol", tol, "--no-density", "--json"], capsys)
