"""``full_space(..., out=path)``: regions streamed to Parquet (real pyarrow) against the in-memory
result, the file's metadata for complete and budget-stopped runs, atomic publication, the missing
extra, and ``relulab regions --out``."""

from __future__ import annotations

import json
import math
import sys

import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

import relulab
from clitools import run
from relulab.core import io as rio
from relulab.core.errors import InvalidInputError
from relulab.regions import full_space, read_regions


def mlp(widths, seed=0):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64) / math.sqrt(widths[i]))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=torch.float64))
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return relulab.PLNet.from_torch(nn.Sequential(*layers).eval(), (widths[0],))


def _same_regions(net, mem, doc):
    """The file holds exactly the in-memory regions, in the same order, and every stored witness
    has the stored pattern (checked by evaluating the network, independently of the engine)."""
    assert doc["patterns"].shape[0] == mem.count
    assert torch.equal(doc["patterns"], mem.patterns.long())
    assert torch.equal(doc["witnesses"], mem.interior_points)
    assert torch.equal(net.pattern(doc["witnesses"]).long(), doc["patterns"])
    assert len({tuple(p) for p in doc["patterns"].tolist()}) == mem.count


@pytest.mark.parametrize("method,widths", [("facet", [6, 5, 4, 1]), ("vertex", [2, 6, 5, 1])])
def test_file_equals_in_memory_result(tmp_path, method, widths):
    net = mlp(widths, seed=3)
    mem = full_space(net, method=method)
    res = full_space(net, method=method, out=tmp_path / "r")  # the suffix is added
    path = tmp_path / "r.parquet"
    assert res.stats["out"] == str(path) and path.is_file()
    assert res.count == mem.count and res.complete and res.patterns is None and res.interior_points is None
    doc = read_regions(path)
    _same_regions(net, mem, doc)
    meta = doc["meta"]
    assert meta["complete"] is True and meta["certified"] == mem.certified and meta["count"] == mem.count
    assert meta["method"] == method and meta["n_units"] == net.n_units and meta["input_dim"] == widths[0]
    # the schema a reader without relulab sees
    t = pq.read_table(path)
    assert t.column_names == ["region", "pattern", "witness"]
    assert t.column("region").to_pylist() == list(range(mem.count))
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]  # no temporary file left
    assert json.dumps(res.to_dict())  # the summary still serializes


def test_budget_stop_is_marked_incomplete(tmp_path):
    net = mlp([6, 8, 6, 1], seed=1)
    res = full_space(net, method="facet", max_regions=40, out=tmp_path / "part.parquet")
    doc = read_regions(tmp_path / "part.parquet")
    assert res.count == 40 and not res.complete
    assert doc["meta"]["complete"] is False and doc["meta"]["stopped_by"] == "max_regions"
    assert doc["patterns"].shape[0] == 40
    assert torch.equal(net.pattern(doc["witnesses"]).long(), doc["patterns"])


def test_failed_run_leaves_nothing(tmp_path):
    net = mlp([6, 8, 6, 1], seed=1)

    def boom(done, total, **info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        full_space(net, method="facet", out=tmp_path / "x.parquet", progress=boom)
    assert list(tmp_path.iterdir()) == []


def test_missing_extra_and_bad_arguments(tmp_path, monkeypatch):
    net = mlp([6, 4, 1])
    with pytest.raises(InvalidInputError, match="audit_samples"):
        full_space(net, out=tmp_path / "a.parquet", audit_samples=10)
    with pytest.raises(InvalidInputError, match="folder"):
        full_space(net, out=tmp_path / "nope" / "a.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"relulab\[parquet\]"):
        full_space(net, method="facet", out=tmp_path / "a.parquet")
    assert list(tmp_path.iterdir()) == []


def test_cli_out(tmp_path, capsys):
    rio.save(rio.build("mlp:6-5-4-1:relu", seed=4), tmp_path / "m.safetensors")
    code, out, err = run(["regions", str(tmp_path / "m.safetensors"), "--all", "--out", str(tmp_path / "r"),
                          "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["out"] == str(tmp_path / "r.parquet")
    net = relulab.load(tmp_path / "m.safetensors")
    mem = full_space(net)
    _same_regions(net, mem, read_regions(doc["out"]))
    code, out, err = run(["regions", str(tmp_path / "m.safetensors"), "--line", "0", "1", "--out",
                          str(tmp_path / "l.parquet")], capsys)
    assert code != 0 and err.startswith("relulab: error:") and "--out" in err


def test_streamed_result_refuses_in_memory_queries_clearly(tmp_path):
    net = mlp([2, 6, 1])
    res = full_space(net, out=tmp_path / "r.parquet")
    assert res.patterns is None
    with pytest.raises(InvalidInputError, match="read_regions"):
        res.region_of(torch.zeros(1, 2))
    with pytest.raises(InvalidInputError, match="read_regions"):
        res.plot()
