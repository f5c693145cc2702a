"""The shared base of relulab's result objects: plain dataclasses that serialize to JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import sys


def _array_kind(value) -> str | None:
    """Which kind of array ``value`` is: "torch", "numpy", "numpy-scalar", or None for anything else.

    Looked up in ``sys.modules`` rather than imported: such a value can only exist once its library
    is loaded, and a result made of plain numbers should not pay torch's import time."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return "torch"
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return "numpy"
        if isinstance(value, np.generic):
            return "numpy-scalar"
    return None


def to_plain(value):
    """Tensors, arrays, dataclasses, tuples and non-finite floats as JSON-ready Python data."""
    kind = _array_kind(value)
    if kind == "torch":
        return to_plain(value.detach().cpu().tolist())
    if kind == "numpy":
        return to_plain(value.tolist())
    if kind == "numpy-scalar":
        return to_plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _describe(value) -> str:
    """A few characters for one field: shapes for arrays, lengths for long containers."""
    kind = _array_kind(value)
    if kind == "torch":
        return f"tensor{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if kind == "numpy":
        return f"array{value.shape} {value.dtype}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}(...)"
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 6:
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _short_repr(self) -> str:
    fields = [f.name for f in dataclasses.fields(self) if f.repr and not f.name.startswith("_")]
    parts = [f"{name}={_describe(getattr(self, name))}" for name in fields]
    lines, line = [], type(self).__name__ + "("
    for part in parts:
        if len(line) + len(part) > 96 and line.strip():
            lines.append(line.rstrip())
            line = "    "
        line += part + ", "
    lines.append(line.rstrip(", ") + ")")
    return "\n".join(lines)


def _html_table(self) -> str:
    import html

    fields = [f.name for f in dataclasses.fields(self) if f.repr and not f.name.startswith("_")]
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(n)}</th>"
        f"<td style='text-align:left'>{html.escape(_describe(getattr(self, n)))}</td></tr>"
        for n in fields)
    return f"<table><caption>{html.escape(type(self).__name__)}</caption>{rows}</table>"


class Result:
    """Base of result dataclasses: ``to_dict()``, ``to_json()``, a short ``repr`` (shapes instead of
    contents) and an HTML table for notebooks.

    Subclasses may list field names in ``_summary_fields`` to keep ``to_dict(summary=True)`` small.
    """

    _summary_fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        # a dataclass decorator keeps a __repr__ already in the class body, so installing the short
        # one here gives every result a repr of a few lines (shapes, not contents) unless the class
        # writes its own
        super().__init_subclass__(**kwargs)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = _short_repr
        if "_repr_html_" not in cls.__dict__:
            cls._repr_html_ = _html_table

    def to_dict(self, summary: bool = False) -> dict:
        fields = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        if summary and self._summary_fields:
            fields = [f for f in fields if f in self._summary_fields]
        return {name: to_plain(getattr(self, name)) for name in fields}

    def to_json(self, summary: bool = False, **kwargs) -> str:
        return json.dumps(self.to_dict(summary=summary), **kwargs)


@dataclasses.dataclass(kw_only=True, repr=False)
class RegionResult(Result):
    """Base of every region-counting result (line, plane, box, all of R^d, local counts).

    * ``count``: activation regions (realized activation patterns) met by the domain;
      ``linear_count``: linear regions (activation regions with equal affine maps merged), or None
      when not computed.
    * ``complete``: every region of the domain is listed; ``stopped_by``: None when complete, else
      what stopped the search (``"max_regions"``, ``"time_limit"``, ``"memory"``).
    * ``certified``: every decision the count rests on was either certain under a floating-point
      error bound or settled in exact rational arithmetic (False: the count is the float64 answer
      without such a guarantee).
    * ``counts_what``: one phrase saying what is counted; ``domain``: over which domain
      (``"segment"``, ``"slice"``, ``"box"``, ``"R^d"``, ...); ``seconds``: wall time.
    """

    count: int
    linear_count: int | None = None
    complete: bool = True
    stopped_by: str | None = None
    certified: bool = False
    counts_what: str = "activation regions"
    domain: str = ""
    seconds: float = 0.0
