"""The reproduction registry: every paper experiment as a pure function of a typed configuration.

An *experiment* is a function ``fn(cfg) -> list[dict]`` from one point of its configuration (a
dataclass of scalar fields: ints, floats, strings, booleans) to the rows it measured there (one row
per measurement). The registry adds every configuration field as a column, so the table is tidy and
any sweep over the fields stays one table. A registration also names the paper, states its claim, and
gives the grid a reproduction runs (``full``) and a small one for tests (``quick``); ``summarize``
turns the whole table into figures and a comparison of the result with what the paper reports.

Registering is one decorator in the module that owns the experiment::

    @experiment("my-count", paper="Author, Title (Venue Year)", claim="...",
                full={"width": [8, 16], "seed": range(10)}, quick={"width": [8], "seed": [0]})
    def my_count(cfg: MyConfig) -> list[dict]:
        ...

and listing that module in :data:`ENTRY_MODULES` (one line); the registry imports those modules on
first use, so an engine's experiments load only when someone asks for the registry.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from relulab.core.errors import InvalidInputError

__all__ = ["Experiment", "Summary", "experiment", "get", "names", "ENTRY_MODULES", "expand_grid", "make_config"]

# Modules whose import registers experiments. Adding a capability's entries is one line here.
ENTRY_MODULES: list[str] = [
    "relulab.experiments.entries",
    "relulab.experiments.entries_combinatorics",
    "relulab.experiments.entries_complexity",
    "relulab.experiments.entries_dynamics",
    "relulab.experiments.entries_convex",
    "relulab.experiments.entries_linear_models",
    "relulab.experiments.entries_saddles",
    "relulab.experiments.calibration",
]

_REGISTRY: dict[str, "Experiment"] = {}
_loaded = False


@dataclass
class Summary:
    """What :attr:`Experiment.summarize` returns: figures ``(title, draw(ax))``, a comparison
    ``(quantity, paper, this run)`` per row, and a verdict sentence (or None when no claim is checked)."""

    figures: list = field(default_factory=list)
    comparison: list = field(default_factory=list)
    verdict: str | None = None


@dataclass
class Experiment:
    name: str
    fn: Callable
    config: type
    paper: str
    claim: str
    full: dict
    quick: dict
    summarize: Callable | None = None
    title: str = ""
    requires: tuple = ()

    @functools.cached_property
    def fields(self) -> dict:
        """Configuration field name -> its type (int, float, str or bool)."""
        hints = typing.get_type_hints(self.config)
        return {f.name: hints[f.name] for f in dataclasses.fields(self.config)}

    @functools.cached_property
    def _defaults(self) -> dict:
        return {f.name: f.default for f in dataclasses.fields(self.config) if f.default is not dataclasses.MISSING}

    def defaults(self) -> dict:
        return dict(self._defaults)

    def missing_requirements(self) -> list[str]:
        """Optional packages this experiment needs that are not installed."""
        import importlib.util

        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def run(self, params: dict) -> list[dict]:
        """Rows of one configuration, every configuration field as a column (fields first)."""
        cfg = make_config(self, params)
        rows = self.fn(cfg)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise TypeError(f"experiment {self.name!r} must return a list of dicts, got {type(rows).__name__}")
        base = dataclasses.asdict(cfg)
        out = []
        for r in rows:
            clash = set(r) & set(base)
            if clash:
                raise TypeError(f"experiment {self.name!r}: measured columns {sorted(clash)} repeat config fields")
            out.append({**base, **r})
        return out


def experiment(name: str, *, paper: str, claim: str, full: dict, quick: dict, summarize: Callable | None = None,
               title: str = "", requires: tuple = ()):
    """Decorator registering ``fn(cfg: Config) -> list[dict]`` under ``name`` (the config class is
    read from the annotation of the first parameter). ``full``/``quick``: grids ``{field: values}``
    over configuration fields (the others keep their defaults); ``requires``: optional packages."""

    def register(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn)
        params = [p for p in fn.__code__.co_varnames[: fn.__code__.co_argcount]]
        if not params or params[0] not in hints or not dataclasses.is_dataclass(hints[params[0]]):
            raise TypeError(f"experiment {name!r}: annotate the first parameter with a config dataclass")
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        exp = Experiment(name=name, fn=fn, config=hints[params[0]], paper=paper, claim=claim, full=dict(full),
                         quick=dict(quick), summarize=summarize, title=title or name, requires=tuple(requires))
        for grid in (exp.full, exp.quick):
            expand_grid(exp, grid)  # a typo in a registration fails at import, not in a user's run
        _REGISTRY[name] = exp
        fn.experiment = exp
        return fn

    return register


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in ENTRY_MODULES:
        importlib.import_module(mod)
    _loaded = True


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    _load()
    if name not in _REGISTRY:
        raise InvalidInputError(f"unknown experiment {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def _coerce(exp: Experiment, key: str, value, typ):
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str)}
    if typ not in ok:
        raise TypeError(f"experiment {exp.name!r}: field {key!r} has type {typ}; only int, float, str, bool")
    if not ok[typ](value):
        raise InvalidInputError(f"experiment {exp.name!r}: parameter {key!r} must be {typ.__name__}, "
                                f"got {value!r} ({type(value).__name__})")
    return float(value) if typ is float else value


def make_config(exp: Experiment, params: dict):
    """The config instance for ``params`` (unknown names and wrong types are refused, naming them)."""
    types = exp.fields
    unknown = sorted(set(params) - set(types))
    if unknown:
        raise InvalidInputError(f"experiment {exp.name!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
                                f"its parameters: {', '.join(types)}")
    kw = {k: _coerce(exp, k, v, types[k]) for k, v in params.items()}
    missing = [k for k in types if k not in kw and k not in exp._defaults]
    if missing:
        raise InvalidInputError(f"experiment {exp.name!r}: no value for parameter(s) {', '.join(missing)}")
    return exp.config(**kw)


def expand_grid(exp: Experiment, grid: dict) -> list[dict]:
    """The product of the value lists in ``grid`` (a scalar is a one-element list), each point checked
    with :func:`make_config`; returns the points (only the fields the grid names), in a fixed order."""
    if not isinstance(grid, dict):
        raise InvalidInputError(f"grid must be a table of parameter lists, got {type(grid).__name__}")
    keys = list(grid)
    lists = []
    for k in keys:
        v = grid[k]
        vals = list(v) if isinstance(v, (list, tuple, range)) else [v]
        if not vals:
            raise InvalidInputError(f"experiment {exp.name!r}: parameter {k!r} has an empty list of values "
                                    "(the grid would have no points)")
        lists.append(vals)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*lists)]
    for p in points:
        make_config(exp, p)
    return points
