"""Lazy package attributes (PEP 562): one map per package, ``_EXPORTS = {public name: submodule}``.

A package's ``__init__`` lists what it exports and where each name lives; the submodule is imported on
first use, so ``import relulab`` (and ``relulab --version``) never pays for torch, scipy or matplotlib
before they are needed, while ``dir()`` and tab completion still list every public name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable


def _available(package: str, submodule: str) -> bool:
    # a package that is not installed yet (an optional engine) exports nothing; find_spec looks on
    # disk without importing the submodule itself
    try:
        return importlib.util.find_spec(f"{package}.{submodule}") is not None
    except ModuleNotFoundError:
        return False


def exports(package: str, table: dict[str, str], optional: tuple[str, ...] = (),
            moved: dict[str, str] | None = None) -> tuple[
        Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` from ``table``.

    ``table[name]`` is the submodule (relative to ``package``) that defines ``name``; an entry that
    maps a name to itself (``"regions": "regions"``) is the submodule itself. Entries whose submodule is listed in ``optional`` are exported only when that
    submodule exists. ``moved[name]`` is where a name that no longer lives here went (its
    look-up raises an AttributeError that says so).
    """

    def present() -> list[str]:
        return [n for n, sub in table.items() if sub not in optional or _available(package, sub)]

    def __getattr__(name: str):
        sub = table.get(name)
        if sub is None and moved and name in moved:
            raise AttributeError(f"{package}.{name} is now {moved[name]}")
        if sub is None or (sub in optional and not _available(package, sub)):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{sub}")
        if sub == name:
            return module  # importing a submodule binds it on its package already
        value = getattr(module, name)
        setattr(sys.modules[package], name, value)  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(present()))

    return __getattr__, __dir__, present()
