"""relulab reproduce / sweep from the command line: --json documents and one-line errors."""

from __future__ import annotations

import json

import pytest

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
    assert "4/4 done" in err  # progress on stderr, stdout is the JSON alone
    code, out, err = run(capsys, "sweep", "--summary", str(tmp_path / "s"), "--json")
    assert code == 0 and json.loads(out)["rows"] == 4
    import csv

    rows = list(csv.DictReader(open(tmp_path / "s" / "results.csv")))
    assert sorted(int(r["value"]) for r in rows) == [4, 5, 9, 10]
