"""The reproduction registry: registration, typed configs, every quick entry run for real."""

from __future__ import annotations

import dataclasses
import json

import pytest

from relulab.core.errors import InvalidInputError
from relulab.experiments import registry
from relulab.experiments.reproduction import listing, reproduce

# every registered paper entry has its quick run tested (a new entry is covered the moment it registers);
# the ones named here must stay registered
PAPER_ENTRIES = sorted(set(registry.names()) - {"calibration"})
REQUIRED = ["hanin-rolnick-regions", "karhadkar-jacobian-rank", "arjevani-field-teacher-student",
            "tseran-montufar-maxout-complexity", "tseran-montufar-maxout-training", "escobar-maxpool-counts",
            "tseran-montufar-maxout-expected", "patel-montufar-local-complexity",
            "ntk-separation", "tseran-montufar-maxout-init", "saddle-to-saddle", "pilanci-ergen-convex",
            "senen-cerda-dropout-rate", "brechet-bures-critical-points", "muller-fisher-rao-rate",
            "berner-degenerate-parameterization", "liang-montufar-mirror-bias", "karhadkar-benign-overfitting",
            "li-ma-zhang-gd-vs-kernels", "williams-univariate-regimes", "zhang-naitzat-lim-tropical-sizes",
            "brandenburg-loho-montufar-relu-classifications"]


def test_listing_names_every_entry_with_paper_and_claim():
    items = {e["name"]: e for e in listing()}
    assert set(REQUIRED) <= set(PAPER_ENTRIES)
    for name in PAPER_ENTRIES + ["calibration"]:
        assert name in items
        assert items[name]["paper"] and items[name]["claim"]
        assert 0 < items[name]["quick_tasks"] <= items[name]["full_tasks"]


@pytest.mark.parametrize("name", PAPER_ENTRIES)
def test_quick_entry_is_a_tidy_table_with_a_comparison(name):
    exp = registry.get(name)
    if exp.missing_requirements():
        pytest.skip(f"{name} needs {exp.missing_requirements()} (installed in CI)")
    doc = reproduce(name, quick=True)
    assert not doc["failures"], doc["failures"]
    assert doc["rows"], "an entry must measure something"
    fields = [f.name for f in dataclasses.fields(exp.config)]
    for r in doc["rows"]:
        assert list(r)[: len(fields)] == fields  # every config field is a column, first
    # every grid point contributes rows carrying exactly its configuration
    points = registry.expand_grid(exp, exp.quick)
    keys = list(points[0])
    assert {tuple(r[k] for k in keys) for r in doc["rows"]} == {tuple(p[k] for k in keys) for p in points}
    assert doc["comparison"] and all(c["paper"] and c["this_run"] for c in doc["comparison"])
    if name == "tseran-montufar-maxout-training":
        # the quick run must train, not sit at chance (0.1 on ten classes): every network with the
        # paper's initialization learns
        accs = [r["test_accuracy"] for r in doc["rows"] if r["init"] == "maxout"]
        assert min(accs) > 0.5, accs


def test_entry_values_agree_with_direct_engine_calls():
    """The registry adds columns, it does not change what the engines return."""
    import torch

    from relulab import regions
    from relulab.core.plnet import PLNet
    from relulab.experiments.entries import _he_mlp

    rows = registry.get("hanin-rolnick-regions").run({"depth": 2, "width": 5, "seed": 3})
    net = PLNet.from_torch(_he_mlp(2, 2, 5, 0.1, 3), (2,))
    fn = regions.full_space
    ref = fn(net, box=(-1.0, 1.0))
    assert rows[0]["regions"] == ref.count and rows[0]["neurons"] == 10
    # independent check of the count: distinct patterns on a fine grid never exceed it
    g = torch.linspace(-1, 1, 200, dtype=torch.float64)
    pts = torch.cartesian_prod(g, g)
    assert len({tuple(p) for p in net.pattern(pts).tolist()}) <= ref.count


def test_reproduce_writes_results_and_report(tmp_path):
    doc = reproduce("ntk-separation", quick=True, out=tmp_path / "ntk")
    saved = json.loads((tmp_path / "ntk" / "reproduction.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(doc["rows"]))
    assert (tmp_path / "ntk" / "results.csv").read_text().splitlines()[0].startswith("n,d,angle,depth,seed")
    assert "Karhadkar" in (tmp_path / "ntk" / "report.html").read_text()


def test_bad_parameters_are_refused_by_name():
    exp = registry.get("calibration")
    with pytest.raises(InvalidInputError, match="no parameter.*'indx'"):
        exp.run({"indx": 1})
    with pytest.raises(InvalidInputError, match="'index' must be int"):
        exp.run({"index": 1.5})
    with pytest.raises(InvalidInputError, match="'fail' must be bool"):
        exp.run({"fail": 1})
    with pytest.raises(InvalidInputError, match="empty list"):
        registry.expand_grid(exp, {"index": []})
    with pytest.raises(InvalidInputError, match="unknown experiment 'nope'"):
        registry.get("nope")


@dataclasses.dataclass(frozen=True)
class Cfg:
    a: int = 1


def test_registration_is_one_decorator_and_checks_its_grids():
    with pytest.raises(InvalidInputError):
        @registry.experiment("test-bad-grid", paper="p", claim="c", full={"b": [1]}, quick={"a": [1]})
        def bad(cfg: Cfg) -> list[dict]:
            return []

    @registry.experiment("test-good", paper="p", claim="c", full={"a": [1, 2]}, quick={"a": [1]})
    def good(cfg: Cfg) -> list[dict]:
        return [{"twice": 2 * cfg.a}]

    try:
        assert registry.get("test-good").run({"a": 4}) == [{"a": 4, "twice": 8}]
    finally:
        registry._REGISTRY.pop("test-good", None)


def test_saddle_to_saddle_plateaus_are_the_rank_k_saddles():
    """Against the closed form: plateau k of a two-layer linear net from small initialization sits at
    the best rank-k approximation, loss sum_{i>k} s_i^2 / 2, with smallest Hessian eigenvalue -s_{k+1}."""
    rows = registry.get("saddle-to-saddle").run({"n": 3, "init": 1e-6, "ratio": 2.5, "seed": 1})
    s = [4.0, 1.6, 0.64]
    assert [r["rank"] for r in rows] == [0, 1, 2, 3]
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    for r in rows[:-1]:
        k = r["rank"]
        assert r["loss"] == pytest.approx(0.5 * sum(x * x for x in s[k:]), rel=1e-2)
        assert r["hessian_min_eig"] == pytest.approx(-s[k], rel=1e-2)
        assert r["grad_norm"] < 0.1
    assert rows[-1]["final"] and rows[-1]["loss"] < 1e-12 and rows[-1]["hessian_min_eig"] > -1e-8
    with pytest.raises(InvalidInputError, match="lr .* too large"):
        registry.get("saddle-to-saddle").run({"lr": 0.5})


def test_saddle_to_saddle_exact_saddles_have_escape_neurons():
    """Each plateau refined to an exact stationary point: zero gradient, the closed-form loss and Hessian
    eigenvalue to rounding, and the landscape engine finds the n - k unused units as escape neurons."""
    rows = registry.get("saddle-to-saddle").run({"n": 3, "init": 1e-6, "ratio": 2.5, "seed": 1})
    s = [4.0, 1.6, 0.64]
    for r in rows[:-1]:
        k = r["rank"]
        assert r["exact_grad_norm"] < 1e-12
        assert r["exact_loss"] == pytest.approx(0.5 * sum(x * x for x in s[k:]), rel=1e-12)
        assert r["exact_hessian_min_eig"] == pytest.approx(-s[k], rel=1e-10)
        assert 0 < r["exact_distance"] < 0.1  # the plateau was near, not at, the saddle
        assert r["engine_verdict"] == "strict saddle" and r["engine_stationary"]
        assert r["zero_units"] == r["escape_units"] == 3 - k and r["escape_relu_units"] == 2 * (3 - k)
        assert r["escape_units_are_zero_units"] and r["escape_verified"]
        # one ReLU unit sees half of the symmetric data: its best rate is -s_{k+1} / 2
        assert -s[k] / 2 * (1 + 1e-9) <= r["escape_second_order"] < 0
        assert r["escape_rate_linear"] == pytest.approx(-s[k], rel=1e-10)
    end = rows[-1]
    assert end["engine_verdict"].startswith("zero loss") and end["escape_units"] == 0 == end["zero_units"]


def test_relu_realization_of_a_linear_network():
    """The ReLU pair network on symmetric data has the linear network's loss, and its gradient is half the
    linear gradient on each copy (so the two have the same stationary points); at a raw plateau point
    (not exactly stationary) the engine says so, which is why the entry refines the plateaus first."""
    import torch

    from relulab.experiments.entries_saddles import _escape_neurons, _relu_realization
    from relulab.landscape.kink_stationarity import directional_stationarity

    g = torch.Generator().manual_seed(3)
    n = 3
    W1, W2, T = (torch.randn(n, n, generator=g, dtype=torch.float64) for _ in range(3))
    net, X, Y = _relu_realization(W1, W2, T)
    assert float(net.loss(X, Y)) == pytest.approx(0.5 * float(((W2 @ W1 - T) ** 2).sum()), rel=1e-13)
    W1r, W2r = W1.clone().requires_grad_(True), W2.clone().requires_grad_(True)
    (0.5 * ((W2r @ W1r - T) ** 2).sum()).backward()
    theta = net.parameters_vector().clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(net.with_parameters(theta).loss(X, Y), theta)
    sl = net.parameter_slices()
    gW, ga = gr[sl["W"]].reshape(2 * n, n), gr[sl["a"]].reshape(2 * n, n)
    torch.testing.assert_close(gW[:n], W1r.grad / 2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gW[n:], -W1r.grad / 2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga[:n], W2r.grad.T / 2, rtol=1e-12, atol=1e-12)
    # a generic point is not stationary
    assert directional_stationarity(net, X, Y, n_probe=0).verdict == "not stationary"
    # nor is a point near a saddle: the rank-1 saddle moved by 1e-4
    U, S, Vh = torch.linalg.svd(T)
    W1s = torch.zeros(n, n, dtype=torch.float64)
    W2s = torch.zeros(n, n, dtype=torch.float64)
    W1s[0], W2s[:, 0] = S[0].sqrt() * Vh[0], S[0].sqrt() * U[:, 0]
    exact = _escape_neurons(torch.cat([W1s.reshape(-1), W2s.reshape(-1)]), T, n)
    assert exact["engine_verdict"] == "strict saddle" and exact["escape_units"] == 2
    assert exact["escape_rate_linear"] == pytest.approx(-float(S[1]), rel=1e-12)
    near = _escape_neurons(torch.cat([W1s.reshape(-1), W2s.reshape(-1)]) + 1e-4, T, n)
    assert near["engine_verdict"] == "not stationary" and near["escape_units"] == 0


def test_catalog_read_from_source_equals_the_live_registry():
    """Listing reads the entry modules' source; what it reads is what importing them registers."""
    static = registry.catalog()
    registry._load()
    live_names = {n for n, e in registry._REGISTRY.items() if e.fn.__module__ in registry.ENTRY_MODULES}
    assert live_names == set(static)
    for name, info in static.items():
        exp = registry.get(name)
        assert info == registry.EntryInfo.of(exp, exp.fn.__module__)
        assert info.quick_tasks == len(registry.expand_grid(exp, exp.quick))
        assert info.full_tasks == len(registry.expand_grid(exp, exp.full))


def test_listing_and_lookup_errors_import_no_entry_module():
    import subprocess
    import sys

    code = ("import sys\n"
            "from relulab.experiments.reproduction import listing\n"
            "from relulab.experiments import registry\n"
            "assert len(listing()) == len(registry.names()) > 20\n"
            "try:\n    registry.get('nope')\nexcept ValueError as e:\n    assert 'unknown experiment' in str(e)\n"
            "from relulab.experiments.sweep import load_spec\n"
            "spec = 'experiment = \"hanin-rolnick-regions\"\\n[parameters]\\n'\n"
            "assert len(load_spec(spec + 'depth = [1, 2]\\nwidth = [4]').points()) == 2\n"
            "for bad in ('depht = [1]', 'depth = [1.5]', 'depth = []'):\n"
            "    try:\n        load_spec(spec + bad)\n        raise AssertionError(bad)\n"
            "    except ValueError:\n        pass\n"
            "e = registry.get('calibration')\n"
            "heavy = [m for m in ('torch', 'numpy', 'scipy') if m in sys.modules]\n"
            "mods = [m for m in registry.ENTRY_MODULES if m in sys.modules]\n"
            "print(heavy, mods)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] ['relulab.experiments.calibration']"


def test_a_module_that_is_not_plain_literals_is_imported(tmp_path, monkeypatch):
    mod = tmp_path / "relulab_test_dynamic_entries.py"
    mod.write_text(
        "from dataclasses import dataclass\n"
        "from relulab.experiments.registry import experiment\n"
        "SIZES = [1, 2, 3]\n"
        "@dataclass(frozen=True)\nclass C:\n    a: int = 1\n"
        "@experiment('test-dynamic', paper='p', claim='c', full={'a': SIZES}, quick={'a': SIZES[:1]})\n"
        "def dyn(cfg: C) -> list[dict]:\n    return [{'b': cfg.a}]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "ENTRY_MODULES", registry.ENTRY_MODULES + ["relulab_test_dynamic_entries"])
    with pytest.raises(registry._NotStatic):
        registry._static_entries("relulab_test_dynamic_entries", mod.read_text())
    plain = ("from dataclasses import dataclass\n"
             "from relulab.experiments import registry\n"
             "from relulab.experiments.registry import experiment{alias}\n"
             "@dataclass(frozen=True)\nclass C:\n    a: int = 1\n"
             "@{deco}('t', paper='p', claim='c', full={{'a': [1]}}, quick={{'a': [1]}})\n"
             "def f(cfg: C) -> list[dict]:\n    return []\n")
    assert len(registry._static_entries("m", plain.format(alias="", deco="experiment"))) == 1
    for alias, deco in ((" as exp", "exp"), ("", "registry.experiment")):  # registrations it cannot see
        with pytest.raises(registry._NotStatic):
            registry._static_entries("m", plain.format(alias=alias, deco=deco))
    try:
        info = registry.catalog()["test-dynamic"]
        assert (info.full_tasks, info.quick_tasks, info.fields) == (3, 1, {"a": "int"})
        assert registry.get("test-dynamic").run({"a": 2}) == [{"a": 2, "b": 2}]
    finally:
        registry._REGISTRY.pop("test-dynamic", None)
        registry._module_entries.cache_clear()


def test_literal_reader():
    import ast

    lit = lambda src: registry._literal(ast.parse(src, mode="eval").body)  # noqa: E731
    assert lit("{'a': [1, -2.5], 'b': list(range(3)), 'c': 'x' 'y' + 'z'}") == {"a": [1, -2.5], "b": [0, 1, 2],
                                                                              "c": "xyz"}
    for bad in ("SIZES", "f(1)", "[1] * 3", "{**d}", "-'a'", "range(n)"):
        with pytest.raises(registry._NotStatic):
            lit(bad)


def test_local_complexity_configurations_draw_independent_samples():
    """Each configuration of the local-complexity entry has its own data stream: configurations that
    share seed and d (and hence used to share a sample) get different points; the same one, the same."""
    import torch

    from relulab.experiments.entries_complexity import LocalComplexityConfig, _lc_data

    base = LocalComplexityConfig(d=5, width=50, sigma=0.5, seed=1, n=3000)
    X = _lc_data(base)
    assert torch.equal(X, _lc_data(LocalComplexityConfig(d=5, width=50, sigma=0.5, seed=1, n=3000)))
    for other in (dataclasses.replace(base, width=200), dataclasses.replace(base, sigma=0.1),
                  dataclasses.replace(base, d=2), dataclasses.replace(base, seed=2)):
        Y = _lc_data(other)
        k = min(X.shape[1], Y.shape[1])
        # independent N(0, 1) samples: the correlation of matched coordinates is ~N(0, 1/sqrt(n k))
        corr = float((X[:, :k] * Y[:, :k]).mean())
        assert abs(corr) < 6 / (3000 * k) ** 0.5 and not torch.equal(X[:, :k], Y[:, :k])
    assert abs(float(X.mean())) < 0.1 and abs(float(X.var()) - 1) < 0.1


def test_maxout_expected_counts_each_sample_of_networks_once():
    """With and without the box, a (k, width, seeds, seed) configuration samples the same networks: its
    line measurement is one sample in the comparison, not two."""
    from relulab.experiments.entries_combinatorics import MaxoutExpectedConfig, tseran_montufar_maxout_expected
    from relulab.experiments.entries_combinatorics import _summarize_expected as summarize

    rows = []
    for box in (False, True):
        cfg = MaxoutExpectedConfig(k=2, width=3, seeds=6, seed=0, box=box)
        rows += [{**dataclasses.asdict(cfg), **r} for r in tseran_montufar_maxout_expected(cfg)]
    assert rows[0]["line_mean"] == rows[1]["line_mean"]  # the same networks
    text = summarize(rows).comparison[0][2]
    assert text.endswith("of 1 distinct samples of networks"), text
