"""Benchmark of ``relulab.kernels.empirical_ntk`` against the two methods of the PyTorch tutorial
"Neural Tangent Kernels" (torch.func), written here from the tutorial's description.

    .venv/bin/python benchmarks/ntk_empirical.py                 # n = 256 and 1024, all three models
    .venv/bin/python benchmarks/ntk_empirical.py --n 1024 --dtype float64 --model custom cnn
    .venv/bin/python benchmarks/ntk_empirical.py --n 256 --dtype float64 --all --load 2

Models (``--model``, default all three; torch default init, seed 0, inputs N(0, I), float32 unless
--dtype):

* ``mlp``: ``nn.Sequential`` MLP 16-512-512-1 (ReLU): relulab's structured fast path applies;
* ``custom``: the same MLP written as a custom module with raw ``nn.Parameter`` weights
  (``x @ W.T + b``): no ``nn.Linear``, so relulab takes the generic Jacobian path;
* ``cnn``: Conv2d(1, 16, 3) - ReLU - Conv2d(16, 16, 3) - ReLU - Flatten - Linear(16 * 8 * 8, 1) on
  1 x 12 x 12 inputs: the generic path (convolutions share weights).

Rows (each in its own subprocess, after a warm-up call on 8 points):

* ``relulab auto``: ``empirical_ntk(model, X)`` (the method it picks is shown);
* ``relulab jacobian``: ``empirical_ntk(model, X, method="jacobian")``, the generic path, with
  ``--memory`` GiB as its budget (default: the library's default, 2 GiB including the kernel);
* ``tutorial jac-contraction``: per-sample Jacobians ``vmap(jacrev(f))`` of x1 and of x2, then one
  einsum per parameter tensor, summed (the tutorial's ``empirical_ntk_jacobian_contraction``);
* ``tutorial ntk-vector``: ``vjp`` of f(x2), the basis vectors pushed through it and then through a
  ``jvp`` of f(x1), vmapped over the basis (the tutorial's ``empirical_ntk_ntk_vps``). For n above
  ``--tile`` it runs on tiles of ``tile x tile`` points (unchanged method, bounded memory), else it
  would need about n^2 x 512 x 4 bytes per hidden activation. It costs n^2 forward passes, so it
  runs only for n up to ``--ntvp-max-n`` (default 256; on the CNN n = 1024 it would take minutes and
  gigabytes per tile and says nothing the Jacobian contraction does not) and is listed as skipped
  above;
* with ``--all`` also relulab's ``jacobian`` and ``ntvp`` methods.

Measured: wall seconds and CPU seconds of the call (the machine may be shared: CPU seconds are the
steadier figure); peak memory as the growth of the subprocess's maximum resident set size
(``resource.getrusage(...).ru_maxrss``) over its value after the warm-up (on CUDA:
``torch.cuda.max_memory_allocated`` minus the memory in use before the call); max |K - K_ref| with
the tutorial Jacobian contraction as reference. Ratios are each row's CPU time over relulab auto's
and wall time over the tutorial Jacobian contraction's.
Threads: torch's default (what a user gets) unless ``--threads N``; ``--load N`` runs N CPU-bound
processes beside the benchmark for its whole duration (stopped at the end), to measure under load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class CustomMLP(nn.Module):
    """16-512-512-1 ReLU MLP with raw parameters (initialized like nn.Linear): a custom module."""

    def __init__(self, widths=(16, 512, 512, 1)):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            lin = nn.Linear(a, b)
            self.weights.append(nn.Parameter(lin.weight.detach().clone()))
            self.biases.append(nn.Parameter(lin.bias.detach().clone()))

    def forward(self, x):
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w.T + b
            if i < last:
                x = torch.relu(x)
        return x


MODELS = ("mlp", "custom", "cnn")


def make_model(kind, dtype, device):
    torch.manual_seed(0)
    if kind == "mlp":
        m = nn.Sequential(nn.Linear(16, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 1))
    elif kind == "custom":
        m = CustomMLP()
    else:
        m = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(16 * 8 * 8, 1))
    return m.to(dtype=dtype, device=device)


def make_data(kind, n, dtype, device):
    g = torch.Generator().manual_seed(1)
    shape = (1, 12, 12) if kind == "cnn" else (16,)
    return torch.randn(n, *shape, generator=g).to(dtype=dtype, device=device)


# ----------------------------------------------------------------------------- tutorial methods
def tutorial_jacobian_contraction(model, x1, x2):
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def f_single(p, x):
        return functional_call(model, p, (x.unsqueeze(0),)).squeeze(0)

    j1 = vmap(jacrev(f_single), (None, 0))(params, x1)
    j1 = [j.flatten(2) for j in j1.values()]
    j2 = vmap(jacrev(f_single), (None, 0))(params, x2)
    j2 = [j.flatten(2) for j in j2.values()]
    return torch.stack([torch.einsum("Naf,Mbf->NMab", a, b) for a, b in zip(j1, j2)]).sum(0)


def tutorial_ntk_vector_products(model, x1, x2):
    from torch.func import functional_call, jvp, vjp, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def f1(p):
        return functional_call(model, p, (x1,))

    def f2(p):
        return functional_call(model, p, (x2,))

    out, vjp_fn = vjp(f2, params)

    def ntk_slice(vec):
        (vjps,) = vjp_fn(vec)
        return jvp(f1, (params,), (vjps,))[1]

    basis = torch.eye(out.numel(), dtype=out.dtype, device=out.device).view(out.numel(), *out.shape)
    res = vmap(ntk_slice)(basis)  # (M*o, N, o)
    M, o = out.shape
    return res.reshape(M, o, x1.shape[0], -1).permute(2, 0, 3, 1)  # (N, M, o, o)


def tiled(fn, model, x, tile):
    n = x.shape[0]
    rows = []
    for i in range(0, n, tile):
        rows.append(torch.cat([fn(model, x[i:i + tile], x[j:j + tile]) for j in range(0, n, tile)], 1))
    return torch.cat(rows, 0)


# ----------------------------------------------------------------------------- worker
def worker(kind, method, n, out_path, dtype_name, threads, tile, memory):
    if threads:
        torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = make_model(kind, dtype, device)
    x = make_data(kind, n, dtype, device)
    from relulab.kernels import empirical_ntk

    info = {}

    def run(xx):
        if method.startswith("relulab"):
            m = method.split(":")[1]
            kw = {} if memory is None or m != "jacobian" else {"memory_budget": int(memory * 2**30)}
            r = empirical_ntk(model, xx, method=m, **kw)
            info.update(method_used=r.method, chunks=list(r.chunk_sizes),
                        estimate_mb=(r.estimated_peak_bytes + r.kernel_bytes) / 2**20)
            return r.kernel
        fn = tutorial_jacobian_contraction if method == "tutorial:jacobian" else tutorial_ntk_vector_products
        if method == "tutorial:ntvp" and xx.shape[0] > tile:
            info["tiled"] = tile
            return tiled(fn, model, xx, tile)[..., 0, 0]
        return fn(model, xx, xx)[..., 0, 0]

    run(x[:8])  # warm-up: imports, first-call dispatch, decompositions
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    w, c = time.perf_counter(), time.process_time()
    K = run(x)
    if device == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else (rss1 - rss0) / 1024
    torch.save(K.detach().cpu(), out_path)
    print(json.dumps({"seconds": wall, "cpu_s": cpu, "peak_mb": peak_mb, "device": device, **info}))


# ----------------------------------------------------------------------------- driver
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[256, 1024], help="numbers of points (default 256 1024)")
    ap.add_argument("--model", nargs="+", default=list(MODELS), choices=MODELS,
                    help="models: mlp (structured path), custom and cnn (generic path); default all")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=None,
                    help="pin torch to this many threads (default: torch's default, as a user gets)")
    ap.add_argument("--memory", type=float, default=None, metavar="GIB",
                    help="memory budget of the relulab jacobian row in GiB (default: the library's default)")
    ap.add_argument("--load", type=int, default=0, metavar="N",
                    help="run N CPU-bound processes during the benchmark (default 0: idle)")
    ap.add_argument("--tile", type=int, default=256, help="tile size of the tutorial NTK-vector products above this n")
    ap.add_argument("--ntvp-max-n", type=int, default=256, metavar="N",
                    help="run the tutorial NTK-vector products (n^2 forward passes) only for n <= N (default 256)")
    ap.add_argument("--all", action="store_true", help="also relulab's jacobian and ntvp methods")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--worker", nargs=4, metavar=("MODEL", "METHOD", "N", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker[0], a.worker[1], int(a.worker[2]), a.worker[3], a.dtype, a.threads, a.tile, a.memory)
        return
    methods = ["relulab:auto", "relulab:jacobian", "tutorial:jacobian", "tutorial:ntvp"]
    if a.all:
        methods += ["relulab:ntvp"]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sys.path.insert(0, str(HERE))
    from load import cpu_load

    with cpu_load(a.load):
        for kind in a.model:
            run_model(a, kind, methods, env)
    print("cpu ratio = CPU seconds of the row / CPU seconds of relulab auto; wall vs tut = wall seconds of the")
    print("row / wall seconds of the tutorial Jacobian contraction; rel = max|dK| / max|K_ref|;")
    print("peak MB = growth of the worker's max RSS over its post-warm-up value (CUDA: max allocated).")


def run_model(a, kind, methods, env):
    desc = {"mlp": "MLP 16-512-512-1 (nn.Sequential)", "custom": "MLP 16-512-512-1 (custom module)",
            "cnn": "CNN conv3x3(16)-conv3x3(16)-linear on 1x12x12"}[kind]
    print(f"\n{desc}, {a.dtype}, threads {a.threads or torch.get_num_threads()} "
          f"({'pinned' if a.threads else 'torch default'}), {a.load} load processes, "
          f"load average {os.getloadavg()[0]:.1f}")
    header = f"{'n':>5} {'method':<26} {'wall s':>8} {'cpu s':>8} {'peak MB':>9} {'max|dK|':>10} {'rel':>9} " \
             f"{'cpu ratio':>9} {'wall vs tut':>11}  note"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.n:
            res, kern = {}, {}
            for m in methods:
                if m.endswith(":ntvp") and n > a.ntvp_max_n:
                    res[m] = {"error": f"skipped: n > --ntvp-max-n {a.ntvp_max_n} (n^2 forward passes)"}
                    continue
                out = str(Path(tmp) / f"{m.replace(':', '_')}_{n}.pt")
                cmd = [sys.executable, str(Path(__file__).resolve()), "--dtype", a.dtype, "--tile", str(a.tile)]
                cmd += ["--threads", str(a.threads)] if a.threads else []
                cmd += ["--memory", str(a.memory)] if a.memory is not None else []
                cmd += ["--worker", kind, m, str(n), out]
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, env=env)
                except subprocess.TimeoutExpired:
                    res[m] = {"error": f"timeout after {a.timeout} s"}
                    continue
                if p.returncode != 0:
                    res[m] = {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:80]}
                    continue
                res[m] = json.loads(p.stdout.strip().splitlines()[-1])
                kern[m] = torch.load(out)
            ref = kern.get("tutorial:jacobian")
            base = res.get("relulab:auto", {}).get("cpu_s")
            tut = res.get("tutorial:jacobian", {}).get("seconds")
            for m in methods:
                r = res[m]
                if "error" in r:
                    print(f"{n:>5} {m:<26} {'-':>8} {'-':>8} {'-':>9} {'-':>10} {'-':>9} {'-':>9} {'-':>11}  "
                          f"{r['error']}")
                    continue
                if ref is not None and m in kern:
                    d = float((kern[m].double() - ref.double()).abs().max())
                    rel = d / float(ref.double().abs().max())
                else:
                    d = rel = float("nan")
                ratio = r["cpu_s"] / base if base else float("nan")
                vs_tut = r["seconds"] / tut if tut else float("nan")
                note = []
                if "method_used" in r:
                    note.append(f"picked {r['method_used']}, chunks {r['chunks']}, estimate {r['estimate_mb']:.0f} MB")
                if "tiled" in r:
                    note.append(f"tiled {r['tiled']}")
                print(f"{n:>5} {m:<26} {r['seconds']:>8.3f} {r['cpu_s']:>8.3f} {r['peak_mb']:>9.1f} {d:>10.2e} "
                      f"{rel:>9.1e} {ratio:>9.2f} {vs_tut:>11.2f}  {'; '.join(note)}")


if __name__ == "__main__":
    main()
