"""`relulab landscape classify` and `relulab landscape jacobian-rank` against the engines they wrap, on
hand-built shallow networks with known verdicts, and their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from clitools import run
from relulab.core import io as rio
from relulab.landscape import ShallowNet, directional_stationarity, full_rank_fraction
from relulab.nn import Abs

N, D = 10, 2


def _net(m: int, o: int = 1, act=None, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, m), act or nn.ReLU(), nn.Linear(m, o)).double()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Model files, data and targets with known verdicts; the float64 modules for the reference calls."""
    d = tmp_path_factory.mktemp("landscape")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D))
    np.save(d / "x.npy", X)
    np.savetxt(d / "x.csv", X, delimiter=",")
    Xt = torch.as_tensor(X)
    mods = {}

    # not stationary: a random network and random targets
    mods["free"] = _net(5, seed=1)
    np.save(d / "y_free.npy", rng.normal(size=N))

    # local minimum with positive loss: every neuron active on every sample, so f is an affine function of x
    # there; residuals orthogonal to (1, x_1, x_2) make the point stationary (and least-squares optimal)
    net = _net(3, seed=2)
    with torch.no_grad():
        net[0].bias.fill_(10.0)
        net[0].weight.mul_(0.3)
    A = np.concatenate([np.ones((N, 1)), X], axis=1)
    r = rng.normal(size=N)
    r -= A @ np.linalg.lstsq(A, r, rcond=None)[0]
    with torch.no_grad():
        np.save(d / "y_min.npy", net(Xt).numpy()[:, 0] - r)
    mods["min"] = net

    # strict saddle: W = 0, b = 0, a = 0 (every pair on its kink), c = mean of the targets
    net = _net(3, seed=3)
    y = rng.normal(size=N)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net[2].bias.fill_(float(y.mean()))
    np.save(d / "y_saddle.npy", y)
    mods["saddle"] = net

    # two outputs, abs activation, as a torch.export program
    mods["abs"] = _net(4, o=2, act=Abs(), seed=4)
    np.save(d / "y_abs.npy", rng.normal(size=(N, 2)))

    for name, mod in mods.items():
        if name == "abs":
            rio.save(mod, d / "abs.pt2", input_shape=(D,))
        else:
            rio.save(mod, d / f"{name}.safetensors")
    rio.save(rio.build("mlp:2-4-4-1:relu", seed=0), d / "deep.safetensors")
    rio.save(rio.build("cnn:1x6x6-c2k3-m2-3:relu", seed=0), d / "cnn.pt2", input_shape=(1, 6, 6))
    np.save(d / "x3.npy", rng.normal(size=(6, 3)))     # 18 numbers: divisible by d = 2, still the wrong shape
    np.save(d / "x5x3.npy", rng.normal(size=(5, 3)))
    np.save(d / "y_short.npy", rng.normal(size=N - 1))
    np.save(d / "y_wide.npy", rng.normal(size=(N, 2)))
    return d, Xt, mods


def model_file(d, name):
    return str(d / ("abs.pt2" if name == "abs" else f"{name}.safetensors"))


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("relulab: error: ") and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------- classify
@pytest.mark.parametrize("name, verdict, trainable", [("free", "not stationary", "all"),
                                                      ("min", "local minimum", "all"),
                                                      ("saddle", "strict saddle", "all"),
                                                      ("abs", "not stationary", "first")])
def test_classify_matches_engine(case, capsys, name, verdict, trainable):
    d, X, mods = case
    y = np.load(d / f"y_{name}.npy")
    code, out, err = run(["landscape", "classify", model_file(d, name), str(d / "x.npy"), "--targets",
                          str(d / f"y_{name}.npy"), "--trainable", trainable, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    ref = directional_stationarity(ShallowNet.from_torch(mods[name], trainable=trainable), X, torch.as_tensor(y))
    assert ref.verdict == verdict and doc["verdict"] == verdict, (ref.reason, doc["reason"])
    assert doc["loss"] == pytest.approx(ref.loss, rel=1e-12, abs=1e-15)
    assert doc["gradient_autograd_norm"] == pytest.approx(ref.gradient_autograd_norm, rel=1e-9, abs=1e-14)
    assert doc["n_kinks"] == ref.n_kinks and doc["escape_neurons"] == ref.escape_neurons
    assert doc["min_directional_derivative"] == pytest.approx(ref.min_directional_derivative, rel=1e-9, abs=1e-14)
    assert doc["n"] == N and doc["network"]["trainable"] == trainable
    assert np.array(doc["kinks"]).shape == (N, mods[name][0].out_features)


def test_classify_known_facts_and_text(case, capsys):
    d, X, _ = case
    code, out, err = run(["landscape", "classify", model_file(d, "saddle"), str(d / "x.csv"), "--targets",
                          str(d / "y_saddle.npy"), "--json"], capsys)
    doc = json.loads(out)
    assert doc["n_kinks"] == N * 3 and doc["escape_neurons"] == [0, 1, 2] and doc["gradient_autograd_norm"] < 1e-12
    assert doc["saddle_second_order"] < 0 and doc["saddle_verified"] is True
    code, out, err = run(["landscape", "classify", model_file(d, "min"), str(d / "x.npy"), "--targets",
                          str(d / "y_min.npy"), "--json"], capsys)
    doc = json.loads(out)
    assert doc["loss"] > 0.05 and doc["n_kinks"] == 0 and doc["probe_min_change"] >= 0
    code, out, err = run(["landscape", "classify", model_file(d, "free"), str(d / "x.npy"), "--targets",
                          str(d / "y_free.npy")], capsys)
    assert code == 0 and not err
    for words in ("not stationary", "gradient norm", "kinks", "escape neurons", "descent direction"):
        assert words in out, out


# ---------------------------------------------------------------------- jacobian-rank MODEL DATA
def _autograd_rank(mod: nn.Sequential, X: torch.Tensor, trainable: str) -> int:
    names = ["0.weight", "0.bias"] + (["2.weight", "2.bias"] if trainable == "all" else [])
    params = dict(mod.named_parameters())

    def outputs(*tensors):
        return torch.func.functional_call(mod, {**params, **dict(zip(names, tensors))}, (X,)).reshape(-1)

    jac = torch.autograd.functional.jacobian(outputs, tuple(params[k].detach() for k in names))
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1)
    return int(torch.linalg.matrix_rank(J))


@pytest.mark.parametrize("name, trainable", [("free", "first"), ("min", "first"), ("abs", "first"),
                                             ("free", "all"), ("abs", "all")])
def test_jacobian_rank_matches_autograd(case, capsys, name, trainable):
    d, X, mods = case
    code, out, err = run(["landscape", "jacobian-rank", model_file(d, name), str(d / "x.npy"),
                          "--trainable", trainable, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    mod = mods[name]
    rank = _autograd_rank(mod, X, trainable)
    assert doc["rank"] == rank
    assert doc["n_outputs"] == N * mod[2].out_features and doc["full_rank"] == (rank == doc["n_outputs"])
    assert doc["n_parameters"] == sum(p.numel() for p in (mod if trainable == "all" else mod[0]).parameters())
    assert doc["nonempty"] is True and doc["has_global_minimum"] is None


def test_jacobian_rank_zero_loss_set(case, capsys, tmp_path):
    d, X, mods = case
    mod = mods["min"]  # 3 neurons, 9 first-layer parameters, 10 samples: never full rank
    with torch.no_grad():
        np.save(tmp_path / "fit.npy", mod(X).numpy())  # the network's own outputs: zero loss at its point
    code, out, err = run(["landscape", "jacobian-rank", model_file(d, "min"), str(d / "x.npy"), "--targets",
                          str(tmp_path / "fit.npy"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rank"] == _autograd_rank(mod, X, "first") == 3  # all active: J = a_j (x_i, 1), rank d + 1
    assert doc["full_rank"] is False and doc["has_global_minimum"] is True
    assert doc["zero_loss_dimension"] == 9 - 3
    code, out, err = run(["landscape", "jacobian-rank", model_file(d, "min"), str(d / "x.csv"), "--targets",
                          str(d / "y_min.npy")], capsys)
    assert code == 0 and "rank" in out and "no zero-loss point" in out, out + err


# ---------------------------------------------------------------------- jacobian-rank --grid
def test_jacobian_rank_grid(capsys, tmp_path):
    argv = ["landscape", "jacobian-rank", "--grid", "--dims", "1", "--ns", "3", "6", "--ms", "1", "4",
            "--samples", "20", "--workers", "1"]
    code, out, err = run(argv + ["--json", "--plot", str(tmp_path / "grid.png")], capsys)
    assert code == 0, err
    doc = json.loads(out)
    frac, low, high = (np.array(doc[k]) for k in ("fraction", "low", "high"))
    assert frac.shape == (1, 2, 2) and ((0 <= frac) & (frac <= 1)).all()
    assert ((low <= frac + 1e-12) & (frac <= high + 1e-12)).all()
    for b, n in enumerate((3, 6)):
        for c, m in enumerate((1, 4)):
            if m * 2 < n:
                assert frac[0, b, c] == 0
    ref = full_rank_fraction([1], [3, 6], [1, 4], samples=20, seed=0, workers=1)
    assert doc["full_rank"] == ref.full_rank.tolist()
    assert (tmp_path / "grid.png").stat().st_size > 1000
    code, out, err = run(argv, capsys)
    assert code == 0 and "d = 1" in out and "0*" in out
    code, out, err = run(argv + ["--measure", "count", "--json"], capsys)
    assert code == 0, err
    ref = full_rank_fraction([1], [3, 6], [1, 4], samples=20, seed=0, workers=1, measure="count")
    assert json.loads(out)["full_rank"] == ref.full_rank.tolist() and json.loads(out)["measure"] == "count"


def test_jacobian_rank_grid_preset_and_progress(capsys, monkeypatch):
    import io

    from rich.console import Console

    from relulab import cli

    buf = io.StringIO()
    monkeypatch.setattr(cli.Context, "err", property(lambda self: Console(file=buf, force_terminal=True, width=150)))
    argv = ["landscape", "jacobian-rank", "--grid", "--dims", "2", "--ns", "4", "--ms", "2", "--samples", "30",
            "--workers", "1", "--preset", "paper", "--output-weights", "sign"]
    code, out, err = run(argv + ["--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    ref = full_rank_fraction([2], [4], [2], samples=30, seed=0, workers=1, preset="paper", output_weights="sign")
    assert doc["full_rank"] == ref.full_rank.tolist()
    assert doc["samplers"] == {"data": "uniform", "init": "torch", "output_weights": "sign"}
    assert buf.getvalue() == ""  # nothing drawn under --json
    code, out, err = run(argv, capsys)
    assert code == 0 and "samplers: data uniform" in out, err
    assert "full-rank grid" in buf.getvalue() and "30/30" in buf.getvalue()
    buf.truncate(0)
    code, out, err = run(argv + ["--quiet"], capsys)
    assert code == 0 and buf.getvalue() == ""
    code, out, err = run(["landscape", "jacobian-rank", "x.safetensors", "x.npy", "--preset", "paper"], capsys)
    assert code != 0 and "--preset is an option of jacobian-rank --grid" in err


def test_jacobian_rank_draws_its_steps(case, capsys, monkeypatch):
    import io

    from rich.console import Console

    from relulab import cli

    d, X, mods = case
    buf = io.StringIO()
    monkeypatch.setattr(cli.Context, "err", property(lambda self: Console(file=buf, force_terminal=True, width=150)))
    code, out, err = run(["landscape", "jacobian-rank", model_file(d, "min"), str(d / "x.npy"), "--targets",
                          str(d / "y_min.npy")], capsys)
    assert code == 0, err
    assert "jacobian-rank" in buf.getvalue() and "3/3" in buf.getvalue()


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("args, needle", [
    (["classify", "{d}/deep.safetensors", "{d}/x.npy", "--targets", "{d}/y_free.npy"], "one-hidden-layer"),
    (["jacobian-rank", "{d}/deep.safetensors", "{d}/x.npy"], "linear, relu, linear, relu, linear"),
    (["jacobian-rank", "{d}/cnn.pt2", "{d}/x.npy"], "one-hidden-layer"),
    (["classify", "{d}/cnn.pt2", "{d}/x.npy", "--targets", "{d}/y_free.npy"], "one-hidden-layer"),
    (["classify", "{d}/free.safetensors", "{d}/x5x3.npy", "--targets", "{d}/y_free.npy"], "shape 5x3 is not n x 2"),
    (["classify", "{d}/free.safetensors", "--targets", "{d}/y_free.npy"], "DATA"),
    (["classify", "{d}/free.safetensors", "{d}/x.npy"], "--targets"),
    (["jacobian-rank", "{d}/saddle.safetensors", "{d}/x.npy"], "on a kink: neuron 0 has pre-activation exactly 0"),
    (["jacobian-rank", "{d}/free.safetensors"], "needs MODEL and DATA"),
    (["jacobian-rank"], "needs MODEL and DATA"),
    (["classify", "{d}/free.safetensors", "{d}/x3.npy", "--targets", "{d}/y_free.npy"], "is not n x 2"),
    (["jacobian-rank", "{d}/free.safetensors", "{d}/x5x3.npy"], "DATA"),
    (["jacobian-rank", "{d}/free.safetensors", "{d}/missing.npy"], "missing.npy"),
    (["jacobian-rank", "{d}/free.safetensors", "spirals:10"], ".npy or .csv"),
    (["classify", "{d}/free.safetensors", "{d}/x.npy", "--targets", "{d}/y_short.npy"], "9 rows"),
    (["classify", "{d}/free.safetensors", "{d}/x.npy", "--targets", "{d}/y_wide.npy"], "--targets"),
    (["classify", "{d}/free.safetensors", "{d}/x.npy", "--targets", "{d}/y_free.npy", "--probes", "-1"],
     "--probes"),
    (["jacobian-rank", "--grid", "--dims", "1", "--ns", "3"], "--ms"),
    (["jacobian-rank", "--grid", "--dims", "0", "--ns", "3", "--ms", "1"], "--dims: must be an integer from 1"),
    (["jacobian-rank", "{d}/free.safetensors", "{d}/x.npy", "--grid", "--dims", "1", "--ns", "3", "--ms", "1"],
     "--grid takes no MODEL"),
    (["jacobian-rank", "{d}/free.safetensors", "{d}/x.npy", "--dims", "1"], "--dims"),
])
def test_errors_are_one_line(case, capsys, args, needle):
    d = case[0]
    code, out, err = run(["landscape"] + [a.format(d=d) for a in args], capsys)
    assert code != 0 and out == ""
    assert needle in one_line(err), err
