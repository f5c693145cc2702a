"""Regions streamed to a Parquet file while they are enumerated (the ``parquet`` extra: pyarrow).

``full_space(net, out="regions.parquet")`` hands every batch of newly found, verified regions to a
:class:`RegionWriter`, which appends them as one row group; nothing per region stays in memory
but the key that deduplicates patterns. The file is written under a temporary name in the target
folder and renamed onto ``out`` only when the enumeration returns (a killed run leaves no file at
``out``; a run stopped by a budget is renamed but marked incomplete in its metadata).

Columns: ``region`` (int64, the region's index in order of discovery), ``pattern``
(fixed-size list of int8, the winning piece of every unit: for ReLU 1 = active, 0 = inactive),
``witness`` (fixed-size list of float64, a point strictly inside the region, proven).
Key-value metadata (``relulab.*``, strings): ``complete`` ("true"/"false"), ``certified``,
``stopped_by``, ``count``, ``input_dim``, ``n_units``, ``domain``, ``method``, ``format``.
:func:`read_regions` reads a file back as tensors and that metadata.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import torch

from relulab.core.errors import InvalidInputError
from relulab.core.files import check_output_path

FORMAT = "relulab-regions-1"


def _pa(what: str):
    from relulab.core.extras import require

    pa = require("pyarrow", what)
    return pa, require("pyarrow.parquet", what)


class RegionWriter:
    """Appends ``(patterns (R, n), witnesses (R, d))`` batches to ``path`` (see the module docstring);
    ``close(meta)`` publishes the file, ``abort()`` removes the temporary one."""

    def __init__(self, path, n_units: int, input_dim: int):
        self.pa, self.pq = _pa("full_space(out=...) (streaming regions to Parquet)")
        self.path = check_output_path(path, "out", ".parquet")
        pa = self.pa
        self.n_units, self.d = int(n_units), int(input_dim)
        self.schema = pa.schema([("region", pa.int64()),
                                 ("pattern", pa.list_(pa.int8(), max(1, self.n_units))),
                                 ("witness", pa.list_(pa.float64(), self.d))])
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.writer = self.pq.ParquetWriter(self.tmp, self.schema)
        self.count = 0

    def __call__(self, patterns: torch.Tensor, witnesses: torch.Tensor):
        pa = self.pa
        R = int(patterns.shape[0])
        if R == 0:
            return
        p = patterns.detach().to("cpu", torch.int8).numpy().reshape(-1)
        if self.n_units == 0:
            p = np.zeros(R, dtype=np.int8)
        w = witnesses.detach().to("cpu", torch.float64).numpy().reshape(-1)
        cols = [pa.array(np.arange(self.count, self.count + R, dtype=np.int64)),
                pa.FixedSizeListArray.from_arrays(pa.array(p), max(1, self.n_units)),
                pa.FixedSizeListArray.from_arrays(pa.array(w), self.d)]
        self.writer.write_batch(pa.record_batch(cols, schema=self.schema))
        self.count += R

    def close(self, meta: dict) -> str:
        """Write the metadata, close and rename onto the target; returns the path."""
        kv = {f"relulab.{k}": (json.dumps(v) if not isinstance(v, str) else v) for k, v in meta.items()}
        kv["relulab.format"] = FORMAT
        kv["relulab.count"] = str(self.count)
        self.writer.add_key_value_metadata(kv)
        self.writer.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)
        return str(self.path)

    def abort(self):
        try:
            self.writer.close()
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)


def read_regions(path) -> dict:
    """``{"patterns": (R, n) long, "witnesses": (R, d) float64, "meta": dict}`` of a file written
    by ``full_space(out=path)``; ``meta["complete"]`` is False for a run stopped by a budget."""
    _, pq = _pa("read_regions (reading a Parquet regions file)")
    if not os.path.isfile(path):
        raise InvalidInputError(f"path {str(path)!r} is not a file")
    f = pq.ParquetFile(path)
    raw = f.metadata.metadata or {}
    meta = {k.decode()[len("relulab."):]: v.decode() for k, v in raw.items() if k.startswith(b"relulab.")}
    if meta.get("format") != FORMAT:
        raise InvalidInputError(f"{str(path)!r} is not a regions file written by full_space(out=...)")
    for k in ("complete", "certified", "count", "input_dim", "n_units"):
        if k in meta:
            meta[k] = json.loads(meta[k])
    t = f.read()
    n, d = int(meta["n_units"]), int(meta["input_dim"])
    R = t.num_rows
    pat = np.asarray(t.column("pattern").combine_chunks().flatten()).reshape(R, max(1, n))[:, :n]
    wit = np.asarray(t.column("witness").combine_chunks().flatten()).reshape(R, d)
    return {"patterns": torch.from_numpy(pat.astype(np.int64)), "witnesses": torch.from_numpy(wit.copy()),
            "meta": meta}
