"""Benchmark of ``relulab.landscape`` teacher-student critical points (teacher V = I_d, k = d, a = b = 1).

    .venv/bin/python benchmarks/landscape_teacher_student.py                 # polish timings + families d = 6..10
    .venv/bin/python benchmarks/landscape_teacher_student.py --starts 100 --dims 6 8 --json

Part 1, polishing: for d = k = 10 and 20, critical points are found by ``find_critical_point`` from
seeds 0, 1, ... (the first global and the first spurious minimum reached, at most ``--max-seeds``
seeds, with its isotropy group); then ``polish_critical_point`` (Levenberg-Marquardt with the exact Hessian) is timed from
W* + r E, E with i.i.d. N(0, 1 / d) entries, r = 1e-2, 1e-4, 1e-6 (``--repeats`` draws each; the
median wall time is reported with the Newton iterations and the final gradient norm, target 1e-12).
Torch's default threads (what a user gets).

Part 2, families: ``find_critical_points`` with ``--starts`` random starts (seed 0, N(0, 1/d)
entries) for each d in ``--dims``, over ``--workers`` processes (default: every core), target
"minima" (saddles reached are escaped). Printed per family: loss, isotropy group (description and
order, inside S_k x S_d), smallest and largest Hessian eigenvalue, number of negative eigenvalues,
and how many starts reached it; and the wall time per d.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch


def polish_timings(d, repeats, max_seeds):
    from relulab.landscape import TeacherStudent, find_critical_point, isotropy_group, polish_critical_point

    problem = TeacherStudent.identity(d)
    targets = {}
    for seed in range(max_seeds):
        cp = find_critical_point(problem, seed=seed)
        if cp.converged and cp.kind in ("global minimum", "spurious minimum") and cp.kind not in targets:
            targets[cp.kind] = (seed, cp)
        if len(targets) == 2:
            break
    rows = []
    g = torch.Generator().manual_seed(0)
    for kind, (seed, cp) in sorted(targets.items()):
        iso = isotropy_group(cp.W)
        for r in (1e-2, 1e-4, 1e-6):
            walls, iters, gns, dists = [], [], [], []
            for _ in range(repeats):
                W0 = cp.W + r * torch.randn(cp.W.shape, generator=g, dtype=cp.W.dtype) / d ** 0.5
                w = time.perf_counter()
                res = polish_critical_point(problem, W0)
                walls.append(time.perf_counter() - w)
                iters.append(res.newton_iterations)
                gns.append(res.grad_norm)
                dists.append(float((res.W - cp.W).abs().max()))
            rows.append(dict(d=d, kind=kind, seed=seed, loss=cp.loss, isotropy=iso.description, perturbation=r, median_s=statistics.median(walls),
                             iterations=max(iters), max_grad_norm=max(gns), max_dist_to_target=max(dists)))
    return rows


def families(d, starts, workers):
    from relulab.landscape import TeacherStudent, find_critical_points

    res = find_critical_points(TeacherStudent.identity(d), n_starts=starts, seed=0, workers=workers)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[6, 7, 8, 9, 10], help="d = k for the family search")
    ap.add_argument("--starts", type=int, default=200, help="random starts per d")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    ap.add_argument("--polish-dims", type=int, nargs="*", default=[10, 20])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-seeds", type=int, default=8)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    args = ap.parse_args(argv)

    out = dict(polish=[], families=[])
    t_all = time.perf_counter()
    for d in args.polish_dims:
        out["polish"].extend(polish_timings(d, args.repeats, args.max_seeds))
    for d in args.dims:
        w = time.perf_counter()
        res = families(d, args.starts, args.workers)
        entry = res.to_dict(summary=True)
        entry["wall_s"] = time.perf_counter() - w
        out["families"].append(entry)
        if not args.json:
            print(f"\n== d = k = {d}: {args.starts} starts, {res.workers} workers, {entry['wall_s']:.1f} s ==")
            print(res.table())
            sys.stdout.flush()
    out["total_s"] = time.perf_counter() - t_all
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print("\n== polishing to |grad| <= 1e-12 (median of repeats, threads chosen by the engine) ==")
    print(f"{'d':>3} {'target':<17} {'isotropy':<18} {'loss':>12} {'perturb':>8} {'median s':>9} {'iters':>6} {'|grad|':>10} {'dist':>9}")
    for r in out["polish"]:
        loss = 0.0 if abs(r["loss"]) < 5e-11 else r["loss"]
        print(f"{r['d']:>3} {r['kind']:<17} {r['isotropy']:<18.18} {loss:>12.9f} {r['perturbation']:>8.0e} {r['median_s']:>9.4f} "
              f"{r['iterations']:>6} {r['max_grad_norm']:>10.2e} {r['max_dist_to_target']:>9.1e}")
    print(f"\ntotal {out['total_s']:.1f} s")


if __name__ == "__main__":
    main()
