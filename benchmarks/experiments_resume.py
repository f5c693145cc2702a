"""Kill-and-resume figures: kill -9 the sweep driver mid-sweep, then rerun; kill -9 one pool worker
mid-sweep and let the driver carry on. Prints finished files and rows before and after, and checks
that no configuration appears twice.

    PYTHONPATH=src python benchmarks/experiments_resume.py [--tasks 40] [--sleep 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relulab.experiments import store


def cli(*args):
    return subprocess.Popen([sys.executable, "-m", "relulab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().split()[3]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def rows(folder):
    t = store.read_table(folder)
    if t.num_rows == 0:
        return 0, 0
    idx = t.column("index").to_pylist()
    return t.num_rows, len(idx) - len(set(idx))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--sleep", type=float, default=0.2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    spec = tmp / "spec.toml"
    spec.write_text(f'experiment = "calibration"\n[parameters]\nindex = {list(range(args.tasks))}\n'
                    f'sleep = [{args.sleep}]\n')
    # 1. the driver
    out = tmp / "driver"
    t, c0 = time.perf_counter(), cpu()
    p = cli("sweep", str(spec), "--out", str(out), "--workers", "2")
    while len(store.finished(out)) < args.tasks // 4 and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    time.sleep(1.0)
    n0, dup0 = rows(out)
    q = cli("sweep", str(spec), "--out", str(out), "--workers", "2", "--json")
    doc = json.loads(q.communicate()[0])
    n1, dup1 = rows(out)
    print(f"kill -9 driver: {n0} rows ({dup0} duplicated) on disk after the kill; rerun skipped {doc['skipped']}, "
          f"ran {doc['ran']}; {n1} rows after, {dup1} duplicated, expected {args.tasks} "
          f"[{time.perf_counter() - t:.1f} s wall, {cpu() - c0:.1f} CPU s, {load()}]")
    # 2. a worker
    out = tmp / "worker"
    t, c0 = time.perf_counter(), cpu()
    p = cli("sweep", str(spec), "--out", str(out), "--workers", "2", "--json")
    while len(store.finished(out)) < args.tasks // 4 and p.poll() is None:
        time.sleep(0.02)
    kids = [c for c in children(p.pid)]
    victim = None
    for c in kids:  # a pool worker (the resource tracker and manager threads are not children)
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_bytes()
        except OSError:
            continue
        if b"relulab" in cmd or b"python" in cmd:
            victim = c
            break
    n_before = len(store.finished(out))
    if victim:
        os.kill(victim, signal.SIGKILL)
    doc = json.loads(p.communicate()[0])
    n1, dup1 = rows(out)
    print(f"kill -9 worker {victim} after {n_before} tasks: sweep finished with {doc['ran']} run, {doc['failed']} "
          f"failed; {n1} rows, {dup1} duplicated, expected {args.tasks} "
          f"[{time.perf_counter() - t:.1f} s wall, {cpu() - c0:.1f} CPU s, {load()}]")


if __name__ == "__main__":
    main()
