"""Local complexity through a long training run on scikit-learn's 8x8 digits (nothing is downloaded).

A 64-200-200-200-10 ReLU MLP is trained with AdamW (weight decay 0.01, as in Humayun et al.'s MNIST
runs) on 300 digits for many steps; a :class:`relulab.complexity.Tracker` records, at log-spaced
steps, the smoothed local complexity near training points, test points and random points of the
data's box, with the grokking proxy, local rank and accuracies beside it. The curves go to
``grokking_digits.png`` and the table to ``grokking_digits.csv`` (and ``.parquet`` when pyarrow is
installed).

    python examples/grokking_digits.py --steps 20000
"""

import argparse
import os
import sys
import time

import torch
from torch import nn

try:
    from sklearn.datasets import load_digits
except ImportError:
    load_digits = None


def main(steps: int = 400, out: str = ".", seed: int = 0, track: bool = True) -> dict:
    from relulab.complexity import Tracker

    torch.manual_seed(seed)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32) / 16.0
    y = torch.tensor(y)
    perm = torch.randperm(X.shape[0])
    tr, te = perm[:300], perm[300:]
    model = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 200),
                          nn.ReLU(), nn.Linear(200, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    tracker = Tracker((64,), train=(X[tr], y[tr]), test=(X[te], y[te]), n_points=64, sigma=0.05, radius=0.1,
                      n_vertices=20)
    t0 = time.perf_counter()
    for step in range(steps):
        if track:
            tracker(step, model)
        idx = torch.randint(0, tr.numel(), (100,))
        loss = nn.functional.cross_entropy(model(X[tr][idx]), y[tr][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if not track:
        return {"seconds": time.perf_counter() - t0}
    if tracker.rows[-1]["step"] != steps:  # the final state, whatever the schedule skipped
        tracker(steps, model, force=True)
    total = time.perf_counter() - t0
    csv = tracker.to_csv(os.path.join(out, "grokking_digits.csv"))
    try:
        tracker.to_parquet(os.path.join(out, "grokking_digits.parquet"))
    except Exception:  # noqa: BLE001 - Parquet is optional (pyarrow)
        pass
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from relulab.core.files import atomic_save

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    tracker.plot(axes[0], "lc")
    tracker.plot(axes[1], "proxy")
    fig.tight_layout()
    atomic_save(os.path.join(out, "grokking_digits.png"), lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    rows = tracker.table()
    print(f"{steps} steps in {total:.1f} s; tracker overhead {100 * tracker.overhead:.1f}% of training time; "
          f"{len(rows) // 3} measurements -> {csv}")
    print(f"{'step':>7} {'split':>7} {'LC':>10} {'+-':>8} {'proxy':>7} {'rank':>6} {'acc':>6}")
    for r in rows:
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        print(f"{r['step']:>7} {r['split']:>7} {r['lc']:>10.4g} {r['lc_stderr']:>8.2g} {r['proxy']:>7.2f} "
              f"{r['rank']:>6.2f} {acc:>6}")
    return {"overhead": tracker.overhead, "rows": rows, "seconds": total}


if __name__ == "__main__":
    if load_digits is None:
        print("grokking_digits needs scikit-learn for its data set: pip install 'relulab[examples]' "
              "(or pip install scikit-learn); skipping.")
        sys.exit(0)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--steps", type=int, default=400, help="training steps (default 400, a quick look; try 20000)")
    p.add_argument("--out", default=".", help="folder for the CSV and the figure (default: here)")
    p.add_argument("--seed", type=int, default=0)
    a, _ = p.parse_known_args()  # run from another program (a test runner), its options are not ours
    main(a.steps, a.out, a.seed)
