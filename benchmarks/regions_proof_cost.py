"""What proving ``full_space``'s vertex-engine results costs: CPU seconds of the default call (all of
R^d, ``method="auto"``) on the same networks in two checkouts, side by side in one invocation.

    python benchmarks/regions_proof_cost.py --before /path/to/other/checkout   # this checkout = after

Each network runs in a fresh subprocess per checkout (its ``src`` first on ``PYTHONPATH``), with the
threads torch picks (the defaults a user gets), ``--repeats`` times (median CPU seconds). Reported:
count, linear count, certified and the certificate's reason (after), CPU seconds before and after,
their ratio, and the after checkout's CPU seconds without the proof (``certify=False``): the last
column is the proof's overhead, proven / unproven, in the same checkout. Networks
(``widths:seed``, uniform weights in +-1/sqrt(fan-in) as in benchmarks/regions_full_space.py): the
d <= 5 networks of that benchmark's table (d = 5 now runs the facet engine by default) and the reliability issue's
2-16-16-1, a 2-64-64-1 and a 3-8-8-1 with four dead output weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NETS = ["2,16,16,1:0", "3,8,8,1:1:dead", "2,64,64,1:0", "4,10,10,2:0", "4,10,10,2:1", "4,10,10,2:2",
        "4,10,10,10,2:0", "5,10,10,2:11"]

CODE = r"""
import json, sys, time, torch
import relulab  # from PYTHONPATH (the checkout measured), before the builder's module puts its own first
from relulab.regions import full_space
sys.path.insert(0, sys.argv[2])  # this checkout's benchmarks: the network builder of the table
from regions_full_space import random_mlp
spec = sys.argv[1]
parts = spec.split(":")
widths = [int(w) for w in parts[0].split(",")]
m = random_mlp(widths, int(parts[1]), last_relu=False)
if len(parts) > 2:
    with torch.no_grad():
        m[-1].weight[0, :4] = 0.0
net = relulab.PLNet.from_torch(m, (widths[0],))
t = time.process_time()
r = full_space(net, certify=False if sys.argv[3] == "off" else None)
cpu = time.process_time() - t
print(json.dumps({"count": r.count, "linear": r.linear_count, "certified": bool(r.certified),
                  "why": str(r.stats.get("certificate", "")), "cpu": cpu, "method": r.stats.get("method"),
                  "linear_certified": getattr(r, "linear_certified", None), "src": relulab.__file__}))
"""


def run(src: Path, spec: str, certify: str = "default") -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    p = subprocess.run([sys.executable, "-c", CODE, spec, str(ROOT / "benchmarks"), certify], capture_output=True,
                       text=True, env=env)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="checkout to compare with (its src is used)")
    ap.add_argument("--after", type=Path, default=ROOT, help="default: this checkout")
    ap.add_argument("--nets", nargs="*", default=NETS)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    print(f"{'network':<18}{'count':>7}{'linear':>7}  {'cert before':>11} {'cert after':>10} {'lin. cert':>9} "
          f"{'CPU s before':>13}{'CPU s after':>12}{'ratio':>7}{'unproven':>9}{'overhead':>9}  certificate (after)")
    for spec in args.nets:
        b = [run(args.before / "src", spec) for _ in range(args.repeats)]
        a = [run(args.after / "src", spec) for _ in range(args.repeats)]
        o = [run(args.after / "src", spec, "off") for _ in range(args.repeats)]
        if "error" in b[0] or "error" in a[0]:
            print(f"{spec:<18} error: {b[0].get('error', '')} | {a[0].get('error', '')}")
            continue
        cb, ca = statistics.median(x["cpu"] for x in b), statistics.median(x["cpu"] for x in a)
        co = statistics.median(x["cpu"] for x in o) if "error" not in o[0] else float("nan")
        print(f"{spec:<18}{a[0]['count']:>7}{'-' if a[0]['linear'] is None else a[0]['linear']:>7}  {str(b[0]['certified']):>11} "
              f"{str(a[0]['certified']):>10} {str(a[0].get('linear_certified')):>9} {cb:>13.2f}{ca:>12.2f}{ca / cb:>7.1f}"
              f"{co:>9.2f}{ca / co:>9.1f}  {a[0]['why'][:70]}", flush=True)
        assert Path(b[0]["src"]).resolve().is_relative_to((args.before / "src").resolve()), b[0]["src"]
        if a[0]["count"] != b[0]["count"]:
            print(f"  counts differ: before {b[0]['count']}, after {a[0]['count']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
