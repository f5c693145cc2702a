"""The mirror, benign and gd-kernels sub-commands: one JSON document on stdout, one-line errors."""

import json

import pytest

from relulab.cli import main

RUNS = [
    (["dynamics", "mirror", "--widths", "20", "--potentials", "x^2", "--scaling", "unscaled", "--steps", "50"], 1),
    (["dynamics", "benign", "--n", "10", "--flipped", "1", "--dims", "20", "--gammas", "0.1", "--seeds", "1",
      "--width", "4"], 1),
    (["dynamics", "gd-kernels", "--dims", "3", "--steps", "5", "--test-samples", "200"], 1),
]


@pytest.mark.parametrize("argv,rows", RUNS)
def test_json_document(argv, rows, capsys, tmp_path):
    assert main(argv + ["--json", "--plot", str(tmp_path / "fig")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["rows"]) == rows and doc["plot"].endswith(".png")


@pytest.mark.parametrize("argv,flag", [
    (["dynamics", "benign", "--gammas", "2"], "--gammas"),
    (["dynamics", "benign", "--n", "10", "--flipped", "5"], "--flipped"),
    (["dynamics", "mirror", "--widths", "0"], "--widths"),
    (["dynamics", "gd-kernels", "--dims", "x"], "--dims"),
])
def test_one_line_errors(argv, flag, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and flag in err
