"""The results store: one Parquet file per task, named by a hash of the task's configuration.

A task is ``(experiment, params)``; its identity is the first 16 hex digits of the SHA-256 of the
canonical JSON of both, so the same configuration always maps to the same file and a rerun finds
what is done by listing the folder. Files are written to a temporary name and renamed
(:func:`relulab.core.files.atomic_save`), so a file that exists is complete, whatever was killed
when. A failed task leaves ``failed/<id>.json`` with its error instead; a later success removes it.

Layout of a results folder::

    sweep.json          the spec (experiment, grid), written before any task runs
    tasks/<id>.parquet  rows of one finished task (config columns + measured columns)
    failed/<id>.json    error of one failed task
    results.parquet     merged table (``merge``), results.csv beside it
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from relulab.core.files import atomic_save, atomic_write
from relulab.core.extras import require

__all__ = ["task_id", "write_rows", "write_failure", "finished", "failures", "read_table", "merge", "row_count"]


def task_id(experiment: str, params: dict) -> str:
    doc = json.dumps({"experiment": experiment, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _pq(what: str = "writing results as Parquet"):
    require("pyarrow", what)
    return require("pyarrow.parquet", what)


def write_rows(folder, tid: str, rows: list[dict], meta: dict) -> Path:
    """Rows of task ``tid`` as ``folder/tasks/<tid>.parquet`` (atomically); ``meta`` (JSON-able:
    experiment, params, seconds) goes into the file's schema metadata, not into the rows."""
    pq = _pq()
    import pyarrow as pa

    folder = Path(folder)
    (folder / "tasks").mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    table = table.replace_schema_metadata({"relulab": json.dumps(meta)})
    path = atomic_save(folder / "tasks" / f"{tid}.parquet", lambda tmp: pq.write_table(table, tmp))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / "failed" / f"{tid}.json")
    return path


def write_failure(folder, tid: str, meta: dict) -> Path:
    folder = Path(folder)
    (folder / "failed").mkdir(parents=True, exist_ok=True)
    path = folder / "failed" / f"{tid}.json"
    with atomic_write(path, "w") as f:
        json.dump(meta, f, indent=1)
    return path


def finished(folder) -> set[str]:
    """Ids of tasks whose Parquet file exists (temporary files start with '.' and are ignored)."""
    d = Path(folder) / "tasks"
    if not d.is_dir():
        return set()
    return {p.stem for p in d.glob("*.parquet") if not p.name.startswith(".")}


def failures(folder) -> dict[str, dict]:
    d = Path(folder) / "failed"
    out = {}
    if d.is_dir():
        for p in sorted(d.glob("*.json")):
            if p.name.startswith("."):
                continue
            try:
                out[p.stem] = json.loads(p.read_text())
            except (OSError, ValueError):
                out[p.stem] = {"error": "unreadable failure record"}
    return out


def row_count(folder) -> int:
    """Rows of all finished tasks, from the files' footers (nothing else is read)."""
    pq = _pq("reading a results folder")
    return sum(pq.read_metadata(Path(folder) / "tasks" / f"{t}.parquet").num_rows for t in finished(folder))


def read_table(folder):
    """All finished tasks' rows as one ``pyarrow.Table`` (columns unified; a ``task`` column holds
    each row's task id), sorted by task id and row order within the task."""
    pq = _pq("reading a results folder")
    import pyarrow as pa

    files = sorted((Path(folder) / "tasks").glob("*.parquet")) if (Path(folder) / "tasks").is_dir() else []
    tables = []
    for p in files:
        if p.name.startswith("."):
            continue
        t = pq.read_table(p)
        if t.num_rows == 0:
            continue
        t = t.replace_schema_metadata(None)
        tables.append(t.append_column("task", pa.array([p.stem] * t.num_rows)))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


def merge(folder) -> dict:
    """Write ``results.parquet`` and ``results.csv`` (pandas / polars readable) into ``folder``;
    returns the number of rows, tasks and failures."""
    pq = _pq("merging a results folder")
    import pyarrow.csv as pcsv

    folder = Path(folder)
    table = read_table(folder)
    atomic_save(folder / "results.parquet", lambda tmp: pq.write_table(table, tmp))
    atomic_save(folder / "results.csv", lambda tmp: pcsv.write_csv(table, tmp))
    return {"rows": table.num_rows, "tasks": len(finished(folder)), "failed": len(failures(folder)),
            "columns": table.column_names}
