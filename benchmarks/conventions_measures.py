"""Start-up time of the command line and the size of result reprs, for any checkout.

    python benchmarks/conventions_measures.py [--checkout PATH] [--runs 5]

``relulab --version`` and ``relulab --help`` are timed as a user runs them (a fresh interpreter
each time; the minimum of ``--runs``, so that other load on the machine counts least), and whether
torch was imported. Reprs: the plane partition of a 2-32-32-2 ReLU MLP on [-3, 3]^2 and the Hessian
spectrum of the same network's cross-entropy on 200 spiral points, as ``repr()`` prints them in a
notebook (characters and lines).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REPRS = r'''
import torch, relulab
from relulab import data, regions
net = relulab.PLNet.from_torch(relulab.build("mlp:2-32-32-2:relu", seed=0), (2,))
p = regions.on_plane(net, extent=(-3, 3, -3, 3))
from relulab.landscape.hessian import hessian_spectrum
ds = data.spirals(n=200, seed=0)
h = hessian_spectrum(net.to_torch(), "cross_entropy", ds.x, ds.y, top=5, bottom=5)
for name, r in (("plane partition (%d regions)" % p.count, p), ("Hessian spectrum", h)):
    text = repr(r)
    print(f"{name:<32} repr {len(text):>7,} characters {len(text.splitlines()):>4} lines")
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkout", type=Path, default=ROOT)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str((args.checkout / "src").resolve()))
    print(f"relulab at {args.checkout}")
    for flag in ("--version", "--help"):
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import sys; from relulab.cli import main; sys.exit(main())", flag],
                           env=env, capture_output=True, check=False)
            times.append(time.perf_counter() - t)
        probe = subprocess.run([sys.executable, "-c", "import sys\nfrom relulab.cli import main\ntry:\n    main(["
                                f"{flag!r}])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"],
                               env=env, capture_output=True, text=True)
        loaded = probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else "?"
        print(f"relulab {flag:<10} min {min(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s over "
              f"{args.runs} runs; torch imported: {loaded}")
    subprocess.run([sys.executable, "-c", REPRS], env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
