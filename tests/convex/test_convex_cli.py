"""`relulab convex`: one JSON document, the certificate of a saved model, one-line errors."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("cvxpy")

from clitools import run  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import relulab

    d = tmp_path_factory.mktemp("convex")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 2)), rng.normal(size=6)
    np.save(d / "X.npy", X)
    np.savetxt(d / "y.csv", y[:, None], delimiter=",")
    torch.manual_seed(0)
    # a zero output bias (the convention has none) lets the weights go to a safetensors file
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)).double()
    with torch.no_grad():
        net[2].bias.zero_()
    relulab.save(net, d / "net.safetensors")
    return d, X, y, net


def test_json_solution_certificate_and_gd(files, capsys):
    from relulab.convex import objective

    d, X, y, net = files
    code, out, err = run([
        "convex", str(d / "X.npy"), "--targets", str(d / "y.csv"), "--beta", "0.2", "--certify", str(d / "net.safetensors"),
        "--gd-runs", "3", "--steps", "50", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    s, c, g = doc["solution"], doc["certificate"], doc["gradient_descent"]
    assert s["complete"] and s["gap"] < 1e-6 and s["lower_bound"] <= s["objective"]
    assert c["objective"] == pytest.approx(objective(net, X, y, 0.2), rel=1e-12)
    assert c["globally_optimal"] is False and c["gap"] > 0
    assert g["runs"] == 3 and g["below_bound"] == 0


def test_bn_text_output(files, capsys):
    d, *_ = files
    code, out, err = run(["convex", str(d / "X.npy"), "--targets", str(d / "y.csv"), "--beta", "0.2", "--bn"], capsys)
    assert code == 0, err
    assert "normalization" in out and "certified bound" in out


@pytest.mark.parametrize("extra,message", [
    (["--beta", "0"], "--beta"),
    (["--beta", "-1"], "--beta"),
    (["--beta", "0.1", "--targets-bad"], "unrecognized"),
])
def test_errors_are_one_line(files, capsys, extra, message):
    d, *_ = files
    argv = ["convex", str(d / "X.npy"), "--targets", str(d / "y.csv")] + extra
    try:
        code, _, err = run(argv, capsys)
    except SystemExit as e:  # argparse's usage errors leave through sys.exit
        code, err = e.code, capsys.readouterr().err
    assert code != 0
    assert err.startswith("relulab: error:") and message in err and len(err.strip().splitlines()) == 1


def test_mismatched_targets(files, capsys, tmp_path):
    d, *_ = files
    np.save(tmp_path / "short.npy", np.zeros(4))
    code, out, err = run(["convex", str(d / "X.npy"), "--targets", str(tmp_path / "short.npy"), "--beta", "0.1"],
                         capsys)
    assert code != 0 and err.startswith("relulab: error:") and "targets" in err and out == ""


def test_free_bias_and_vector_targets(files, tmp_path, capsys):
    from relulab.convex import solve

    d, X, y, _ = files
    code, out, err = run(["convex", str(d / "X.npy"), "--targets", str(d / "y.csv"), "--beta", "0.2",
                          "--free-bias", "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)["solution"]
    ref = solve(X, y, 0.2, bias="free")
    assert s["free_bias"] and s["objective"] == pytest.approx(ref.objective, rel=1e-9)
    assert s["gap"] <= 1e-6 * s["objective"]
    Y = np.stack([y, y[::-1]], 1)[:5]
    np.save(tmp_path / "X5.npy", X[:5, :1])
    np.save(tmp_path / "Y.npy", Y)
    code, out, err = run(["convex", str(tmp_path / "X5.npy"), "--targets", str(tmp_path / "Y.npy"), "--beta", "0.3",
                          "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)["solution"]
    assert s["outputs"] == 2 and s["relaxation"] and s["lower_bound"] <= s["objective"]
    code, out, err = run(["convex", str(tmp_path / "X5.npy"), "--targets", str(tmp_path / "Y.npy"), "--beta", "0.3",
                          "--gd-runs", "2"], capsys)
    assert code != 0 and err.startswith("relulab: error:") and "one output" in err
