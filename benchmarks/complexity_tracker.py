"""Tracker overhead on the digits example (examples/grokking_digits.py), side by side with the same
training loop without the tracker.

    .venv/bin/python benchmarks/complexity_tracker.py               # 3000 steps
    .venv/bin/python benchmarks/complexity_tracker.py --steps 20000

Reports the tracker's own account (time inside the tracker over time outside it) and the wall-clock
ratio of the two runs minus one. Wall time on a shared machine is noisy; the tracker's budget rule
(measure only while measuring time <= 0.2 x training time) is what bounds the overhead.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile



def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    a = p.parse_args()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "grokking_digits.py")
    spec = importlib.util.spec_from_file_location("grokking_digits", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    if ex.load_digits is None:
        print("needs scikit-learn (pip install 'relulab[examples]')")
        sys.exit(0)
    import time

    import torch

    load0 = os.getloadavg()[0]
    c0 = time.process_time()
    plain = ex.main(a.steps, track=False)["seconds"]
    plain_cpu = time.process_time() - c0
    with tempfile.TemporaryDirectory() as d:
        import contextlib
        import io

        c0 = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            res = ex.main(a.steps, out=d)
        tracked_cpu = time.process_time() - c0
    n = len({r["step"] for r in res["rows"]})
    print(f"digits example, {a.steps} steps, {torch.get_num_threads()} torch thread(s) (torch default), "
          f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"training without tracker {plain:.1f} s ({plain_cpu:.1f} CPU s); with tracker {res['seconds']:.1f} s "
          f"({tracked_cpu:.1f} CPU s, {n} measurements incl. the final one)")
    print(f"tracker's own account: {100 * res['overhead']:.1f}% of training time; wall-clock ratio - 1: "
          f"{100 * (res['seconds'] / plain - 1):.1f}%; CPU ratio - 1: {100 * (tracked_cpu / plain_cpu - 1):.1f}%")


if __name__ == "__main__":
    main()
