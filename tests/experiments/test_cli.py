"""relulab reproduce / sweep from the command line: --json documents and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from relulab.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_reproduce_list_and_run_json(capsys, tmp_path):
    code, out, err = run(capsys, "reproduce", "--list", "--json")
    assert code == 0
    names = {e["name"] for e in json.loads(out)["experiments"]}
    assert {"hanin-rolnick-regions", "ntk-separation", "escobar-maxpool-counts"} <= names
    code, out, err = run(capsys, "reproduce", "ntk-separation", "--quick", "--json", "--out", str(tmp_path / "n"))
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["experiment"] == "ntk-separation" and len(doc["rows"]) == 3 and doc["verdict"]
    assert (tmp_path / "n" / "report.html").is_file()


@pytest.mark.parametrize("argv, match", [
    (["reproduce", "nope"], "unknown experiment 'nope'"),
    (["reproduce"], "give an experiment NAME or --list"),
    (["sweep"], "give a SPEC.toml"),
    (["sweep", "missing.toml"], "no such file"),
])
def test_errors_are_one_line(capsys, argv, match):
    code, out, err = run(capsys, *argv)
    assert code != 0 and out == ""
    assert err.startswith("relulab: error: ") and match in err and err.count("\n") == 1


def test_sweep_and_summary_json(capsys, tmp_path):
    pytest.importorskip("pyarrow")
    spec = tmp_path / "s.toml"
    spec.write_text('experiment = "calibration"\nseeds = [0, 1]\n[parameters]\nindex = [2, 3]\n')
    code, out, err = run(capsys, "sweep", str(spec), "--workers", "1", "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["total"], doc["ran"], doc["rows"]) == (4, 4, 4)
    # progress on stderr (done / total, failures, time left), stdout is the JSON alone
    assert "4/4 done" in err and "0 failed" in err and "0 s left" in err
    code, out, err = run(capsys, "sweep", "--summary", str(tmp_path / "s"), "--json")
    assert code == 0 and json.loads(out)["rows"] == 4
    import csv

    rows = list(csv.DictReader(open(tmp_path / "s" / "results.csv")))
    assert sorted(int(r["value"]) for r in rows) == [4, 5, 9, 10]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from relulab.core import io as rio

    path = tmp_path_factory.mktemp("split") / "m.safetensors"
    rio.save(rio.build("mlp:2-8-8-1:relu", seed=3), path)
    return path


@pytest.mark.parametrize("domain", [["--all"], ["--box", "-2", "1.5"]])
def test_regions_split_matches_the_single_run(capsys, tmp_path, model_file, domain):
    import relulab
    from relulab.regions import full_space

    net = relulab.load(model_file)
    code, out, err = run(capsys, "regions", str(model_file), *domain, "--split", "7", "--workers", "1", "--json",
                         "--plot", str(tmp_path / "r.png"))
    assert code == 0, err
    doc = json.loads(out)
    ref = full_space(net, None if domain == ["--all"] else (torch.full((2,), -2.0), torch.full((2,), 1.5)))
    assert (doc["count"], doc["linear_count"]) == (ref.count, ref.linear_count)
    assert doc["cells"] >= 7 and doc["pieces"] > doc["count"] and doc["executor"] == "in-process"
    assert doc.get("unbounded_count") == (ref.unbounded_count if domain == ["--all"] else None)
    assert (tmp_path / "r.png").stat().st_size > 1000
    code, out, err = run(capsys, "regions", str(model_file), *domain, "--split", "3")
    assert code == 0 and "activation regions" in out and f"{ref.count:,}" in out


def test_regions_split_certify_is_each_cells_proof(capsys, model_file):
    """--certify with --split: "never" skips every cell's proof (not certified), "always" proves them."""
    got = {}
    for mode in ("never", "always"):
        code, out, err = run(capsys, "regions", str(model_file), "--all", "--split", "4", "--workers", "1",
                             "--certify", mode, "--json")
        assert code == 0, err
        got[mode] = json.loads(out)
    assert got["never"]["certified"] is False and got["always"]["certified"] is True
    assert got["never"]["count"] == got["always"]["count"]


@pytest.mark.parametrize("argv, match", [
    (["--line", "0", "1", "--split", "4"], "--split applies to --box and --all only"),
    (["--line", "0", "1", "--workers", "2"], "--workers only apply to --box and --all"),
    (["--plane", "--ray"], "--ray only apply to --box and --all"),
    (["--all", "--ray-timeout", "5"], "--ray-timeout only applies with --ray"),
    (["--line", "0", "1", "--method", "facet"], "--method applies to --box and --all only"),
    (["--all", "--split", "4", "--method", "vertex"], "--method cannot be combined with --split"),
    (["--all", "--split", "4", "--audit", "10"], "--audit is not available with --split"),
    (["--all", "--split", "0"], "--split"),
])
def test_regions_split_flag_errors(capsys, model_file, argv, match):
    code, out, err = run(capsys, "regions", str(model_file), *argv)
    assert code != 0 and out == ""
    assert err.startswith("relulab: error: ") and match in err and err.count("\n") == 1


def test_regions_workers_without_split_deal_the_facet_charts(capsys, tmp_path):
    """``--all --workers 2`` (no --split) at d = 6: the facet engine's orthant charts on two local
    processes, the one-process count; ``--method vertex`` and ``--method facet`` count the same
    regions."""
    from relulab.core import io as rio

    path = tmp_path / "m6.safetensors"
    rio.save(rio.build("mlp:6-8-6-1:relu", seed=3), path)
    counts = {}
    for flags in ([], ["--workers", "2"], ["--method", "vertex"], ["--method", "facet"]):
        code, out, err = run(capsys, "regions", str(path), "--all", *flags, "--json")
        assert code == 0, err
        data = json.loads(out)
        assert data["certified"] is True
        counts[" ".join(flags)] = data["count"]
    assert len(set(counts.values())) == 1, counts
    code, out, err = run(capsys, "regions", str(path), "--all", "--workers", "2")
    assert code == 0 and "2 workers (local, orthant charts)" in out
