"""Conventions every package follows: one lazy-import map per package, a light ``import relulab``,
the version defined once."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import relulab

SRC = Path(relulab.__file__).parent
LAZY_PACKAGES = ["relulab", "relulab.core", "relulab.kernels", "relulab.landscape", "relulab.init"]


def _declared_all(path: Path) -> list[str]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def _fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (same sys.path) and return the JSON it prints."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_one_map_per_package(package):
    mod = importlib.import_module(package)
    assert isinstance(mod._EXPORTS, dict) and mod._EXPORTS
    listed = dir(mod)
    for name in mod.__all__:
        assert name in listed
        assert getattr(mod, name) is not None
    with pytest.raises(AttributeError):
        getattr(mod, "no_such_name")


@pytest.mark.parametrize("package", ["relulab.kernels", "relulab.landscape", "relulab.init"])
def test_map_lists_every_public_name_of_every_submodule(package):
    """A name added to a submodule's __all__ but not to the package map is unreachable; this
    catches the drift."""
    mod = importlib.import_module(package)
    folder = SRC / package.split(".")[1]
    for sub in sorted(folder.glob("[!_]*.py")):
        for name in _declared_all(sub):
            assert mod._EXPORTS.get(name) == sub.stem, f"{package}._EXPORTS lacks {name!r} -> {sub.stem!r}"
    for name, sub in mod._EXPORTS.items():
        assert name in _declared_all(folder / f"{sub}.py"), f"{name} is not in {package}.{sub}.__all__"


def test_dir_lists_engines_and_model_files():
    names = dir(relulab)
    for name in ("regions", "kernels", "landscape", "init", "load", "save", "build", "PLNet", "RelulabError",
                 "__version__"):
        assert name in names
    # optional engines appear exactly when their package exists
    for name in relulab._OPTIONAL:
        assert (name in names) == (SRC / name).exists() or (SRC / f"{name}.py").exists()


def test_import_is_light_and_submodules_resolve():
    d = _fresh("import json, sys, relulab; light = 'torch' not in sys.modules; "
               "import relulab.core.io; s = relulab.core.io.save is relulab.save; "
               "e = relulab.core.errors.InvalidInputError is relulab.InvalidInputError; "
               "print(json.dumps([light, s, e, relulab.regions.__name__, relulab.nn.__name__]))")
    assert d == [True, True, True, "relulab.regions", "relulab.nn"]


def test_core_errors_do_not_import_torch():
    d = _fresh("import json, sys; from relulab.core.errors import RelulabError; "
               "from relulab.core import InvalidInputError; print(json.dumps('torch' in sys.modules))")
    assert d is False


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["frobnicate"], ["regions", "--help"],
                                  ["landscape", "--help"]])
def test_cli_help_and_version_do_not_import_torch(argv):
    d = _fresh("import json, sys\nfrom relulab import cli\ntry:\n    cli.main(%r)\nexcept SystemExit:\n    pass\n"
               "print(json.dumps(sorted(m for m in ('torch', 'numpy', 'scipy', 'matplotlib') if m in sys.modules)))"
               % (argv,))
    assert d == []


def test_version_is_defined_once():
    from relulab._version import __version__

    assert relulab.__version__ == __version__
    pyproject = (SRC.parent.parent / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "relulab._version.__version__" in pyproject
    assert "\nversion =" not in pyproject.split("[tool.setuptools.dynamic]")[0]


def test_command_help_lives_in_the_registry():
    from relulab import cli

    full = cli.build_parser()
    choices = full._subparsers._group_actions[0]._choices_actions
    assert {a.dest: a.help for a in choices} == {name: h for name, (_, h) in cli.COMMANDS.items()}
    lazy = cli.build_parser(["info", "x"])
    assert list(lazy._subparsers._group_actions[0].choices) == list(cli.COMMANDS)
