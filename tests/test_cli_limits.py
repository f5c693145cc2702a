"""Careless and hostile command lines: every one ends in one line ``relulab: error: ...`` (nothing else on
stdout or stderr, a non-zero exit) before anything large is allocated; outputs land where the CLI
says, atomically, and a results folder is marked complete only when it is."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

from clitools import run
from relulab import report
from relulab.core import io as rio

HUGE = "99999999999999999999"


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("limits")
    rio.save(rio.build("mlp:2-8-8-1:relu", seed=0), d / "mlp.safetensors")
    rio.save(rio.build("mlp:2-6-1:relu", seed=0), d / "shallow.safetensors")
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.normal(size=(12, 2)))
    np.save(d / "y.npy", rng.normal(size=(12, 1)))
    (d / "empty.csv").write_text("")
    return d


def one_error_line(code: int, out: str, err: str) -> str:
    assert code != 0 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("relulab: error: "), err
    assert "Traceback" not in err and "frame #" not in err and "internal error" not in err, err
    return lines[0]


PROBES = [
    # (argv, words in the one error line)
    (["ntk", "{d}/mlp.safetensors", "{d}/x.npy", "--memory", "inf"], "finite"),
    (["ntk", "{d}/mlp.safetensors", "{d}/x.npy", "--memory", "nan"], "finite"),
    (["ntk", "{d}/mlp.safetensors", "{d}/x.npy", "--memory", "-1"], "--memory"),
    (["ntk", "{d}/mlp.safetensors", "{d}/x.npy", "--max-points", HUGE], "--max-points"),
    (["ntk", "{d}/mlp.safetensors", "spirals:" + HUGE], "N must be"),
    (["ntk", "{d}/mlp.safetensors", "spirals:100000000", "--max-points", "16"], "N must be"),
    (["ntk", "{d}/mlp.safetensors", "spirals:20000", "--max-points", "20000", "--memory", "0.001"], "Gram matrix"),
    (["regions", "{d}/mlp.safetensors", "--line", "0,0", "0,0"], "same point"),
    (["regions", "{d}/mlp.safetensors", "--line", "1e308,1e308", "-1e308,-1e308"], "too long"),
    (["regions", "{d}/mlp.safetensors", "--line", "0,0", "1,1", "--max-regions", HUGE + HUGE], "--max-regions"),
    (["regions", "{d}/mlp.safetensors", "--plane", "--extent", "-1", "1", "-1", "1e400"], "finite"),
    (["regions", "{d}/mlp.safetensors", "--all", "--time-limit", "0"], "--time-limit"),
    (["landscape", "teacher-student", "--d", HUGE], "--d"),
    (["landscape", "teacher-student", "--d", "5000", "--starts", "1"], "GiB"),
    (["landscape", "teacher-student", "--d", "2", "--k", HUGE], "--k"),
    (["landscape", "teacher-student", "--d", "2", "--k", "100000", "--starts", "1"], "GiB"),
    (["landscape", "teacher-student", "--d", "2", "--starts", "1000000000"], "--starts"),
    (["landscape", "teacher-student", "--d", "2", "--seed", HUGE], "--seed"),
    (["landscape", "jacobian-rank", "--grid", "--dims", "100000", "--ns", "500", "--ms", "200"], "GiB"),
    (["landscape", "jacobian-rank", "--grid", "--dims", HUGE, "--ns", "5", "--ms", "2"], "--dims"),
    (["landscape", "classify", "{d}/shallow.safetensors", "{d}/empty.csv", "--targets", "{d}/y.npy"], "no numbers"),
    (["hessian", "{d}/mlp.safetensors", "{d}/x.npy", "--targets", "{d}/y.npy", "--loss", "mse",
      "--trace-queries", "100000000"], "--trace-queries"),
    (["hessian", "{d}/mlp.safetensors", "{d}/x.npy", "--targets", "{d}/y.npy", "--loss", "mse",
      "--trace-queries", "100000", "--memory", "0.001"], "--memory"),
    (["hessian", "{d}/mlp.safetensors", "{d}/x.npy", "--targets", "{d}/y.npy", "--top", HUGE], "--top"),
    (["init", "maxout", "--k", "2-" + HUGE], "--k: must be an integer from 1"),
    (["init", "maxout", "--k", "2-5000"], "at most 1,000"),
    (["init", "maxout", "--k", "2", "--pool", HUGE], "--pool"),
    (["regions", "{d}/mlp.safetensors", "--line", "0,0", "1,1", "--plot", ""], "non-empty"),
    (["regions", "{d}/mlp.safetensors", "--line", "0,0", "1,1", "--plot", "{d}/missing/o.png"], "does not exist"),
    (["ntk", "{d}/mlp.safetensors", "{d}/x.npy", "--save", ""], "non-empty"),
    (["ntk", "{d}/mlp.safetensors", "{d}/x.npy", "--save", "{d}"], "folder"),
    (["demo", "--out", ""], "non-empty"),
    (["demo", "--out", "{d}/x.npy"], "not a folder"),
]


@pytest.mark.parametrize("argv, words", PROBES, ids=[" ".join(a[:3]) + f" #{i}" for i, (a, _) in enumerate(PROBES)])
def test_careless_flags_give_one_clear_line(d, capsys, argv, words):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak as a warning either
        line = one_error_line(*run([a.format(d=d) for a in argv], capsys))
    assert words in line


def test_warnings_are_held_back_before_an_error(d, capsys, monkeypatch):
    from relulab.commands import info

    def warn_then_fail(args, ctx):
        warnings.warn("something numpy would say")
        raise ValueError("the real problem")

    monkeypatch.setattr(info, "run", warn_then_fail)
    assert "the real problem" in one_error_line(*run(["info", str(d / "mlp.safetensors")], capsys))


def test_allocation_failures_are_one_plain_line(d, capsys, monkeypatch):
    from relulab.commands import info

    def alloc(args, ctx):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1000000000000 bytes. Error code 12\nException raised from x\n"
                           "frame #0: c10::Error")

    monkeypatch.setattr(info, "run", alloc)
    line = one_error_line(*run(["info", str(d / "mlp.safetensors")], capsys))
    assert "out of memory (931 GiB requested)" in line and "enforce" not in line


def test_plot_and_save_report_the_files_they_write(d, capsys, tmp_path):
    code, out, err = run(["regions", str(d / "mlp.safetensors"), "--line", "0,0", "1,1", "--plot",
                          str(tmp_path / "o"), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["plot"] == str(tmp_path / "o.png") and (tmp_path / "o.png").is_file()
    assert not (tmp_path / "o").exists()
    code, out, err = run(["regions", str(d / "mlp.safetensors"), "--line", "0,0", "1,1", "--plot",
                          str(tmp_path / "o.svg"), "--json"], capsys)
    assert json.loads(out)["plot"] == str(tmp_path / "o.svg")
    assert (tmp_path / "o.svg").read_text().lstrip().startswith("<?xml")
    code, out, err = run(["ntk", str(d / "mlp.safetensors"), str(d / "x.npy"), "--save", str(tmp_path / "K"),
                          "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["saved"] == str(tmp_path / "K.npy")
    K = np.load(tmp_path / "K.npy", allow_pickle=False)
    assert K.shape == (12, 12) and np.allclose(K, K.T)
    # nothing temporary is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["K.npy", "o.png", "o.svg"]


def test_a_failed_write_leaves_the_old_file(d, capsys, tmp_path, monkeypatch):
    target = tmp_path / "K.npy"
    target.write_bytes(b"old")

    def broken_save(f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken_save)
    code, out, err = run(["ntk", str(d / "mlp.safetensors"), str(d / "x.npy"), "--save", str(target)], capsys)
    assert code == 1 and "No space left" in err
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["K.npy"]


def test_report_folder_is_marked_complete_only_at_the_end(tmp_path):
    import torch

    from relulab import data as datasets
    from relulab.core.plnet import PLNet

    net = PLNet.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)), (2,))
    data = datasets.xor(n=40)

    def decision(net_, data_, out_):
        return report.decision_section(net_, data_, out_, res=20)

    out = tmp_path / "r"
    s = report.write_report(net, data, out, [decision, report.model_section])
    assert report.is_complete(out)
    manifest = json.loads((out / report.COMPLETE).read_text())
    assert sorted(manifest["files"]) == sorted(s["files"]) == ["decision.png", "report.html", "summary.json"]
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]

    # a second run into the same folder that dies mid-way leaves it unmarked
    def dies(net_, data_, out_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report.write_report(net, data, out, [decision, dies])
    assert not (out / report.COMPLETE).exists() and not report.is_complete(out)
    # a file changed after the run is not complete either
    report.write_report(net, data, out, [decision])
    assert report.is_complete(out)
    (out / "summary.json").write_text("{}")
    assert not report.is_complete(out)


def test_npy_headers_are_checked_before_reading(d, capsys):
    import struct

    np.save(d / "structured.npy", np.zeros(4, dtype=[("a", "f8"), ("b", "f8")]))
    np.save(d / "text.npy", np.array(["a", "b"]))
    hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (200000000, 2), }"
    hdr = hdr + " " * (118 - len(hdr)) + "\n"
    (d / "liar.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + b"\0" * 16)
    for name, words in (("structured.npy", "expected plain numbers"), ("text.npy", "expected plain numbers"),
                        ("liar.npy", "truncated or corrupt")):
        line = one_error_line(*run(["ntk", str(d / "mlp.safetensors"), str(d / name)], capsys))
        assert f"DATA {d / name}" in line and words in line
    line = one_error_line(*run(["regions", str(d / "mlp.safetensors"), "--line", str(d / "structured.npy"), "1,1"],
                               capsys))
    assert "--line A" in line and "expected plain numbers" in line
    # the targets of the landscape and hessian commands go through the same reader
    line = one_error_line(*run(["hessian", str(d / "mlp.safetensors"), "spirals:8", "--loss", "mse", "--targets",
                                    str(d / "liar.npy")],
                               capsys))
    assert "--targets" in line and "truncated or corrupt" in line


def test_time_limit_bounds_the_regions_command_in_high_dimension(d, capsys):
    """``regions --all --time-limit`` on a 64-16-10 net stops at its limit with the regions found so
    far (before: a 5 s limit ran past 120 s; the set-up grew with d^3 and ignored the clock)."""
    rio.save(rio.build("mlp:64-16-10:relu", seed=0), d / "wide.safetensors")
    code, out, err = run(["regions", str(d / "wide.safetensors"), "--all", "--time-limit", "1", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and err == ""
    assert doc["complete"] is False and doc["stopped_by"] == "time_limit" and doc["certified"] is False
