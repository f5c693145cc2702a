"""Run a registry entry's grid in this process and write what it found (no optional packages needed)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from relulab.core.errors import InvalidInputError
from relulab.core.files import atomic_write
from relulab.experiments import registry
from relulab.progress import notify

__all__ = ["reproduce", "listing"]


def listing() -> list[dict]:
    """Every entry's name, title, paper, claim, task counts and missing packages (no entry module is
    imported: :func:`relulab.experiments.registry.catalog`)."""
    return [{"name": n, "title": e.title, "paper": e.paper, "claim": e.claim, "quick_tasks": e.quick_tasks,
             "full_tasks": e.full_tasks, "missing": e.missing_requirements()}
            for n, e in registry.catalog().items()]


def _csv(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def reproduce(name: str, *, quick: bool = False, out=None, progress=None) -> dict:
    """Run entry ``name`` over its ``quick`` or ``full`` grid (tasks in order, one process); returns
    rows, failures, the comparison with the paper and timings. With ``out``, writes
    ``out/reproduction.json``, ``out/results.csv`` and ``out/report.html``."""
    exp = registry.get(name)
    missing = exp.missing_requirements()
    if missing:
        raise InvalidInputError(f"experiment {name!r} needs {', '.join(missing)}, which is not installed "
                                f"(pip install {' '.join(missing)})")
    if out is not None:
        out = Path(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InvalidInputError(f"--out {str(out)!r}: cannot create the folder ({e.strerror or e})") from None
    points = registry.expand_grid(exp, exp.quick if quick else exp.full)
    rows, fails = [], []
    t0 = time.perf_counter()
    for i, p in enumerate(points):
        try:
            rows += exp.run(p)
        except Exception as e:  # one bad point is reported, the others still run
            fails.append({"params": p, "error": f"{type(e).__name__}: {e}"})
        notify(progress, i + 1, len(points), failed=len(fails))
    seconds = time.perf_counter() - t0
    summary = exp.summarize(rows) if (exp.summarize and rows) else registry.Summary()
    doc = {"experiment": name, "title": exp.title, "paper": exp.paper, "claim": exp.claim,
           "grid": "quick" if quick else "full", "tasks": len(points), "seconds": seconds,
           "comparison": [{"quantity": q, "paper": p, "this_run": o} for q, p, o in summary.comparison],
           "verdict": summary.verdict, "failures": fails, "rows": rows, "files": []}
    if out is not None:
        with atomic_write(out / "reproduction.json", "w") as f:
            json.dump(doc, f, indent=1, default=str)
        with atomic_write(out / "results.csv", "w") as f:
            f.write(_csv(rows) if rows else "")
        from relulab.experiments.report import write_report

        write_report(out)
        doc["files"] = ["reproduction.json", "results.csv", "report.html"]
    return doc
