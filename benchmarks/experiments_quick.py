"""Every registry entry's ``--quick`` run as one table: entry, seconds, the paper's claim beside our
result, and whether they agree.

Each entry runs in a fresh ``relulab reproduce NAME --quick --json`` process, so the wall time is
what a user waits for (interpreter and imports included); CPU seconds are the process's user + system
time (steadier than wall time on a shared machine), and the load average is printed beside them.
One table row per comparison the entry makes (quantity: paper's claim | this run); "agree?" is the
entry's verdict: yes (it says it agrees), no (it says it does not), partly (it qualifies its
agreement), or "not judged" (the entry states no verdict, e.g. a finite-size run that cannot decide
an asymptotic claim). Progress goes to stderr, the Markdown table to stdout.

    PYTHONPATH=$PWD/src python benchmarks/experiments_quick.py [NAME ...]

The full versions: benchmarks/experiments_full.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from relulab.experiments import registry


def agree(verdict) -> str:
    if not verdict:
        return "not judged"
    v = verdict.lower()
    if v.startswith("agrees for") or v.startswith("finite-size"):
        return f"partly ({verdict})"
    if v.startswith("agrees") or v.startswith("holds"):
        return "yes" if v in ("agrees", "holds") else f"yes ({verdict})"
    if v.startswith("does not") or v.startswith("disagrees"):
        return f"no ({verdict})"
    return verdict


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_lines(entries, grid: str) -> list[str]:
    """Markdown rows for ``(name, timing text, reproduction document or None, error or None)``: one row
    per comparison the entry makes, the entry's name, timing and verdict on its first row."""
    lines = [f"| entry | {grid} s: wall / CPU (load) | paper's claim | our result | agree? |",
             "|---|---|---|---|---|"]
    for name, timing, doc, error in entries:
        if doc is None:
            lines.append(f"| {name} | {timing} | - | FAILED: {cell(error)} | - |")
            continue
        comp = doc["comparison"] or [{"quantity": "-", "paper": doc["claim"], "this_run": "-"}]
        for i, c in enumerate(comp):
            first = i == 0
            result = cell(c["this_run"])
            if first and doc["failures"]:
                result += f" ({len(doc['failures'])} of {doc['tasks']} tasks failed)"
            lines.append(f"| {name if first else ''} | {timing if first else ''} | {cell(c['quantity'])}: "
                         f"{cell(c['paper'])} | {result} | {cell(agree(doc['verdict'])) if first else ''} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", help="entries (default: all)")
    args = ap.parse_args()
    names = args.names or registry.names()
    entries, failed, total_wall, total_cpu = [], [], 0.0, 0.0
    for name in names:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "relulab", "reproduce", name, "--json", "--quick"],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        load = os.getloadavg()[0]
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        timing = f"{wall:.1f} / {cpu:.1f} ({load:.1f})"
        if p.returncode != 0 and not p.stdout.strip():
            err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
            entries.append((name, timing, None, err))
            failed.append(name)
            print(f"{name}: FAILED ({err})", file=sys.stderr, flush=True)
            continue
        doc = json.loads(p.stdout)
        if doc["failures"]:
            failed.append(name)
        entries.append((name, timing, doc, None))
        print(f"{name}: {doc['tasks']} tasks, {timing}, verdict {doc['verdict']!r}", file=sys.stderr, flush=True)
    print("\n".join(table_lines(entries, "quick")))
    print(f"\n{len(names)} entries, quick grids: {total_wall:.0f} s wall, {total_cpu:.0f} CPU s in all; "
          f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{len(failed)} with failures{': ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
