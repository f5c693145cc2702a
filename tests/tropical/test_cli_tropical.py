"""`relulab tropical` against the library and the generic region engine; one-line errors."""

import json

import pytest

import relulab
from clitools import run
from relulab.core import io as rio


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("tropical")
    rio.save(rio.build("mlp:2-3-2-1:relu", seed=1), d / "m.safetensors")
    return d / "m.safetensors"


def test_reduce_counts_match_regions(model, capsys):
    from relulab import regions

    code, out, err = run(["tropical", str(model), "--reduce", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["complete"] and doc["certified"] and doc["max_abs_error_at_64_points"] < 1e-12
    full = regions.full_space
    ref = full(relulab.load(model))
    assert doc["outputs"][0]["linear_regions"] == ref.linear_count
    assert doc["outputs"][0]["boundary_cells"] == ref.decision_boundary_pieces


def test_budget_and_errors(model, capsys):
    code, out, err = run(["tropical", str(model), "--max-monomials", "3", "--json"], capsys)
    assert code == 0 and json.loads(out)["complete"] is False
    code, out, err = run(["tropical", str(model), "--max-monomials", "0"], capsys)
    assert code != 0 and err.startswith("relulab: error:") and err.count("\n") == 1


def test_count_tropical_sizes(capsys):
    from relulab import regions
    from relulab.tropical.sizes import relu_mlp

    code, out, err = run(["count", "tropical", "--widths", "2", "--max-depth", "2", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    from relulab.tropical import from_network

    for r in rows:
        T = from_network(relu_mlp(2, 2, r["depth"], 0), exact=True)
        assert [r["raw_p"], r["raw_q"]] == T.sizes[0]
        assert r["reduced_p"] <= r["raw_p"] and r["certified"] and r["regions_certified"]
        assert r["linear_regions"] == regions.full_space(relu_mlp(2, 2, r["depth"], 0)).linear_count
    code, out, err = run(["count", "tropical", "--widths", "2", "--max-depth", "2", "--max-monomials", "3"], capsys)
    assert code == 0 and "> 3 or time" in out
    code, out, err = run(["count", "tropical", "--widths", "0"], capsys)
    assert code != 0 and err.startswith("relulab: error:")
