"""`relulab count`: each kind against its library call; one-line errors."""

import json

import numpy as np

from clitools import run
from relulab.combinatorics import count_maxpool
from relulab.tropical.fan import cover_count


def test_maxpool(capsys):
    code, out, err = run(["count", "maxpool", "--kernel", "2", "--stride", "1", "--size", "3x4", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["count"] == 1536 == count_maxpool((3, 4), 2, 1).count and doc["facets"] == 40
    code, out, err = run(["count", "maxpool", "--kernel", "3", "--stride", "2", "--size", "9", "--recurrence",
                          "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["recurrence"] == ["3"]  # windows overlapping in one input never conflict: 3^m
    code, out, err = run(["count", "maxpool", "--kernel", "3", "--size", "2"], capsys)
    assert code != 0 and err.startswith("relulab: error:")
    code, out, err = run(["count", "maxpool", "--kernel", "2x", "--size", "4"], capsys)
    assert code != 0 and err.startswith("relulab: error:")


def test_classifications(tmp_path, capsys):
    X = np.random.default_rng(5).standard_normal((5, 2))
    np.save(tmp_path / "x.npy", X)
    code, out, err = run(["count", "classifications", str(tmp_path / "x.npy"), "--width", "1", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["count"] == cover_count(5, 2)
    np.save(tmp_path / "line.npy", np.array([[0.0], [1.0], [2.0], [3.5]]))
    code, out, err = run(["count", "classifications", str(tmp_path / "line.npy"), "--width", "2", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["count"] == 14 == json.loads(out)["line_count"]  # at most 2 sign changes
    code, out, err = run(["count", "classifications", str(tmp_path / "line.npy"), "--width", "1", "--model",
                          "tropical", "--labels", "1,-1,1,-1", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["count"] == 8 and len(json.loads(out)["sublevel"]) == 3
    code, out, err = run(["count", "classifications", str(tmp_path / "line.npy"), "--width", "2", "--labels",
                          "1,1,1,1"], capsys)
    assert code != 0 and err.startswith("relulab: error:")
    code, out, err = run(["count", "classifications", str(tmp_path / "missing.npy"), "--width", "1"], capsys)
    assert code != 0 and err.startswith("relulab: error:")


def test_maxout(capsys):
    code, out, err = run(["count", "maxout", "--widths", "3", "--k", "2", "--seeds", "3", "--inputs", "1", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["line_counts"]) == 3 and doc["line_expected"] > 0 and doc["bounds"]["regions"] > 0
    code, out, err = run(["count", "maxout", "--widths", "3", "--k", "1"], capsys)
    assert code != 0 and err.startswith("relulab: error:")


def test_maxpool_table(capsys):
    from relulab.combinatorics.maxpool import brute_force_tuples, pool1d_facet_count, pool_windows

    code, out, err = run(["count", "maxpool", "--table", "--size", "8", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["rows_1d"]) == 12 and {tuple(r["size"]) for r in doc["rows_2d"]} >= {(2, 3), (3, 3), (6, 6)}
    for r in doc["rows_1d"]:
        k, s = r["kernel"][0], r["stride"][0]
        assert r["vertices"] == brute_force_tuples(pool_windows(8, k, s))
        assert r["facets"] == pool1d_facet_count(k, s, r["windows"])
    code, out, err = run(["count", "maxpool", "--table"], capsys)
    assert code == 0 and "k=5" in out and "2245265631376" in out
    code, out, err = run(["count", "maxpool", "--table", "--kernel", "2"], capsys)
    assert code != 0 and err.startswith("relulab: error:")
    code, out, err = run(["count", "maxpool", "--size", "5"], capsys)
    assert code != 0 and "--kernel" in err
