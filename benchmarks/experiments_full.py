"""Every registry entry's full version, one table: entry, wall and CPU seconds, the paper's claim
beside our result, and whether they agree; then one ``relulab report`` page over all of them.

Each entry runs as ``relulab reproduce NAME --out DIR/NAME --json`` in a fresh process (what a user
runs; torch picks its own threads). Its wall and CPU seconds (user + system of that process) and the
load average at its end are stored in ``DIR/NAME/timing.json``, so the table can be rebuilt, and one
entry rerun, without running the others again: an entry whose folder already holds a finished run is
reused unless named with ``--rerun``, and one that another run of this script is running is left to it
(so two runs can share the folder). Entries run longer than ``--timeout`` seconds are stopped and
reported as such. ``--skip-dynamics`` leaves out the training-dynamics entries (their module is
``relulab.experiments.entries_dynamics``), which take hours of CPU at full size. At the end
``relulab report DIR`` writes ``DIR/report.html``. Progress goes to stderr, the Markdown table to
stdout.

    PYTHONPATH=$PWD/src nice -n 10 python benchmarks/experiments_full.py --out full-run [--skip-dynamics] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from experiments_quick import table_lines  # noqa: E402

from relulab.experiments import registry  # noqa: E402

DYNAMICS_MODULE = "relulab.experiments.entries_dynamics"


def running_elsewhere(folder: Path) -> bool:
    """Whether another run of this script is running this entry now (two can share a folder)."""
    try:
        pid = int((folder / "running").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return pid != os.getpid()


def run_entry(name: str, folder: Path, timeout: float) -> dict:
    """Run one entry's full grid in a fresh process; returns (and stores) its timing."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "running").write_text(str(os.getpid()))
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(folder / "stdout.json", "w") as out, open(folder / "stderr.txt", "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "relulab", "reproduce", name, "--out", str(folder), "--json"],
                             stdout=out, stderr=err, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
            timed_out = True
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing = {"wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
              "load": os.getloadavg(), "returncode": rc, "timed_out": timed_out,
              "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    (folder / "timing.json").write_text(json.dumps(timing))
    (folder / "running").unlink()
    return timing


def load_entry(folder: Path):
    """(reproduction document or None, timing) of a finished entry folder; (None, None) if never run."""
    if not (folder / "timing.json").is_file():
        return None, None
    timing = json.loads((folder / "timing.json").read_text())
    doc = None
    if (folder / "reproduction.json").is_file() and not timing["timed_out"]:
        doc = json.loads((folder / "reproduction.json").read_text())
    return doc, timing


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="entries (default: all)")
    ap.add_argument("--out", default="full-run", help="results folder (one sub-folder per entry)")
    ap.add_argument("--skip-dynamics", action="store_true", help=f"leave out the entries of {DYNAMICS_MODULE}")
    ap.add_argument("--skip", nargs="*", default=[], metavar="NAME", help="entries to leave out")
    ap.add_argument("--rerun", action="store_true", help="run the named entries again even if finished")
    ap.add_argument("--timeout", type=float, default=1800.0, help="wall seconds per entry before it is stopped")
    ap.add_argument("--table-only", action="store_true", help="run nothing; rebuild the table and report")
    args = ap.parse_args()
    cat = registry.catalog()
    unknown = [n for n in args.names + args.skip if n not in cat]
    if unknown:
        ap.error(f"unknown entries: {', '.join(unknown)}")
    names = args.names or list(cat)
    names = [n for n in names if n not in args.skip
             and not (args.skip_dynamics and cat[n].module == DYNAMICS_MODULE)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        done = (out / name / "timing.json").is_file()
        if args.table_only or (done and not args.rerun) or running_elsewhere(out / name):
            continue
        print(f"{name}: {cat[name].full_tasks} tasks ...", file=sys.stderr, flush=True)
        tm = run_entry(name, out / name, args.timeout)
        print(f"{name}: {tm['wall']:.1f} s wall, {tm['cpu']:.1f} CPU s, load {tm['load'][0]:.1f}, "
              f"exit {tm['returncode']}{' (timed out)' if tm['timed_out'] else ''}", file=sys.stderr, flush=True)
    entries, failed, total_wall, total_cpu = [], [], 0.0, 0.0
    for name in names:
        doc, tm = load_entry(out / name)
        if tm is None:
            continue
        total_wall, total_cpu = total_wall + tm["wall"], total_cpu + tm["cpu"]
        timing = f"{tm['wall']:.1f} / {tm['cpu']:.1f} ({tm['load'][0]:.1f})"
        if doc is None:
            why = (f"stopped after {args.timeout:.0f} s" if tm["timed_out"] else
                   ((out / name / "stderr.txt").read_text().strip().splitlines() or [f"exit {tm['returncode']}"])[-1])
            entries.append((name, timing, None, why))
            failed.append(name)
        else:
            entries.append((name, timing, doc, None))
            if doc["failures"]:
                failed.append(name)
    print("\n".join(table_lines(entries, "full")))
    print(f"\n{len(entries)} entries, full grids: {total_wall:.0f} s wall, {total_cpu:.0f} CPU s in all; "
          f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{len(failed)} with failures{': ' + ', '.join(failed) if failed else ''}")
    p = subprocess.run([sys.executable, "-m", "relulab", "report", str(out)], capture_output=True, text=True)
    print((p.stdout or p.stderr).strip(), file=sys.stderr)
    return 1 if failed or p.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
