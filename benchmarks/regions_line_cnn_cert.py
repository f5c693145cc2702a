"""Can ``on_line`` certify CNN segments? The line certificate with exact pieces over each unit's
dependency cone (:class:`relulab.regions._exact.ConePieces`) where the dense exact tables are too
large, against the certificate as it is, on the CNNs of benchmarks/regions_line.py.

    python benchmarks/regions_line_cnn_cert.py [--configs mnist-d1-w8 mnist-d2-w8] [--max-work 1e9]

"as is" is ``on_line``'s default, whose exact stage takes pieces from ``ConePieces`` when
``exact_tables`` gives up. "cone" runs the same certificate
(:func:`relulab.regions._line_cert.certify_segments`) with its work budget raised to ``--max-work``
instead of 1e8 (made here for measurement only). Each segment
joins two points drawn uniformly from [0, 1]^shape (seeded). Reported per configuration: intervals,
certified, float decisions and exact decisions, the reason when undecided, and CPU seconds of the
certificate alone, for both variants.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import relulab  # noqa: E402
from relulab.regions import _line_cert, on_line  # noqa: E402
from relulab.regions import line as line_mod  # noqa: E402
from relulab.regions._exact import ConePieces  # noqa: E402

from regions_line import CONFIGS  # noqa: E402


def cone_variant(max_work: float):
    """Patches that make the certificate use cone pieces (undone by the returned function)."""
    real_tables, real_pieces = _line_cert.exact_tables, _line_cert.exact_pieces
    real_kw = dict(_line_cert.certify_segments.__kwdefaults__)
    spent = [0]

    def tables(net, max_entries=None):
        t = real_tables(net, max_entries=max_entries)
        return t if t is not None else [("cone",)] * len(net.nodes)

    def pieces(net, tabs, a, b, pattern, layer):
        if tabs[0] == ("cone",):
            return ConePieces(net, a, b, pattern, layer, spent, over=_line_cert._OverBudget), 0
        return real_pieces(net, tabs, a, b, pattern, layer)

    _line_cert.exact_tables, _line_cert.exact_pieces = tables, pieces
    _line_cert.certify_segments.__kwdefaults__["max_work"] = max_work

    def undo():
        _line_cert.exact_tables, _line_cert.exact_pieces = real_tables, real_pieces
        _line_cert.certify_segments.__kwdefaults__.update(real_kw)

    return undo


def measure(net, a, b):
    seen = {}
    real = line_mod._filter_certify

    def timed(*args, **kw):
        t = time.process_time()
        out = real(*args, **kw)
        seen.update(cpu=time.process_time() - t, ok=out.ok, filtered=out.filtered, exact=out.exact, why=out.reason)
        return out

    line_mod._filter_certify = timed
    try:
        r = on_line(net, a, b)
    finally:
        line_mod._filter_certify = real
    return r, seen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="*", default=["mnist-d1-w8", "mnist-d2-w8"])
    ap.add_argument("--max-work", type=float, default=1e9)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"{'config':<14}{'variant':<9}{'intervals':>10}{'certified':>10}{'float':>11}{'exact':>7}{'cert CPU s':>11}  why")
    for name in args.configs:
        make, shape = CONFIGS[name]
        torch.manual_seed(args.seed)
        net = relulab.PLNet.from_torch(make().double().eval(), shape)
        g = torch.Generator().manual_seed(args.seed)
        a = torch.rand(shape, generator=g, dtype=torch.float64)
        b = torch.rand(shape, generator=g, dtype=torch.float64)
        for variant in ("as is", "cone"):
            undo = cone_variant(args.max_work) if variant == "cone" else (lambda: None)
            try:
                r, s = measure(net, a, b)
            finally:
                undo()
            print(f"{name:<14}{variant:<9}{r.count:>10}{str(r.certified):>10}{s.get('filtered', 0):>11}"
                  f"{s.get('exact', 0):>7}{s.get('cpu', 0.0):>11.2f}  {s.get('why', '')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
