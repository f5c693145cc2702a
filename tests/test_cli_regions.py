"""`relulab regions`: each domain against the library call it wraps, budgets, plots and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import relulab
from clitools import run
from relulab.core import io as rio
from relulab.regions import full_space
from relulab.regions import on_line, on_plane




@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("regions")
    rio.save(rio.build("mlp:2-8-8-2:relu", seed=1), d / "m2.safetensors")
    rio.save(rio.build("mlp:3-6-6-1:leaky_relu:0.2", seed=2), d / "m3.safetensors")
    rio.save(rio.build("cnn:1x6x6-c2k3-m2-3:relu", seed=0), d / "cnn.pt2", input_shape=(1, 6, 6))
    np.save(d / "img.npy", np.linspace(-1, 1, 36).reshape(1, 6, 6))
    return d


def test_all_matches_library_and_audit(files, capsys):
    code, out, err = run(["regions", str(files / "m2.safetensors"), "--all", "--audit", "500", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    ref = full_space(relulab.load(files / "m2.safetensors"))
    assert doc["count"] == ref.count and doc["linear_count"] == ref.linear_count
    assert doc["domain"] == "R^d" and doc["complete"] is True and doc["audit_missing"] == 0
    assert doc["decision_boundary_pieces"] == ref.decision_boundary_pieces


def test_box_line_plane_match_library(files, capsys):
    net = relulab.load(files / "m3.safetensors")
    code, out, _ = run(["regions", str(files / "m3.safetensors"), "--box", "-1", "0.5,1,2", "--json"], capsys)
    box = full_space(net, (torch.tensor([-1.0] * 3), torch.tensor([0.5, 1, 2])))
    assert code == 0 and json.loads(out)["count"] == box.count
    code, out, _ = run(["regions", str(files / "m3.safetensors"), "--line", "-2,0,1", "3,1,-1", "--json"], capsys)
    line = on_line(net, torch.tensor([-2.0, 0, 1]), torch.tensor([3.0, 1, -1]))
    doc = json.loads(out)
    assert code == 0 and doc["count"] == line.count
    assert doc["breakpoints"] == pytest.approx(line.breakpoints.tolist(), abs=0)
    code, out, _ = run(["regions", str(files / "m3.safetensors"), "--plane", "0", "1,0,0", "0,1,1",
                        "--extent", "-2", "2", "-1", "3", "--json"], capsys)
    plane = on_plane(net, torch.zeros(3), torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 1]), (-2, 2, -1, 3))
    assert code == 0 and json.loads(out)["count"] == plane.count


def test_cnn_line_from_npy_and_plots(files, tmp_path, capsys):
    png = tmp_path / "line.png"
    code, out, err = run(["regions", str(files / "cnn.pt2"), "--line", str(files / "img.npy"), "0.5",
                          "--plot", str(png), "--json"], capsys)
    assert code == 0, err
    net = relulab.load(files / "cnn.pt2")
    a = torch.linspace(-1, 1, 36, dtype=torch.float64).reshape(1, 6, 6)
    assert json.loads(out)["count"] == on_line(net, a, torch.full((1, 6, 6), 0.5, dtype=torch.float64)).count
    assert png.stat().st_size > 1000
    png2 = tmp_path / "plane.png"
    code, out, err = run(["regions", str(files / "m2.safetensors"), "--plane", "--plot", str(png2)], capsys)
    assert code == 0 and png2.stat().st_size > 1000 and "activation regions" in out


def test_budget_gives_incomplete_result(files, capsys):
    code, out, _ = run(["regions", str(files / "m2.safetensors"), "--all", "--max-regions", "5", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["complete"] is False and doc["count"] >= 5
    code, out, _ = run(["regions", str(files / "m2.safetensors"), "--all", "--max-regions", "5"], capsys)
    assert "incomplete" in out


@pytest.mark.parametrize("argv, needle", [
    (["--line", "0", "1,2,3"], "--line B: expected 2 finite numbers"),
    (["--line", "0", "x"], "--line B: expected comma-separated numbers"),
    (["--plane", "0", "1,0"], "--plane takes ORIGIN U V"),
    (["--box", "1", "0"], "lo < hi"),
    (["--all", "--max-regions", "0"], "--max-regions: must be an integer from 1"),
    (["--all", "--time-limit", "-1"], "--time-limit: must be a finite number > 0"),
    (["--line", "nan", "1"], "finite"),
    (["--line", "missing.npy", "1"], "missing.npy"),
    ([], "one of the arguments --line --plane --box --all is required"),
])
def test_bad_arguments_give_one_line(files, capsys, argv, needle):
    code, out, err = run(["regions", str(files / "m2.safetensors"), *argv], capsys)
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("relulab: error: ") and needle in lines[0], err


def test_plane_without_points_needs_two_inputs(files, capsys):
    code, _, err = run(["regions", str(files / "m3.safetensors"), "--plane"], capsys)
    assert code == 1 and "needs ORIGIN U V for a network with 3 inputs" in err


@pytest.mark.parametrize("domain", [["--all"], ["--line", "-2,0", "3,1"], ["--plane"]])
def test_certify_flag_reaches_every_engine(files, capsys, domain):
    path = str(files / "m2.safetensors")
    code, out, err = run(["regions", path, *domain, "--json"], capsys)
    assert code == 0, err
    proven = json.loads(out)
    code, out, err = run(["regions", path, *domain, "--certify", "never", "--json"], capsys)
    assert code == 0, err
    skipped = json.loads(out)
    assert proven["certified"] is True and skipped["certified"] is False
    assert skipped["count"] == proven["count"]
