"""`relulab ntk` and `relulab init maxout` against the library calls they wrap, and their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import relulab
from clitools import run
from relulab.core import io as rio
from relulab.init import maxout_constants
from relulab.kernels import analytic_ntk, empirical_ntk, ntk_spectrum




@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("engines")
    rio.save(rio.build("mlp:3-24-24-1:relu", seed=3), d / "mlp.safetensors")
    rio.save(rio.build("mlp:3-10-2:abs", seed=4), d / "abs.safetensors")
    rio.save(rio.build("cnn:1x6x6-c2k3-m2-3:relu", seed=0), d / "cnn.pt2", input_shape=(1, 6, 6))
    x = np.random.default_rng(0).normal(size=(30, 3))
    np.save(d / "x.npy", x)
    np.savetxt(d / "x.csv", x, delimiter=",")
    np.save(d / "bad.npy", np.ones((7, 5)))
    np.save(d / "recut.npy", np.ones((6, 2)))  # 12 numbers: 4 rows of 3 only if re-cut, which must not happen
    return d


def test_ntk_matches_library(files, capsys):
    code, out, err = run(["ntk", str(files / "mlp.safetensors"), str(files / "x.npy"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    x = torch.as_tensor(np.load(files / "x.npy"))
    spec = ntk_spectrum(empirical_ntk(relulab.load(files / "mlp.safetensors"), x))
    assert doc["n"] == 30
    assert doc["spectrum"]["lambda_max"] == pytest.approx(spec.lambda_max, rel=1e-10)
    assert doc["spectrum"]["lambda_min"] == pytest.approx(spec.lambda_min, rel=1e-8, abs=1e-12)
    code, out2, _ = run(["ntk", str(files / "mlp.safetensors"), str(files / "x.csv"), "--json"], capsys)
    assert json.loads(out2)["spectrum"]["lambda_max"] == pytest.approx(spec.lambda_max, rel=1e-12)


def test_ntk_analytic_uses_architecture_and_sphere(files, capsys, tmp_path):
    code, out, err = run(["ntk", str(files / "abs.safetensors"), str(files / "x.npy"), "--analytic",
                          "--max-points", "20", "--save", str(tmp_path / "K.npy"), "--plot", str(tmp_path / "s.png"),
                          "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    a = doc["analytic"]
    assert a["depth"] == 1 and a["activation"] == "abs"
    x = torch.as_tensor(np.load(files / "x.npy"))[:20]
    x = x / x.norm(dim=1, keepdim=True)
    _, K = analytic_ntk(x, depth=1, activation="abs")
    assert a["spectrum"]["lambda_min"] == pytest.approx(float(torch.linalg.eigvalsh(K)[0]), rel=1e-9)
    assert a["bounds"]["holds"] is True
    K_emp = np.load(tmp_path / "K.npy")
    assert K_emp.shape == (20, 20, 2, 2) and (tmp_path / "s.png").stat().st_size > 1000


def test_ntk_builtin_data_and_cnn(files, capsys):
    code, out, err = run(["ntk", str(files / "cnn.pt2"), str(files / "x.npy")], capsys)
    assert code == 1 and "does not hold inputs of shape 1x6x6" in err
    code, out, err = run(["ntk", str(files / "cnn.pt2"), "xor:4"], capsys)
    assert code == 1 and "does not hold inputs" in err
    code, out, err = run(["ntk", str(files / "mlp.safetensors"), "spirals:10"], capsys)
    assert code == 1 and "shape 3" in err
    np.save(files / "img.npy", np.random.default_rng(1).normal(size=(5, 1, 6, 6)))
    code, out, err = run(["ntk", str(files / "cnn.pt2"), str(files / "img.npy"), "--json"], capsys)
    assert code == 0 and json.loads(out)["spectrum"]["size"] == 15
    code, out, err = run(["ntk", str(files / "cnn.pt2"), str(files / "img.npy"), "--analytic"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "fully connected" in err


@pytest.mark.parametrize("data, needle", [("bad.npy", "does not hold inputs of shape 3"),
                                          ("recut.npy", "6x2 does not hold inputs of shape 3"),
                                          ("nothing.csv", "nothing.csv"), ("nonsense", "expected a .npy or .csv"),
                                          ("spirals:x", "NAME:N")])
def test_ntk_bad_data(files, capsys, data, needle):
    path = str(files / data) if "." in data else data
    code, out, err = run(["ntk", str(files / "mlp.safetensors"), path], capsys)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1 and needle in err, err


def test_init_maxout_constants(capsys):
    code, out, err = run(["init", "maxout", "--k", "2-4", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["constants"]
    assert [r["k"] for r in rows] == [2, 3, 4]
    assert rows[0]["M"] == pytest.approx(1.0, abs=1e-12)
    ref = maxout_constants(3)
    assert rows[1]["M"] == ref.M and rows[1]["c"] == ref.c
    code, out, _ = run(["init", "maxout", "--k", "3", "--pool", "2", "--json"], capsys)
    assert json.loads(out)["constants"][0]["M"] == pytest.approx(maxout_constants(6).M, rel=1e-12)
    code, out, _ = run(["init", "maxout", "--k", "2,5"], capsys)
    assert code == 0 and "1.00000000000" in out


@pytest.mark.parametrize("argv, needle", [(["init", "maxout", "--k", "zero"], "--k"),
                                          (["init", "maxout", "--k", "0"], "--k: must be an integer from 1"),
                                          (["init", "maxout", "--k", "3", "--pool", "0"], "--pool"),
                                          (["init"], "required")])
def test_init_bad_arguments(capsys, argv, needle):
    code, out, err = run(argv, capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_landscape_teacher_student_matches_library(capsys):
    from relulab.landscape import TeacherStudent, find_critical_points

    code, out, err = run(["landscape", "teacher-student", "--d", "3", "--starts", "4", "--workers", "1", "--json"],
                         capsys)
    assert code == 0, err
    doc = json.loads(out)
    ref = find_critical_points(TeacherStudent.identity(3), 4, seed=0, workers=1)
    assert doc["n_starts"] == 4 and doc["complete"] is True
    assert [f["loss"] for f in doc["families"]] == pytest.approx([f.loss for f in ref.families], abs=1e-12)
    assert doc["families"][0]["kind"] == "global minimum" and doc["families"][0]["isotropy_order"] == 6
    code, _, err = run(["landscape", "teacher-student", "--d", "3", "--workers", "0"], capsys)
    assert code == 2 and "--workers" in err and len(err.strip().splitlines()) == 1
