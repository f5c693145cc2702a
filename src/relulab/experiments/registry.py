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

and listing that module in :data:`ENTRY_MODULES` (one line). Listing and lookup are lazy: the
registry reads each entry module's *source* (its ``@experiment`` decorators and config dataclasses,
:func:`catalog`) without importing it, so ``relulab reproduce --list``, an unknown name or a bad
sweep spec never pay for torch or an engine; :func:`get` imports only the module that defines the
entry asked for. A module whose registrations are not plain literals (a computed grid, a call of
``experiment`` outside a decorator) is imported to read them, so the catalog is always the registry.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.util
import itertools
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from relulab.core.errors import InvalidInputError

__all__ = ["Experiment", "EntryInfo", "Summary", "experiment", "get", "info", "names", "catalog", "ENTRY_MODULES",
           "expand_grid", "make_config", "check_params"]

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
    """Import every entry module (what :func:`catalog` avoids; used where the full objects are needed)."""
    global _loaded
    if _loaded:
        return
    for mod in ENTRY_MODULES:
        importlib.import_module(mod)
    _loaded = True


@dataclass(frozen=True)
class EntryInfo:
    """What the registry knows of an entry without importing its module: the decorator's arguments and
    the configuration fields (name -> type name)."""

    name: str
    module: str
    title: str
    paper: str
    claim: str
    full: dict
    quick: dict
    requires: tuple
    fields: dict
    required: tuple = ()  # fields without a default

    @property
    def field_types(self) -> dict:
        return {k: _TYPES[v] for k, v in self.fields.items()}

    @staticmethod
    def _size(grid: dict) -> int:
        return math.prod(len(v) if isinstance(v, (list, tuple, range)) else 1 for v in grid.values())

    @property
    def quick_tasks(self) -> int:
        return self._size(self.quick)

    @property
    def full_tasks(self) -> int:
        return self._size(self.full)

    def missing_requirements(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    @classmethod
    def of(cls, exp: Experiment, module: str) -> "EntryInfo":
        norm = lambda g: {k: list(v) if isinstance(v, (list, tuple, range)) else v for k, v in g.items()}  # noqa: E731
        return cls(exp.name, module, exp.title, exp.paper, exp.claim, norm(exp.full), norm(exp.quick),
                   tuple(exp.requires), {k: t.__name__ for k, t in exp.fields.items()},
                   tuple(k for k in exp.fields if k not in exp._defaults))


class _NotStatic(Exception):
    pass


_BUILTINS = {"range": range, "list": list, "tuple": tuple}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _literal(node):
    """The value of a literal expression (constants, lists, tuples, dicts, unary minus, string and list
    concatenation, ``range``/``list``/``tuple`` of literals); anything else is not static."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        vals = [_literal(e) for e in node.elts]
        return vals if isinstance(node, ast.List) else tuple(vals)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _NotStatic
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _NotStatic
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _literal(node.left), _literal(node.right)
        if type(a) is not type(b) or not isinstance(a, (str, list, tuple)):
            raise _NotStatic
        return a + b
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BUILTINS
            and not node.keywords):
        return _BUILTINS[node.func.id](*[_literal(a) for a in node.args])
    raise _NotStatic


def _static_entries(module: str, source: str) -> list[EntryInfo]:
    """The entries a module registers, read from its source; raises :class:`_NotStatic` unless every
    call of ``experiment`` is a top-level function's decorator with literal arguments and a config
    dataclass of this module with typed, literal-defaulted fields."""
    tree = ast.parse(source)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "experiment" and a.asname not in (None, "experiment")
                                                 for a in n.names) for n in ast.walk(tree)):
        raise _NotStatic  # the decorator under another name
    # every call of experiment (also as an attribute, registry.experiment) must be one read below
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        (isinstance(n.func, ast.Name) and n.func.id == "experiment")
        or (isinstance(n.func, ast.Attribute) and n.func.attr == "experiment"))]
    out, seen = [], 0
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for dec in fn.decorator_list:
            if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == "experiment"):
                continue
            seen += 1
            if len(dec.args) != 1 or not fn.args.args:
                raise _NotStatic
            kw = {k.arg: k.value for k in dec.keywords}
            if None in kw:
                raise _NotStatic
            static = {k: _literal(v) for k, v in kw.items() if k != "summarize"}
            ann = fn.args.args[0].annotation
            cls = classes.get(ann.id) if isinstance(ann, ast.Name) else None
            if cls is None or cls.bases:
                raise _NotStatic
            fields, required = {}, []
            for st in cls.body:
                if isinstance(st, ast.AnnAssign):
                    if not (isinstance(st.target, ast.Name) and isinstance(st.annotation, ast.Name)
                            and st.annotation.id in _TYPES):
                        raise _NotStatic
                    fields[st.target.id] = st.annotation.id
                    if st.value is None:
                        required.append(st.target.id)
                    else:
                        _literal(st.value)
                elif not (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)):
                    raise _NotStatic  # methods (a __post_init__ check) only run when the module is imported
            name = _literal(dec.args[0])
            out.append(EntryInfo(name, module, static.get("title") or name, static["paper"], static["claim"],
                                 {k: list(v) if isinstance(v, (list, tuple, range)) else v
                                  for k, v in static["full"].items()},
                                 {k: list(v) if isinstance(v, (list, tuple, range)) else v
                                  for k, v in static["quick"].items()},
                                 tuple(static.get("requires", ())), fields, tuple(required)))
    if seen != len(calls):
        raise _NotStatic
    return out


@functools.lru_cache(maxsize=None)
def _module_entries(module: str) -> tuple:
    spec = importlib.util.find_spec(module)
    try:
        source = spec.loader.get_source(module) if spec and spec.loader else None
        if source is not None:
            return tuple(_static_entries(module, source))
    except (_NotStatic, KeyError, SyntaxError, TypeError, ValueError):
        pass
    # not readable without running it: import it and read what it registered
    before = dict(_REGISTRY)
    importlib.import_module(module)
    fresh = [e for n, e in _REGISTRY.items() if before.get(n) is not e]
    mine = [e for e in _REGISTRY.values() if getattr(e.fn, "__module__", None) == module]
    return tuple(EntryInfo.of(e, module) for e in {id(e): e for e in fresh + mine}.values())


def catalog() -> dict[str, EntryInfo]:
    """Every registered entry's metadata (:class:`EntryInfo`), by name, without importing the entry
    modules where their source says it all (module docstring)."""
    out = {}
    for mod in ENTRY_MODULES:
        for info in _module_entries(mod):
            out[info.name] = info
    for name, exp in _REGISTRY.items():  # registered at run time outside the entry modules
        out.setdefault(name, EntryInfo.of(exp, getattr(exp.fn, "__module__", "")))
    return dict(sorted(out.items()))


def names() -> list[str]:
    return list(catalog())


def info(name: str) -> EntryInfo:
    """The metadata of entry ``name`` (:class:`EntryInfo`), importing nothing."""
    found = catalog().get(name)
    if found is None:
        raise InvalidInputError(f"unknown experiment {name!r}; registered: {', '.join(catalog())}")
    return found


def get(name: str) -> Experiment:
    """The entry ``name``, importing only the module that defines it."""
    if name not in _REGISTRY:
        importlib.import_module(info(name).module)
        if name not in _REGISTRY:
            raise RuntimeError(f"module {info.module} did not register experiment {name!r}")
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


def check_params(exp: "Experiment | EntryInfo", params: dict) -> dict:
    """``params`` checked against the entry's fields (unknown names, wrong types and missing values are
    refused, naming them) and coerced (an int for a float field); works on :class:`EntryInfo` too."""
    types = exp.fields if isinstance(exp, Experiment) else exp.field_types
    unknown = sorted(set(params) - set(types))
    if unknown:
        raise InvalidInputError(f"experiment {exp.name!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
                                f"its parameters: {', '.join(types)}")
    kw = {k: _coerce(exp, k, v, types[k]) for k, v in params.items()}
    required = [k for k in types if k not in exp._defaults] if isinstance(exp, Experiment) else exp.required
    missing = [k for k in required if k not in kw]
    if missing:
        raise InvalidInputError(f"experiment {exp.name!r}: no value for parameter(s) {', '.join(missing)}")
    return kw


def make_config(exp: Experiment, params: dict):
    """The config instance for ``params`` (checked by :func:`check_params`)."""
    return exp.config(**check_params(exp, params))


def expand_grid(exp: "Experiment | EntryInfo", grid: dict) -> list[dict]:
    """The product of the value lists in ``grid`` (a scalar is a one-element list), each point checked
    (:func:`make_config`, or :func:`check_params` for an :class:`EntryInfo`, whose config classes are
    plain typed dataclasses); returns the points (only the fields the grid names), in a fixed order."""
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
        make_config(exp, p) if isinstance(exp, Experiment) else check_params(exp, p)
    return points
