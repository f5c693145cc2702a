"""The `relulab` command, in process through main(argv) (fast) and as a real subprocess."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import relulab
from relulab import cli

from clitools import run
from relulab.core import io as rio




def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("relulab: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    m = rio.build("mlp:2-16-16-1:relu", seed=0)
    rio.save(m, d / "mlp.safetensors")
    torch.save(m.state_dict(), d / "mlp.pt")
    rio.save(rio.build("cnn:1x6x6-c2k3-m2-3:leaky_relu:0.1", seed=0), d / "cnn.pt2", input_shape=(1, 6, 6))
    # seeded: some random files read as a safetensors header and get a different (also clear) error
    (d / "random.bin").write_bytes(random.Random(0).randbytes(3000))
    (d / "notes.txt").write_text("this is not a model\n" * 5)
    marker = d / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(d / "evil.pkl", "wb") as f:
        pickle.dump({"0.weight": Evil()}, f, protocol=2)

    class Sig(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)

    torch.export.save(torch.export.export(Sig(), (torch.randn(3, 2),)), d / "sigmoid.pt2")
    return d


def test_version(capsys):
    code, out, err = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"relulab {relulab.__version__}" and not err


def test_no_command_prints_help(capsys):
    code, out, err = run([], capsys)
    assert code == 2 and "info" in err and "demo" in err


def test_info_safetensors_human_and_json(models, capsys):
    code, out, err = run(["info", str(models / "mlp.safetensors")], capsys)
    assert code == 0 and not err
    assert "mlp:2-16-16-1:relu" in out and "parameters" in out and "337" in out
    code, out, err = run(["info", str(models / "mlp.safetensors"), "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["format"] == "safetensors" and d["arch"] == "mlp:2-16-16-1:relu"
    assert d["input_shape"] == [2] and d["output_shape"] == [1]
    assert d["parameters"] == 2 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    assert d["max_units"] == 32 and d["activations"] == ["relu"]
    assert [L["kind"] for L in d["layers"]] == ["linear", "relu", "linear", "relu", "linear"]


def test_info_state_dict_needs_arch(models, capsys):
    code, out, err = run(["info", str(models / "mlp.pt")], capsys)
    assert code == 1 and not out
    assert "--arch" in one_error_line(err)
    code, out, err = run(["info", str(models / "mlp.pt"), "--arch", "mlp:2-16-16-1:relu", "--json"], capsys)
    assert code == 0 and json.loads(out)["format"] == "torch"


def test_info_exported_program(models, capsys):
    code, out, err = run(["info", str(models / "cnn.pt2"), "--json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["format"] == "torch.export" and d["input_shape"] == [1, 6, 6] and d["output_shape"] == [3]
    assert set(d["activations"]) == {"leaky_relu", "maxpool"}


@pytest.mark.parametrize("args, words", [
    (["info", "{d}/missing.safetensors"], "no such file"),
    (["info", "{d}/random.bin"], "not a model file"),
    (["info", "{d}/notes.txt"], "not a model file"),
    (["info", "{d}/evil.pkl", "--arch", "mlp:2-1"], "refuses to unpickle"),
    (["info", "{d}/sigmoid.pt2"], "aten.sigmoid"),
    (["info", "{d}/cnn.pt2", "--input-shape", "2"], "takes inputs of shape 1x6x6, not 2"),
    (["info", "{d}/mlp.safetensors", "--input-shape", "3"], "takes inputs of shape 2, not 3"),
    (["info", "{d}/mlp.safetensors", "--input-shape", "x"], "input shape"),
    (["info", "{d}/mlp.safetensors", "--arch", "mlp:2-8-1"], "does not match"),
    (["info", "{d}/mlp.pt", "--arch", "mlp:2-16:tanh"], "unknown activation"),
    (["info", "{d}"], "is a directory"),
    (["info"], "required"),
    (["frobnicate"], "invalid choice"),
    (["demo"], "--out"),
    (["demo", "--out", "{d}/o", "--seed", "abc"], "--seed: expected an integer"),
])
def test_errors_are_one_line(models, capsys, args, words):
    code, out, err = run([a.format(d=models) for a in args], capsys)
    assert code != 0 and not out
    assert words in one_error_line(err)
    assert not (models / "executed").exists()


def test_internal_errors_are_one_line_too(monkeypatch, capsys, models):
    def boom(args, ctx):
        raise KeyError("oops")

    from relulab.commands import info

    monkeypatch.setattr(info, "run", boom)
    code, out, err = run(["info", str(models / "mlp.safetensors")], capsys)
    assert code == 1 and "internal error (KeyError)" in one_error_line(err)


def test_demo_quick_in_process(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, err = run(["demo", "--out", str(out_dir), "--quick", "--json", "--seed", "3"], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert s == json.loads((out_dir / "summary.json").read_text())
    for f in ("summary.json", "report.html", "decision.png", "training.png", "model.safetensors"):
        assert (out_dir / f).is_file() and f in s["files"]
    # the model the demo wrote is a model file the CLI reads
    code, out, err = run(["info", str(out_dir / "model.safetensors"), "--json"], capsys)
    assert code == 0 and json.loads(out)["arch"] == s["demo"]["arch"]


def test_registry_builds_every_sub_command():
    p = cli.build_parser()
    names = set(p._subparsers._group_actions[0].choices)
    assert {"info", "demo", "regions", "ntk", "init"} <= names

    def leaves(parser, name):
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            yield name, parser
        for a in subs:
            for child, sp in a.choices.items():
                yield from leaves(sp, f"{name} {child}")

    found = list(leaves(p, "relulab"))
    assert len(found) >= 5
    for name, sp in found:
        assert any(a.dest == "json" for a in sp._actions), f"{name} lacks --json"


# ---------------------------------------------------------------------- as a real process
def _command() -> list[str]:
    script = Path(sys.executable).parent / "relulab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "relulab.cli"]


def _proc(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "RELULAB_DEBUG"}
    return subprocess.run(_command() + args, capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def test_subprocess_version_info_and_errors(models, tmp_path):
    r = _proc(["--version"], tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"relulab {relulab.__version__}"
    r = _proc(["info", str(models / "cnn.pt2"), "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["input_shape"] == [1, 6, 6]
    assert r.stderr == ""
    # each process start imports torch (seconds), so one error case here; the rest run in process
    r = _proc(["info", str(models / "evil.pkl"), "--arch", "mlp:2-1"], tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert "refuses to unpickle" in one_error_line(r.stderr)
    assert not (models / "executed").exists()


def test_number_list_type():
    import argparse

    from relulab.cli import number_list

    floats = number_list(above=0, most=3)
    assert floats("0.5, 2,1e3") == [0.5, 2.0, 1000.0]
    ints = number_list(integer=True, lo=1, hi=100, ranges=True)
    assert ints("3-6") == [3, 4, 5, 6] and ints("7,2") == [7, 2]
    for parse, text in ((floats, "1,2,3,4"), (floats, "0"), (floats, "nan"), (floats, ""), (ints, "0-5"),
                        (ints, "2,x"), (ints, "5-200"), (number_list(integer=True), "2-4")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
