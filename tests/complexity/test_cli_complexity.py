"""`relulab complexity` against the library calls it wraps, and its one-line errors."""

import json

import numpy as np
import pytest
import torch

import relulab
from clitools import run
from relulab import complexity as cx
from relulab.core import io as rio


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("complexity")
    rio.save(rio.build("mlp:3-12-12-1:relu", seed=3), d / "mlp.safetensors")
    rio.save(rio.build("mlp:2-10-10-1:relu", seed=4), d / "two.safetensors")
    x = np.random.default_rng(0).normal(size=(20, 3))
    np.save(d / "x.npy", x)
    bad = x.copy()
    bad[3, 1] = np.nan
    np.save(d / "nan.npy", bad)
    np.save(d / "x2.npy", np.random.default_rng(1).normal(size=(6, 2)))
    return d


def test_smoothed_default_matches_library(files, capsys):
    code, out, err = run(["complexity", str(files / "mlp.safetensors"), str(files / "x.npy"), "--sigma", "0.3",
                          "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    net = relulab.load(files / "mlp.safetensors")
    ref = cx.local_complexity(net, torch.as_tensor(np.load(files / "x.npy")), 0.3)
    assert doc["method"] == "smoothed"
    assert doc["value"] == pytest.approx(ref.value, rel=1e-12)
    assert doc["stderr"] == pytest.approx(ref.stderr, rel=1e-10)
    assert err == ""


@pytest.mark.parametrize("method", ["exact-2d", "lines", "local-count", "proxy"])
def test_other_methods_run(files, capsys, method):
    model, data = ("two", "x2") if method == "exact-2d" else ("mlp", "x")
    argv = ["complexity", str(files / f"{model}.safetensors"), str(files / f"{data}.npy"), "--method", method,
            "--radius", "0.3", "--lines", "64", "--vertices", "6", "--max-points", "6", "--json"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["method"] == method and doc["points"] == 6
    code, out, err = run(argv[:-1], capsys)
    assert code == 0 and out.strip()


@pytest.mark.parametrize("extra, needle", [
    (["--sigma", "0"], "--sigma"),
    (["--sigma", "-1"], "--sigma"),
    (["--sigma", "nan"], "--sigma"),
    (["--radius", "0", "--method", "proxy"], "--radius"),
    (["--vertices", "5", "--method", "proxy"], "--vertices must be even"),
    (["--method", "exact-2d"], "2 inputs"),
])
def test_errors_are_one_line(files, capsys, extra, needle):
    code, out, err = run(["complexity", str(files / "mlp.safetensors"), str(files / "x.npy"), *extra], capsys)
    assert code != 0 and out == ""
    assert err.startswith("relulab: error:") and needle in err and err.count("\n") == 1


def test_bad_data(files, capsys):
    code, _, err = run(["complexity", str(files / "mlp.safetensors"), str(files / "nan.npy")], capsys)
    assert code != 0 and "non-finite" in err
    code, _, err = run(["complexity", str(files / "mlp.safetensors"), str(files / "x2.npy")], capsys)
    assert code != 0 and "does not hold" in err
