"""Every registry entry's ``--quick`` run: its time, and the paper's claim beside the result.

Each entry runs in a fresh ``relulab reproduce NAME --quick --json`` process, so the wall time is
what a user waits for (interpreter and imports included); ``run`` is the entry's own time (tasks
only). Prints one block per entry: time, the comparison rows (quantity | paper | this run) and the
verdict.

    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 python benchmarks/experiments_quick.py [NAME ...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from relulab.experiments import registry


def main():
    names = sys.argv[1:] or registry.names()
    for name in names:
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "relulab", "reproduce", name, "--quick", "--json"],
                           capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        wall = time.perf_counter() - t
        if p.returncode != 0 and not p.stdout.strip():
            print(f"{name}: FAILED ({p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode})")
            continue
        doc = json.loads(p.stdout)
        print(f"{name}: --quick {doc['tasks']} tasks, wall {wall:.1f} s (run {doc['seconds']:.1f} s), "
              f"{len(doc['failures'])} failed", flush=True)
        for c in doc["comparison"]:
            print(f"    {c['quantity']} | paper: {c['paper']} | this run: {c['this_run']}")
        print(f"    verdict: {doc['verdict']}", flush=True)


if __name__ == "__main__":
    main()
