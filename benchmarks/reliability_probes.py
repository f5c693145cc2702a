"""Hostile and careless probes of relulab's promise: exact or says why not, bounded in time and memory.

Every probe runs in its own process under a wall-clock limit and an address-space limit
(``resource.setrlimit(RLIMIT_AS)``), against whichever relulab ``--checkout`` names (its ``src`` goes
first on ``PYTHONPATH``), so the same probes measure any version::

    python benchmarks/reliability_probes.py                      # this checkout
    python benchmarks/reliability_probes.py --checkout /path/to/other/checkout --json out.json

A probe is *handled* when relulab gives the correct result (checked by the probe's own reference:
closed-form counts, the module's own outputs, files on disk) or refuses cleanly: on the command
line exactly one line ``relulab: error: ...`` on stderr, nothing on stdout and a non-zero exit; in
Python a :class:`relulab.RelulabError`. Anything else is *not handled* and says why: a wrong answer,
a silently accepted bad input, an internal error, a traceback, a timeout, or a memory blow-up (the
process hit its address-space limit). The table gives probes tried / handled per category (the
numbered items of the reliability issue: model files, data files, flags, budgets, degenerate
geometry, non-finite inputs, outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Probe:
    category: str
    name: str
    argv: list[str] | None = None          # a `relulab` command line ({d}: the scratch folder)
    code: str | None = None                # or Python defining probe() -> (correct: bool, detail)
    expect: str = "error"                  # CLI: "error" (must refuse), "ok" (must succeed and pass check)
    #                                        or "either" (a clean refusal or a success that passes check)
    words: str | None = None               # CLI "error": text the error line must contain (the flag or file)
    check: str | None = None               # CLI "ok": Python expression over out, err, d (Path) that must hold
    timeout: float = 60.0
    memory_gib: float = 4.0
    stdin_fifo: bool = False
    outcome: str = ""
    detail: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- scratch files
SETUP = r'''
import json, os, sys, zipfile, io, struct
from pathlib import Path
import numpy as np, torch
from torch import nn
d = Path(sys.argv[1])
from relulab.core import io as rio
torch.manual_seed(0)
rio.save(rio.build("mlp:2-8-8-1:relu", seed=0), d / "mlp.safetensors")
rio.save(rio.build("mlp:2-6-1:relu", seed=0), d / "shallow.safetensors")
rio.save(rio.build("mlp:2-8-8-2:relu", seed=0), d / "cls.safetensors")
rng = np.random.default_rng(0)
np.save(d / "x.npy", rng.normal(size=(12, 2)))
np.save(d / "y.npy", rng.normal(size=(12, 1)))
(d / "empty.csv").write_text("")
np.save(d / "structured.npy", np.zeros(4, dtype=[("a", "f8"), ("b", "f8")]))
# a .npy whose header declares 2e8 x 2 float64 (3 GiB) but holds 16 bytes
hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (200000000, 2), }"
hdr = hdr + " " * (118 - len(hdr)) + "\n"
(d / "liar.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + b"\0" * 16)
m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
sd = {k: v.clone() for k, v in m.state_dict().items()}
bad = dict(sd); bad["0.bias"] = bad["0.bias"].clone(); bad["0.bias"][0] = float("inf")
torch.save(bad, d / "inf_bias.pt")
bad = dict(sd); bad["2.weight"] = torch.full_like(bad["2.weight"], float("nan"))
torch.save(bad, d / "nan_weight.pt")
torch.save({k: v.to_sparse() if v.dim() == 2 else v for k, v in sd.items()}, d / "sparse.pt")
torch.save({k: torch.empty(v.shape, device="meta") for k, v in sd.items()}, d / "meta.pt")
# a torch.save file holding one tensor whose storage inflates to 1 GiB (deflated zeros)
buf = io.BytesIO(); torch.save({"0.weight": torch.zeros(2, 2)}, buf)
zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
with zipfile.ZipFile(d / "bomb.pt", "w") as zout:
    for item in zin.infolist():
        data = zin.read(item.filename)
        if item.filename.endswith("/data/0"):
            zi = zipfile.ZipInfo(item.filename)
            zi.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(zi, "w", force_zip64=True) as f:
                zero = bytes(1 << 24)
                for _ in range(64):
                    f.write(zero)
            continue
        zout.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED)
os.mkfifo(d / "fifo.pt2")
print("ok")
'''

# a probe's Python runs inside this wrapper: probe() returns (correct, detail) or raises
WRAP = r'''
import json, sys, math, time, warnings
warnings.simplefilter("ignore")
from pathlib import Path
d = Path(sys.argv[1])
import torch
from torch import nn
import relulab
from relulab import regions
full_space = getattr(regions, "full_space", None) or regions.enumerate
{code}
try:
    ok, detail = probe()
    print(json.dumps({{"outcome": "correct" if ok else "wrong", "detail": str(detail)[:300]}}))
except BaseException as e:
    rel = isinstance(e, relulab.RelulabError)
    print(json.dumps({{"outcome": "refused" if rel else "exception", "detail": type(e).__name__ + ": " + " ".join(str(e).split())[:300]}}))
'''


def _py(category, name, code, **kw) -> Probe:
    return Probe(category, name, code=textwrap.dedent(code), **kw)


def _cli(category, name, argv, **kw) -> Probe:
    return Probe(category, name, argv=argv, **kw)


HUGE = "99999999999999999999"
MODEL = "{d}/mlp.safetensors"
SHALLOW = "{d}/shallow.safetensors"


def probes() -> list[Probe]:
    P: list[Probe] = []
    # ---- 1. conversion follows every call of every module
    for what, build in (("ReLU instance used twice", "act = nn.ReLU(); m = nn.Sequential(nn.Linear(2, 8), act, "
                                                      "nn.Linear(8, 8), act, nn.Linear(8, 1))"),
                        ("Linear instance used twice", "L = nn.Linear(8, 8); m = nn.Sequential(nn.Linear(2, 8), "
                                                        "nn.ReLU(), L, nn.ReLU(), L, nn.ReLU(), nn.Linear(8, 1))")):
        P.append(_py("1 conversion", what, f"""
            def probe():
                torch.manual_seed(0)
                {build}
                m = m.double()
                net = relulab.PLNet.from_torch(m, (2,))
                x = torch.randn(2000, 2, dtype=torch.float64) * 3
                diff = float((net(x) - m(x)).abs().max())
                return diff < 1e-9, f"max |PLNet - module| = {{diff:.3g}}"
            """))
    # ---- 2. huge domains: a count is exact, raised, or says it is not certified
    for ext in (1e6, 1e9, 1e12, 1e308):
        P.append(_py("2 huge domains", f"on_plane extent {ext:g}", f"""
            def probe():
                net = relulab.PLNet.from_torch(relulab.build("mlp:2-8-8-2:relu", seed=0), (2,))
                ref = full_space(net).count
                r = regions.on_plane(net, extent=({-ext!r}, {ext!r}, {-ext!r}, {ext!r}), time_limit=60)
                if getattr(r, "certified", None) is False or not r.complete:
                    return True, f"{{r.count}} of {{ref}}, marked uncertified/incomplete"
                return r.count == ref, f"{{r.count}} regions, all of R^2 has {{ref}}"
            """))
    for ext in (1e6, 1e12):
        P.append(_py("2 huge domains", f"full space in box {ext:g}", f"""
            def probe():
                net = relulab.PLNet.from_torch(relulab.build("mlp:2-8-8-2:relu", seed=0), (2,))
                ref = full_space(net).count
                box = (torch.full((2,), {-ext!r}, dtype=torch.float64), torch.full((2,), {ext!r}, dtype=torch.float64))
                r = full_space(net, box, time_limit=60)
                if getattr(r, "certified", None) is False or not r.complete:
                    return True, f"{{r.count}} of {{ref}}, marked uncertified/incomplete"
                return r.count == ref, f"{{r.count}} regions in the box, all of R^2 has {{ref}}"
            """))
    # ---- 3. near-degenerate thin regions: two parallel lines eps apart and one crossing line
    thin = """
            def thin_net(eps):
                m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).double()
                with torch.no_grad():
                    m[0].weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
                    m[0].bias.copy_(torch.tensor([0.0, -eps, 0.0]))
                    m[2].weight.copy_(torch.tensor([[1.0, -2.0, 1.0]]))
                return relulab.PLNet.from_torch(m, (2,))
            def judged(r, want):
                if getattr(r, "certified", None) is False:
                    return True, f"{r.count} (want {want}), marked uncertified"
                return r.count == want, f"{r.count} regions, want {want}"
    """
    for eps in (1e-10, 1e-12):
        P.append(_py("3 degenerate geometry", f"on_plane thin slab {eps:g}", thin + f"""
            def probe():
                return judged(regions.on_plane(thin_net({eps!r}), extent=(-1, 1, -1, 1)), 6)
            """))
        P.append(_py("3 degenerate geometry", f"full space thin slab {eps:g}", thin + f"""
            def probe():
                return judged(full_space(thin_net({eps!r})), 6)
            """))
    P.append(_py("3 degenerate geometry", "on_line thin slab 1e-11", thin + """
            def probe():
                net = thin_net(1e-11)
                a = torch.tensor([-1.0, 0.5], dtype=torch.float64); b = torch.tensor([1.0, 0.5], dtype=torch.float64)
                return judged(regions.on_line(net, a, b), 3)
            """))
    P.append(_py("3 degenerate geometry", "slab 1e-6 on a plane of extent 1e5", thin + """
            def probe():
                m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)).double()
                with torch.no_grad():
                    m[0].weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
                    m[0].bias.copy_(torch.tensor([0.0, -1e-6, 0.0, 0.0]))
                    m[2].weight.copy_(torch.tensor([[1.0, -2.0, 1.0, 1.0]]))
                net = relulab.PLNet.from_torch(m, (2,))
                # lines x = 0, x = 1e-6, y = 0, x + y = 0: three meet at the origin (2 extra regions), the
                # slab's second wall crosses y = 0 and x + y = 0 once each: 1 + 4 + 2 + 1 + 1 = 9 regions
                return judged(regions.on_plane(net, extent=(-1e5, 1e5, -1e5, 1e5)), 9)
            """))
    # ---- 2/3 strictly ("Done when"): a count is certified equal to an exact reference, or raised
    for gap, want in ((1e-10, 6), (1e-13, 6), (0.0, 4)):
        P.append(_py("3 degenerate geometry", f"full space parallel walls {gap:g}: certified exact or raised", thin + f"""
            def probe():
                r = full_space(thin_net({gap!r}))
                return bool(getattr(r, "certified", False)) and r.count == {want}, \
                    f"{{r.count}} regions (exact {want}), certified: {{getattr(r, 'certified', None)}}"
            """))
    # walls off the origin: they meet on the compactification's outer facet, where the sliver between
    # them is thinner than the facet engine's float LPs resolve (exact reference: 6 regions)
    for gap in (1e-15, 2e-15, 1e-13):
        P.append(_py("3 degenerate geometry", f"full space walls y=-0.5, y=-0.5-{gap:g}: certified exact or raised", f"""
            def probe():
                m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).double()
                with torch.no_grad():
                    m[0].weight.copy_(torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]))
                    m[0].bias.copy_(torch.tensor([0.5, 0.5 + {gap!r}, 0.0], dtype=torch.float64))
                    m[2].weight.copy_(torch.tensor([[1.0, 1.37, 1.74]]))
                r = full_space(relulab.PLNet.from_torch(m, (2,)))
                return bool(getattr(r, "certified", False)) and r.count == 6, \
                    f"{{r.count}} regions (exact 6), certified: {{getattr(r, 'certified', None)}}"
            """))
    # axis-parallel walls (inputs read one at a time, max-pooling) against the facet engine's pyramids
    P.append(_py("3 degenerate geometry", "full space slabs x1 = -0.5, 0.3, 0.5 in R^3: certified exact", """
            def probe():
                l1, l2, l3 = nn.Linear(3, 3).double(), nn.Linear(3, 2).double(), nn.Linear(2, 1).double()
                with torch.no_grad():
                    l1.weight.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [2.0, 0, 0]]))
                    l1.bias.copy_(torch.tensor([0.5, 0.3, -1.0]))
                    l2.weight.copy_(torch.tensor([[1.0, 1, -1], [1.0, -2, 1]]))
                    l2.bias.copy_(torch.tensor([-0.2, 0.1]))
                r = full_space(relulab.PLNet.from_torch(nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), l3), (3,)))
                return bool(getattr(r, "certified", False)) and r.count == 6, \
                    f"{r.count} regions (LP reference 6), certified: {getattr(r, 'certified', None)}"
            """))
    # near-parallel walls 1e-12 and 1e-15 apart among others (exact reference: 18 regions)
    P.append(_py("3 degenerate geometry", "full space 7 lines, two pairs 1e-15 apart: certified exact or raised", """
            def probe():
                W = [[-2.0, -1.5], [1.5, -2.0], [-2.0, -2.0], [-1.5, -1.0], [2.0, 2.0], [1.5, -2.0], [2.0, 2.0]]
                m = nn.Sequential(nn.Linear(2, 7), nn.ReLU(), nn.Linear(7, 1)).double()
                with torch.no_grad():
                    m[0].weight.copy_(torch.tensor(W, dtype=torch.float64))
                    m[0].bias.copy_(torch.tensor([0.25, 1.0, 0.0, 0.25, 0.75, 1.0, 0.750000000000001], dtype=torch.float64))
                    m[2].weight.copy_(torch.tensor([[1.0 + 0.37 * i for i in range(7)]], dtype=torch.float64))
                r = full_space(relulab.PLNet.from_torch(m, (2,)))
                return bool(getattr(r, "certified", False)) and r.count == 18, \
                    f"{r.count} regions (exact 18), certified: {getattr(r, 'certified', None)}"
            """))
    P.append(_py("3 degenerate geometry", "full space split over R^3: certified like one process", """
            def probe():
                m = relulab.build("mlp:3-6-5-1:relu", seed=7)
                net = relulab.PLNet.from_torch(m, (3,))
                one = full_space(net)
                s = full_space(net, split=6, workers=1)
                same = (s.count, s.linear_count, s.unbounded_count) == (one.count, one.linear_count, one.unbounded_count)
                return same and one.certified and s.certified, \
                    f"{s.count} regions certified {s.certified} (one process: {one.count}, certified {one.certified})"
            """))
    P.append(_py("3 degenerate geometry", "linear count of 2-8-8-1: adjacency proven (linear_certified)", """
            def probe():
                torch.manual_seed(3)
                m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)).double()
                r = full_space(relulab.PLNet.from_torch(m, (2,)))
                return bool(getattr(r, "linear_certified", False)), \
                    f"{r.linear_count} linear regions, linear_certified: {getattr(r, 'linear_certified', None)}"
            """))
    P.append(_py("2 huge domains", "full space 2-16-16-1 boxes 1e6..1e308: certified exact or raised", """
            def probe():
                torch.manual_seed(0)
                m = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)).double()
                net = relulab.PLNet.from_torch(m, (2,))
                ref = full_space(net)
                if not getattr(ref, "certified", False):
                    return False, f"all of R^2: {ref.count} regions, not certified"
                bad = []
                for e in (6, 9, 12, 308):
                    try:
                        r = full_space(net, (-10.0 ** e, 10.0 ** e))
                    except relulab.RelulabError:
                        continue
                    if not (getattr(r, "certified", False) and r.count == ref.count):
                        bad.append(f"1e{e}: {r.count} certified={getattr(r, 'certified', None)}")
                return not bad, f"R^2 {ref.count} (certified); " + ("; ".join(bad) or "every box certified equal")
            """, timeout=240))
    P.append(_py("3 degenerate geometry", "linear count with dead output weights: certified exact", """
            def probe():
                from fractions import Fraction as Fr
                torch.manual_seed(1)
                m = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)).double()
                with torch.no_grad():
                    m[4].weight[0, :4] = 0.0
                net = relulab.PLNet.from_torch(m, (3,))
                r = full_space(net, neighbours=True)
                W = [[[Fr(v) for v in row] for row in m[i].weight.tolist()] for i in (0, 2, 4)]
                def grad(p):
                    v = list(W[2][0])
                    for layer, off in ((1, 8), (0, 0)):
                        v = [x if p[off + i] == 1 else 0 for i, x in enumerate(v)]
                        v = [sum(v[i] * W[layer][i][j] for i in range(len(v))) for j in range(len(W[layer][0]))]
                    return tuple(v)
                g = [grad(p) for p in r.patterns.tolist()]
                lab = list(range(len(g)))
                def find(a):
                    while lab[a] != a:
                        a = lab[a]
                    return a
                for a, b in r.neighbours.tolist():
                    if g[a] == g[b]:
                        lab[find(a)] = find(b)
                exact = len({find(a) for a in range(len(g))})
                ok = bool(getattr(r, "certified", False)) and r.linear_count == exact
                return ok, f"{r.linear_count} linear regions (exact {exact}), certified: {getattr(r, 'certified', None)}"
            """, timeout=240))
    # ---- 4. points on walls map to a region that contains them
    P.append(_py("4 region_of on walls", "integer-weight net, integer points", """
            def probe():
                g = torch.Generator().manual_seed(0)
                m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)).double()
                with torch.no_grad():
                    for p in m.parameters():
                        p.copy_(torch.randint(-2, 3, p.shape, generator=g).double())
                net = relulab.PLNet.from_torch(m, (2,))
                r = full_space(net, time_limit=120)
                pts = torch.stack(torch.meshgrid(torch.arange(-20, 21.), torch.arange(-20, 21.), indexing="ij"), -1)
                idx = r.region_of(pts.reshape(-1, 2).double())
                missing = int((idx < 0).sum())
                return missing == 0 and r.complete, f"{missing} of {idx.numel()} points without a region"
            """))
    # ---- 5. non-finite or complex networks and inputs
    for what, make in (("infinite bias", "m[0].bias[0] = float('inf')"), ("NaN weight", "m[2].weight[0, 0] = float('nan')")):
        P.append(_py("5 non-finite", f"from_torch with {what}", f"""
            def probe():
                m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)).double()
                with torch.no_grad():
                    {make}
                net = relulab.PLNet.from_torch(m, (2,))
                r = full_space(net)
                return False, f"accepted: {{r.count}} regions"
            """))
    P.append(_py("5 non-finite", "complex parameters", """
            def probe():
                m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)).to(torch.complex128)
                net = relulab.PLNet.from_torch(m, (2,))
                return False, "accepted a complex network"
            """))
    P.append(_py("5 non-finite", "leaky_relu slope -1e308", """
            def probe():
                m = relulab.build("mlp:2-8-1:leaky_relu:-1e308", seed=0)
                net = relulab.PLNet.from_torch(m, (2,))
                x = torch.randn(100, 2, dtype=torch.float64) * 10
                y = net(x)
                return False, f"accepted; outputs finite: {bool(torch.isfinite(y).all())}"
            """))
    P.append(_py("5 non-finite", "inputs that overflow in the network", """
            def probe():
                net = relulab.PLNet.from_torch(relulab.build("mlp:2-8-8-1:relu", seed=0), (2,))
                a = torch.tensor([1e307, 1e307], dtype=torch.float64); b = -a
                r = regions.on_line(net, a, b)
                # every breakpoint lies within a few units of the origin, so a segment of length 1e6
                # along the same line meets the same regions: a refusal or that count is right
                ref = regions.on_line(net, a / 1e301, b / 1e301).count
                ok = r.count == ref and bool(getattr(r, "certified", False))
                return ok, f"{r.count} intervals (reference {ref}), certified: {getattr(r, 'certified', None)}"
            """))
    P.append(_cli("5 non-finite", "CLI: model with an infinite bias", ["regions", "{d}/inf_bias.pt", "--arch",
                                                                     "mlp:2-8-1:relu", "--all"]))
    P.append(_cli("5 non-finite", "CLI: model with NaN weights", ["info", "{d}/nan_weight.pt", "--arch", "mlp:2-8-1:relu"]))
    # ---- 6. train-mode models
    P.append(_py("6 train mode", "hessian_spectrum of a train-mode model with dropout", """
            def probe():
                from relulab.landscape.hessian import hessian_spectrum
                m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1)).double().train()
                x = torch.randn(20, 2, dtype=torch.float64); y = torch.randn(20, 1, dtype=torch.float64)
                r = hessian_spectrum(m, "mse", x, y, top=1, bottom=1, trace_queries=2, max_steps=10)
                said = [k for k, v in r.to_dict().items() if "mode" in k or "train" in k]
                return bool(said), f"result fields about the mode: {said}"
            """))
    # ---- 7. budgets in high dimension and set-up
    for d_in, limit, extra in ((784, 2, ""), (128, 2, ""), (24, 2, ", max_regions=10, box=True")):
        box = "(torch.zeros(d), torch.ones(d))" if "box" in extra else "None"
        mr = ", max_regions=10" if "max_regions" in extra else ""
        P.append(_py("7 budgets", f"full space d={d_in} time_limit={limit}{' box max_regions=10' if extra else ''}", f"""
            def probe():
                d = {d_in}
                net = relulab.PLNet.from_torch(relulab.build("mlp:{d_in}-16-10:relu", seed=0), (d,))
                t = time.time()
                r = full_space(net, {box}, time_limit={limit}{mr})
                took = time.time() - t
                return took < 10 * {limit} + 10, f"returned after {{took:.1f}} s, {{r.count}} regions, complete={{r.complete}}"
            """, timeout=90, memory_gib=3))
    P.append(_py("7 budgets", "6-32-32-32-1 time_limit=1 returns some regions", """
            def probe():
                net = relulab.PLNet.from_torch(relulab.build("mlp:6-32-32-32-1:relu", seed=0), (6,))
                t = time.time()
                r = full_space(net, time_limit=1)
                took = time.time() - t
                return took < 30 and (r.count > 0 or r.complete), f"{r.count} regions after {took:.1f} s"
            """, timeout=90, memory_gib=3))
    P.append(_cli("7 budgets", "CLI --time-limit 5 on a 64-16-10 net", ["regions", "{d}/wide.safetensors", "--all",
                                                                          "--time-limit", "5", "--json"],
                  expect="ok", check="json.loads(out)['complete'] in (True, False)", timeout=60, memory_gib=3))
    # ---- 8. small inputs that would allocate gigabytes
    P.append(_cli("8 allocation", "torch.save file inflating to 1 GiB", ["info", "{d}/bomb.pt", "--arch", "mlp:2-2"],
                  memory_gib=1.5))
    P.append(_cli("8 allocation", ".npy header declaring 3 GiB", ["ntk", MODEL, "{d}/liar.npy"], memory_gib=2))
    P.append(_cli("8 allocation", "--arch mlp:2-100000000-1", ["info", "{d}/mlp.safetensors", "--arch",
                                                                "mlp:2-100000000-1"], memory_gib=2))
    P.append(_cli("8 allocation", "ntk spirals:100000000 --max-points 16", ["ntk", MODEL, "spirals:100000000",
                                                                             "--max-points", "16"], memory_gib=2))
    P.append(_cli("8 allocation", "ntk 20000 points --memory 0.001", ["ntk", MODEL, "spirals:20000", "--max-points",
                                                                       "20000", "--memory", "0.001"], memory_gib=2))
    P.append(_cli("8 allocation", "teacher-student --starts 1000000000", ["landscape", "teacher-student", "--d", "2",
                                                                           "--starts", "1000000000"], memory_gib=2))
    # ---- 9. careless flags and files: one clear line
    # (name, argv, what the one error line must name; "either": a correct success is fine too)
    nine = [
        ("sparse state dict", ["info", "{d}/sparse.pt", "--arch", "mlp:2-8-1:relu"], "sparse.pt"),
        ("meta-device state dict", ["info", "{d}/meta.pt", "--arch", "mlp:2-8-1:relu"], "meta.pt"),
        ("structured .npy", ["ntk", MODEL, "{d}/structured.npy"], "structured.npy"),
        ("--memory inf", ["ntk", MODEL, "{d}/x.npy", "--memory", "inf"], "--memory"),
        ("zero-length --line", ["regions", MODEL, "--line", "0,0", "0,0"], "--line"),
        ("overflowing --line", ["regions", MODEL, "--line", "1e308,1e308", "-1e308,-1e308"], "--line"),
        ("--d 99999999999999999999", ["landscape", "teacher-student", "--d", HUGE], "--d"),
        ("--k 99999999999999999999", ["landscape", "teacher-student", "--d", "2", "--k", HUGE], "--k"),
        ("--max-points 99999999999999999999", ["ntk", MODEL, "{d}/x.npy", "--max-points", HUGE, "--json"],
         "either"),
        ("--top 99999999999999999999", ["hessian", MODEL, "{d}/x.npy", "--targets", "{d}/y.npy", "--loss", "mse",
                                        "--top", HUGE], "--top"),
        ("--d 5000", ["landscape", "teacher-student", "--d", "5000", "--starts", "1"], "--d"),
        ("--dims 100000", ["landscape", "jacobian-rank", "--grid", "--dims", "100000", "--ns", "500", "--ms", "200"],
         "--dims"),
        ("--trace-queries 100000000", ["hessian", MODEL, "{d}/x.npy", "--targets", "{d}/y.npy", "--loss", "mse",
                                       "--trace-queries", "100000000"], "--trace-queries"),
        ("empty CSV", ["landscape", "classify", SHALLOW, "{d}/empty.csv", "--targets", "{d}/y.npy"], "empty.csv"),
        ("huge --k range", ["init", "maxout", "--k", "2-100000000000"], "--k"),
        ("FIFO as model", ["info", "{d}/fifo.pt2"], "fifo.pt2"),
        ("/dev/zero as model", ["info", "/dev/zero"], "/dev/zero"),
        ("--extent with inf", ["regions", MODEL, "--plane", "--extent", "-1", "1", "-1", "1e400"], "extent"),
        ("--time-limit nan", ["regions", MODEL, "--all", "--time-limit", "nan"], "--time-limit"),
    ]
    for name, argv, words in nine:
        kw = dict(expect="either", check="json.loads(out)['n'] == 12") if words == "either" else dict(words=words)
        P.append(_cli("9 flags and files", name, argv, memory_gib=2, timeout=20 if "FIFO" in name else 45, **kw))
    # ---- 10. outputs
    P.append(_cli("10 outputs", "--plot o reports the file it writes", ["regions", MODEL, "--line", "0,0", "1,1", "--plot",
                                                                       "{d}/o", "--json"], expect="ok",
                  check="Path(json.loads(out)['plot']).is_file()"))
    P.append(_cli("10 outputs", "--save K reports the file it writes", ["ntk", MODEL, "{d}/x.npy", "--save", "{d}/K",
                                                                        "--json"], expect="ok",
                  check="Path(json.loads(out)['saved']).is_file()"))
    for name, argv in (("empty --plot", ["regions", MODEL, "--line", "0,0", "1,1", "--plot", ""]),
                       ("empty --save", ["ntk", MODEL, "{d}/x.npy", "--save", ""]),
                       ("empty demo --out", ["demo", "--out", ""]),
                       ("--plot into a missing folder", ["regions", MODEL, "--line", "0,0", "1,1", "--plot",
                                                         "{d}/missing/o.png"])):
        P.append(_cli("10 outputs", name, argv))
    P.append(_py("10 outputs", "a killed report run leaves its folder unmarked", """
            def probe():
                import os, signal, subprocess
                from relulab import report
                out = d / "killed"
                ok = report.write_report  # the writer exists in every version
                checker = getattr(report, "is_complete", None)
                if checker is None:
                    return False, "no completion marker: a reader cannot tell a finished folder from a killed run"
                net = relulab.PLNet.from_torch(relulab.build("mlp:2-4-2:relu", seed=0), (2,))
                from relulab import data as datasets
                def dec(n, dd, o):
                    return report.decision_section(n, dd, o, res=10)
                report.write_report(net, datasets.xor(n=20), out, [dec])
                first = checker(out)
                def killed(n, dd, o):
                    raise KeyboardInterrupt
                try:
                    report.write_report(net, datasets.xor(n=20), out, [dec, killed])
                except KeyboardInterrupt:
                    pass
                return first and not checker(out), f"complete after a full run: {first}, after a killed one: {checker(out)}"
            """))
    return P


# ---------------------------------------------------------------------- running
def _limits(memory_gib: float):
    def apply():
        limit = int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.setsid()
    return apply


def _classify_cli(p: Probe, rc: int, out: str, err: str, d: Path) -> tuple[str, str]:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "MemoryError" in err or "std::bad_alloc" in err or "Cannot allocate memory" in err or rc in (-9, 137):
        return "memory blow-up", (lines[-1] if lines else f"exit {rc}")[:200]
    if "Traceback" in err:
        return "traceback", lines[-1][:200] if lines else ""
    if "internal error" in err:
        return "internal error", lines[0][:200]
    if p.expect in ("error", "either") and rc != 0:
        if len(lines) == 1 and lines[0].startswith("relulab: error: ") and not out.strip():
            if p.words and p.words not in lines[0]:
                return "unclear error", f"does not name {p.words!r}: {lines[0]}"[:200]
            return "handled", lines[0][:200]
        return "unclear error", " | ".join(lines)[:200]
    if p.expect == "error":
        return "accepted silently", (out.strip().splitlines() or [""])[0][:200]
    if rc != 0:
        return "failed", " | ".join(lines)[:200]
    try:
        good = bool(eval(p.check, {"json": json, "Path": Path}, {"out": out, "err": err, "d": d}))  # noqa: S307
    except Exception as e:  # noqa: BLE001
        return "wrong", f"check failed: {type(e).__name__}: {e}"[:200]
    if len(lines) > 0:
        return "noisy", " | ".join(lines)[:200]
    return ("handled", "correct") if good else ("wrong", out.strip()[:200])


def run_probe(p: Probe, src: Path, d: Path) -> Probe:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("RELULAB_DEBUG", None)
    if p.argv is not None:
        cmd = [sys.executable, "-c", "import sys; from relulab.cli import main; sys.exit(main())",
               *[a.format(d=d) for a in p.argv]]
    else:
        cmd = [sys.executable, "-c", WRAP.format(code=p.code), str(d)]
    t0 = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=p.timeout, env=env, cwd=d,
                           preexec_fn=_limits(p.memory_gib), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        p.seconds = time.time() - t0
        p.outcome, p.detail = "timeout", f"no answer within {p.timeout:.0f} s"
        return p
    p.seconds = time.time() - t0
    if p.argv is not None:
        p.outcome, p.detail = _classify_cli(p, r.returncode, r.stdout, r.stderr, d)
        return p
    try:
        doc = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        p.outcome = "memory blow-up" if "MemoryError" in r.stderr or "alloc" in r.stderr else "crash"
        p.detail = tail[:200]
        return p
    p.detail = doc["detail"]
    p.outcome = {"correct": "handled", "refused": "handled", "wrong": "wrong answer"}.get(doc["outcome"], "")
    if not p.outcome:
        p.outcome = "memory blow-up" if "MemoryError" in doc["detail"] or "alloc" in doc["detail"] else "exception"
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", type=Path, default=ROOT, help="relulab checkout to probe (default: this one)")
    ap.add_argument("--jobs", type=int, default=2, help="probes run at once (default 2)")
    ap.add_argument("--only", default=None, help="run only probes whose category or name contains this text")
    ap.add_argument("--json", type=Path, default=None, help="also write every probe's outcome to this file")
    args = ap.parse_args(argv)
    src = (args.checkout / "src").resolve()
    if not (src / "relulab" / "__init__.py").is_file():
        ap.error(f"{args.checkout} has no src/relulab")
    todo = [p for p in probes() if not args.only or args.only in p.category or args.only in p.name]
    with tempfile.TemporaryDirectory(prefix="relulab-probes-") as tmp:
        d = Path(tmp)
        env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
        subprocess.run([sys.executable, "-c", SETUP, str(d)], check=True, env=env, capture_output=True)
        subprocess.run([sys.executable, "-c", "import sys; from relulab.core import io; "
                        "io.save(io.build('mlp:64-16-10:relu', seed=0), sys.argv[1])", str(d / "wide.safetensors")],
                       check=True, env=env)
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            done = list(ex.map(lambda p: run_probe(p, src, d), todo))
        total = time.time() - t0
    width = max(len(p.name) for p in done)
    print(f"relulab reliability probes against {args.checkout} ({len(done)} probes, {total:.0f} s)\n")
    for p in done:
        mark = "ok " if p.outcome == "handled" else "NO "
        print(f"{mark} {p.category:<22} {p.name:<{width}}  {p.outcome:<17} {p.seconds:6.1f} s  {p.detail}")
    print(f"\n{'category':<24} {'tried':>5} {'handled':>8}")
    cats: dict[str, list[Probe]] = {}
    for p in done:
        cats.setdefault(p.category, []).append(p)
    for c in sorted(cats, key=lambda c: int(c.split()[0])):
        ps = cats[c]
        print(f"{c:<24} {len(ps):>5} {sum(p.outcome == 'handled' for p in ps):>8}")
    handled = sum(p.outcome == "handled" for p in done)
    print(f"{'all':<24} {len(done):>5} {handled:>8}")
    if args.json:
        args.json.write_text(json.dumps([{k: getattr(p, k) for k in ("category", "name", "outcome", "detail", "seconds")}
                                         for p in done], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
