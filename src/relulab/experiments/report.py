"""One self-contained HTML page from any results folder: a sweep (``sweep.json`` + ``tasks/``), a
reproduction (``reproduction.json``), a demo (PNG figures, ``summary.json``), or a folder of these.

For each experiment found, the page puts the paper and its claim beside this run's numbers (the
experiment's ``summarize``), draws its figures, lists failed tasks and shows the table's head.
Figures are PNG data URIs and the page has no scripts, so it opens anywhere without a network.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from relulab.core.errors import InvalidInputError
from relulab.core.files import atomic_write

__all__ = ["build_report", "write_report", "load_rows"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left}
th{background:#f4f4f4}.claim{background:#f7f9ff;border-left:4px solid #69c;padding:.5em 1em}
.verdict{font-weight:bold}.fail{color:#a00}figure{display:inline-block;margin:.5em}img{max-width:520px}
figcaption{font-size:.85em;color:#555}"""


def _esc(x) -> str:
    return html.escape(str(x))


def _png(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    try:
        draw(ax)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(uri: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{_esc(caption)}"><figcaption>{_esc(caption)}</figcaption></figure>'


def _table(rows: list[dict], limit: int = 40) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v):
        return f"{v:.6g}" if isinstance(v, float) else v

    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_esc(fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows[:limit])
    more = f"<p>{len(rows) - limit} more rows in the results file.</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def load_rows(folder) -> tuple[str | None, list[dict], list[dict]]:
    """(experiment name, rows, failures) of a sweep or reproduction folder; (None, [], []) otherwise."""
    folder = Path(folder)
    if (folder / "reproduction.json").is_file():
        doc = json.loads((folder / "reproduction.json").read_text())
        return doc["experiment"], doc["rows"], doc.get("failures", [])
    if (folder / "sweep.json").is_file():
        from relulab.experiments import store

        name = json.loads((folder / "sweep.json").read_text()).get("experiment")
        rows = store.read_table(folder).to_pylist()
        for r in rows:
            r.pop("task", None)
        fails = [{"task": k, **v} for k, v in store.failures(folder).items()]
        return name, rows, fails
    return None, [], []


def _experiment_section(name: str, rows: list[dict], fails: list[dict], where: str) -> str:
    from relulab.experiments import registry

    try:
        exp = registry.get(name)
    except InvalidInputError:
        return f"<h2>{_esc(name)}</h2><p>Not a registered experiment; the table follows.</p>" + _table(rows)
    parts = [f"<h2>{_esc(exp.title)} <small>({_esc(name)}, {_esc(where)})</small></h2>",
             f'<div class="claim"><p><b>Paper:</b> {_esc(exp.paper)}</p><p><b>Claim:</b> {_esc(exp.claim)}</p></div>']
    if rows and exp.summarize is not None:
        s = exp.summarize(rows)
        if s.comparison:
            parts.append("<table><tr><th>quantity</th><th>paper</th><th>this run</th></tr>" + "".join(
                f"<tr><td>{_esc(q)}</td><td>{_esc(p)}</td><td>{_esc(o)}</td></tr>" for q, p, o in s.comparison)
                + "</table>")
        if s.verdict:
            parts.append(f'<p class="verdict">{_esc(s.verdict)}</p>')
        parts += [_img(_png(draw), title) for title, draw in s.figures]
    if fails:
        parts.append(f'<p class="fail">{len(fails)} failed task(s):</p>' + _table(
            [{"task": f.get("task", ""), "params": json.dumps(f.get("params", {})), "error": f.get("error", "")}
             for f in fails]))
    parts.append(f"<p>{len(rows)} rows.</p>" + _table(rows))
    return "\n".join(parts)


def _other_section(folder: Path, where: str) -> str:
    pngs = sorted(p for p in folder.glob("*.png") if not p.name.startswith("."))
    parts = []
    summary = folder / "summary.json"
    if summary.is_file():
        try:
            doc = json.loads(summary.read_text())
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            flat = {k: v for k, v in doc.items() if isinstance(v, (int, float, str, bool))}
            if flat:
                parts.append(_table([flat]))
    for p in pngs:
        uri = "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
        parts.append(_img(uri, p.name))
    if not parts:
        return ""
    return f"<h2>{_esc(where)}</h2>" + "\n".join(parts)


def build_report(folder) -> str:
    """The HTML text for ``folder`` (see the module docstring); raises if nothing in it is a result."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"report: {str(folder)!r} is not a folder")
    sections = []
    for sub in [folder] + sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                                 and p.name not in ("tasks", "failed")):
        where = "." if sub == folder else sub.name
        name, rows, fails = load_rows(sub)
        if name is not None:
            sections.append(_experiment_section(name, rows, fails, where))
        else:
            s = _other_section(sub, where)
            if s:
                sections.append(s)
    if not sections:
        raise InvalidInputError(f"report: {str(folder)!r} holds no results (no sweep.json, reproduction.json, "
                                "summary.json or PNG figures, here or one level down)")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>relulab results: "
            f"{_esc(folder.name)}</title><style>{_CSS}</style></head><body><h1>relulab results: {_esc(folder.name)}"
            f"</h1>{''.join(sections)}</body></html>")


def write_report(folder, path=None) -> Path:
    """Write :func:`build_report` to ``path`` (default ``folder/report.html``) atomically."""
    text = build_report(folder)
    path = Path(path) if path is not None else Path(folder) / "report.html"
    with atomic_write(path, "w") as f:
        f.write(text)
    return path
