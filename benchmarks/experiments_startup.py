"""Start-up of `relulab reproduce` / `relulab sweep`: the same commands run from two source trees
(e.g. before and after a change), interleaved, each a fresh process; prints wall and CPU seconds
(user + system of the process and its children) and the load average beside each.

    PYTHONPATH=src python benchmarks/experiments_startup.py --before /path/to/old/src [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(src: str, argv: list[str]) -> tuple[float, float, int]:
    env = {**os.environ, "PYTHONPATH": src}
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "relulab", *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the src folder of the other tree")
    ap.add_argument("--after", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    spec = tmp / "spec.toml"
    spec.write_text('experiment = "calibration"\n[parameters]\nindex = [0, 1, 2, 3]\n')
    bad = tmp / "bad.toml"
    bad.write_text('experiment = "hanin-rolnick-regions"\n[parameters]\ndepht = [1, 2]\n')
    cases = {
        "reproduce --list": lambda out: ["reproduce", "--list"],
        "reproduce --list --json": lambda out: ["reproduce", "--list", "--json"],
        "reproduce calibration --quick": lambda out: ["reproduce", "calibration", "--quick"],
        "sweep (finished: resume scan only)": lambda out: ["sweep", str(spec), "--out", str(out)],
        "sweep with a misspelt parameter": lambda out: ["sweep", str(bad), "--out", str(out / "bad")],
    }
    trees = {"before": args.before, "after": args.after}
    for tree in trees:  # the finished sweep each tree rescans
        subprocess.run([sys.executable, "-m", "relulab", "sweep", str(spec), "--out", str(tmp / tree), "--workers", "1"],
                       env={**os.environ, "PYTHONPATH": trees[tree]}, capture_output=True, check=True)
    res: dict = {}
    for r in range(args.rounds):
        for case, argv in cases.items():
            for tree, src in trees.items():  # interleaved: the load drifts between runs
                res.setdefault((case, tree), []).append(timed(src, argv(tmp / tree)))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; median of {args.rounds} runs")
    for case in cases:
        b, a = res[(case, "before")], res[(case, "after")]
        med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
        print(f"{case}: before {med(b, 0):.2f} s wall / {med(b, 1):.2f} CPU s; after {med(a, 0):.2f} s wall / "
              f"{med(a, 1):.2f} CPU s; CPU x{med(b, 1) / max(med(a, 1), 1e-9):.1f} (exit codes {b[0][2]}, {a[0][2]})")


if __name__ == "__main__":
    main()
