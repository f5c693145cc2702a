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
LAZY_PACKAGES = ["relulab", "relulab.core", "relulab.kernels", "relulab.landscape", "relulab.init", "relulab.regions",
                 "relulab.complexity", "relulab.tropical", "relulab.combinatorics", "relulab.experiments",
                 "relulab.dynamics"]


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


# ---------------------------------------------------------------------- results: reprs and plots
ENGINE_MODULES = ["relulab.kernels.empirical", "relulab.kernels.analytic", "relulab.kernels.geometry",
                  "relulab.kernels.convergence", "relulab.init.constants", "relulab.init.initializers",
                  "relulab.init.moments", "relulab.landscape.shallow", "relulab.landscape.parameter_space",
                  "relulab.landscape.kink_stationarity", "relulab.landscape.network_embedding",
                  "relulab.landscape.teacher_student", "relulab.landscape.symmetry", "relulab.landscape.hessian",
                  "relulab.regions.line", "relulab.regions.plane"]


def _result_classes():
    from relulab.results import Result

    for name in ENGINE_MODULES:
        importlib.import_module(name)
    seen, todo = [], list(Result.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return seen


def test_every_result_has_the_short_repr_and_an_html_table():
    from relulab.results import _html_table, _short_repr

    classes = _result_classes()
    assert len(classes) >= 20
    # RegionEnumeration writes its own repr of four numbers (measured in the next test)
    own = [c.__qualname__ for c in classes if c.__repr__ is not _short_repr]
    assert set(own) <= {"RegionEnumeration"}, f"results that write their own repr: {own}"
    assert all(c._repr_html_ is _html_table for c in classes)


def test_reprs_are_a_few_lines_even_for_big_results():
    import torch

    from relulab import data, regions
    from relulab.core import io
    from relulab.landscape.hessian import hessian_spectrum

    net = relulab.PLNet.from_torch(io.build("mlp:2-16-16-2:relu", seed=0), (2,))
    plane = regions.on_plane(net, extent=(-3, 3, -3, 3))
    ds = data.spirals(n=60, seed=0)
    hess = hessian_spectrum(net.to_torch(), "cross_entropy", ds.x, ds.y, top=2, bottom=2, trace_queries=4,
                            max_steps=40, dtype=torch.float64)
    full = regions.full_space(net)
    for res in (plane, hess, full):
        text = repr(res)
        assert len(text) < 1500 and len(text.splitlines()) <= 15, text
        assert "tensor([" not in text and "array([" not in text
        assert res._repr_html_().startswith("<table>")
    assert plane.count > 100  # big enough that a repr of the contents would be long


def _plot_methods():
    """Every ``plot`` defined in the kernels, init and landscape packages, as (where, ast node)."""
    for pkg in ("kernels", "init", "landscape"):
        for path in sorted((SRC / pkg).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef) and node.name == "plot":
                    yield f"{pkg}/{path.name}:{node.lineno}", node


def test_plot_methods_take_ax_and_return_axes():
    found = list(_plot_methods())
    assert len(found) >= 8
    for where, fn in found:
        args = [a.arg for a in fn.args.args]
        assert "ax" in args, where
        default = fn.args.defaults[args.index("ax") - len(args) + len(fn.args.defaults)]
        assert isinstance(default, ast.Constant) and default.value is None, where
        for ret in (n for n in ast.walk(fn) if isinstance(n, ast.Return)):
            text = ast.unparse(ret.value) if ret.value is not None else ""
            assert "figure" not in text and text not in ("fig", ""), f"{where} returns {text!r}"


def test_plots_that_returned_figures_return_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    from relulab.init import constants_table
    from relulab.landscape import full_rank_fraction

    try:
        assert isinstance(constants_table([2, 3]).plot(), Axes)
        g = full_rank_fraction([1], [2, 3], [1, 2], samples=8, workers=1)
        assert isinstance(g.plot(), Axes)
        g2 = full_rank_fraction([1, 2], [2], [1], samples=8, workers=1)
        first = g2.plot()  # several panels: the first is returned, the others share its figure
        assert isinstance(first, Axes) and len([a for a in first.figure.axes if a.get_title().startswith("d = ")]) == 2
        _, ax = plt.subplots()
        assert g.plot(ax=ax) is ax
    finally:
        plt.close("all")


def test_every_result_times_itself_in_seconds():
    """One name for wall time across every result family."""
    import dataclasses
    import pkgutil

    import relulab
    from relulab.results import Result

    for info in pkgutil.walk_packages(relulab.__path__, "relulab."):
        if info.name.startswith("relulab.commands") or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    for cls in subclasses(Result):
        if dataclasses.is_dataclass(cls):
            names = {f.name for f in dataclasses.fields(cls)}
            assert "elapsed" not in names, f"{cls.__module__}.{cls.__name__} times itself as 'elapsed'"
