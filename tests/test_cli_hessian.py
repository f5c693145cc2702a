"""`relulab hessian`: its numbers against an independently computed dense Hessian, and its errors."""

import json

import numpy as np
import pytest
import torch

import relulab
from relulab import data as datasets
from relulab.core import io as rio
from tests.clitools import run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hessian_cli")
    rio.save(rio.build("mlp:2-6-6-2:relu", seed=3), d / "clf.safetensors")
    rio.save(rio.build("mlp:3-5-1:leaky_relu", seed=4), d / "reg.safetensors")
    rio.save(rio.build("cnn:1x6x6-c2k3-m2-3:relu", seed=0), d / "cnn.pt2", input_shape=(1, 6, 6))
    rng = np.random.default_rng(0)
    np.save(d / "x3.npy", rng.normal(size=(20, 3)))
    np.save(d / "x2.npy", rng.normal(size=(20, 2)))
    np.save(d / "y3.npy", rng.normal(size=20))
    np.save(d / "img.npy", rng.normal(size=(8, 1, 6, 6)))
    np.save(d / "lab.npy", rng.integers(0, 3, size=8))
    np.save(d / "badlab.npy", np.full(8, 7))
    np.save(d / "short.npy", rng.integers(0, 3, size=5))
    return d


def _dense_eigenvalues(module, loss, x, y):
    """Reference: torch.autograd.functional.hessian of the loss as a function of the flat parameters."""
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for _, p in module.named_parameters()]
    flat = torch.cat([p.detach().double().reshape(-1) for p in module.parameters()])
    module = module.double()

    def f(theta):
        ps, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            ps[n] = theta[i:i + k].view(s)
            i += k
        return loss(torch.func.functional_call(module, ps, (x,)), y)

    H = torch.autograd.functional.hessian(f, flat)
    return torch.linalg.eigvalsh((H + H.T) / 2).numpy()


def test_hessian_builtin_data_matches_dense(files, capsys):
    code, out, err = run(["hessian", str(files / "clf.safetensors"), "spirals:40", "--top", "3", "--bottom", "2",
                          "--json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    ds = datasets.make("spirals", n=40, seed=0)
    ev = _dense_eigenvalues(relulab.load(files / "clf.safetensors").to_torch(), torch.nn.CrossEntropyLoss(),
                            ds.x, ds.y)
    scale = np.abs(ev).max()
    assert np.allclose(d["eigenpairs"]["largest"], ev[::-1][:3], atol=1e-8 * scale)
    assert np.allclose(d["eigenpairs"]["smallest"], ev[:2], atol=1e-8 * scale)
    assert d["inertia"]["exact"]
    tol = d["inertia"]["tol"]
    assert d["inertia"]["negative"] == int((ev < -tol).sum()) and d["inertia"]["positive"] == int((ev > tol).sum())
    assert d["n_parameters"] == ev.size and d["loss_function"] == "cross_entropy"
    assert d["kinks"]["piecewise_linear"]


def test_hessian_mse_from_files_and_plot(files, capsys, tmp_path):
    png = tmp_path / "h.png"
    code, out, err = run(["hessian", str(files / "reg.safetensors"), str(files / "x3.npy"), "--targets",
                          str(files / "y3.npy"), "--loss", "mse", "--top", "2", "--bottom", "1", "--plot", str(png)],
                         capsys)
    assert code == 0, err
    assert "largest:" in out and "inertia (exact" in out
    assert png.read_bytes().startswith(b"\x89PNG")
    x = torch.as_tensor(np.load(files / "x3.npy"))
    y = torch.as_tensor(np.load(files / "y3.npy")).reshape(-1, 1)
    ev = _dense_eigenvalues(relulab.load(files / "reg.safetensors").to_torch(), torch.nn.MSELoss(), x, y)
    first = float(out.split("largest:")[1].split()[0])
    assert first == pytest.approx(ev[-1], rel=1e-5)


def test_hessian_cnn_with_labels(files, capsys):
    code, out, err = run(["hessian", str(files / "cnn.pt2"), str(files / "img.npy"), "--targets",
                          str(files / "lab.npy"), "--top", "1", "--bottom", "0", "--no-density", "--json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert len(d["eigenpairs"]["largest"]) == 1 and d["eigenpairs"]["smallest"] == []


@pytest.mark.parametrize("argv,needle", [
    (["clf.safetensors", "x2.npy"], "--targets"),
    (["clf.safetensors", "x3.npy", "--targets", "y3.npy"], "does not hold inputs of shape 2"),
    (["cnn.pt2", "img.npy", "--targets", "badlab.npy"], "class indices"),
    (["cnn.pt2", "img.npy", "--targets", "short.npy"], "rows"),
    (["reg.safetensors", "x3.npy", "--targets", "y3.npy"], "cross_entropy needs a model with at least 2"),
    (["clf.safetensors", "spirals:20", "--top", "0", "--bottom", "0"], "cannot both be 0"),
    (["clf.safetensors", "spirals:20", "--top", "-1"], "--top: must be an integer from 0"),
    (["clf.safetensors", "spirals:20", "--memory", "0.000001"], "--memory"),
    (["missing.safetensors", "spirals:20"], "no such file"),
])
def test_hessian_errors_are_one_line(files, capsys, argv, needle):
    argv = [str(files / a) if a.endswith((".npy", ".safetensors", ".pt2")) else a for a in argv]
    code, out, err = run(["hessian", *argv], capsys)
    assert code != 0
    assert err.startswith("relulab: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert needle in err


def test_hessian_mse_on_builtin_labels(files, capsys, tmp_path):
    rio.save(rio.build("mlp:2-8-1:relu", seed=0), tmp_path / "one.safetensors")
    rio.save(rio.build("mlp:2-8-3:relu", seed=0), tmp_path / "three.safetensors")
    code, out, err = run(["hessian", str(tmp_path / "one.safetensors"), "spirals:50", "--loss", "mse", "--top", "1",
                          "--bottom", "0", "--json"], capsys)
    assert code == 0, err
    ds = datasets.make("spirals", n=50, seed=0)
    with torch.no_grad():
        pred = relulab.load(tmp_path / "one.safetensors")(ds.x)
    want = float(((pred.reshape(-1) - ds.y.double()) ** 2).mean())  # labels as one target per point
    assert json.loads(out)["loss"] == pytest.approx(want, rel=1e-12)
    code, out, err = run(["hessian", str(tmp_path / "three.safetensors"), "spirals:50", "--loss", "mse"], capsys)
    assert code != 0 and "pass --targets" in err and err.count("\n") == 1


def test_hessian_trace_time_limit(files, capsys):
    """--trace-time-limit reaches the engine: a limit shorter than one product stops Hutchinson sampling after
    its first sample, the estimate says so and still carries the exact Hutch++ part."""
    argv = ["hessian", str(files / "clf.safetensors"), "spirals:40", "--top", "1", "--bottom", "0",
            "--trace-queries", "60", "--no-density"]
    code, out, err = run(argv + ["--json"], capsys)
    assert code == 0, err
    full = json.loads(out)["trace"]
    assert full["complete"] is True
    code, out, err = run(argv + ["--trace-time-limit", "1e-9", "--json"], capsys)
    assert code == 0, err
    cut = json.loads(out)["trace"]
    assert cut["complete"] is False and cut["n_products"] < full["n_products"]
    code, out, err = run(argv + ["--trace-time-limit", "1e-9"], capsys)
    assert code == 0 and "time limit" in out, err
    code, out, err = run(argv + ["--trace-time-limit", "0"], capsys)
    assert code != 0 and "--trace-time-limit" in err
