"""Track local complexity through training from any PyTorch loop.

::

    tracker = Tracker((784,), train=(x_tr, y_tr), test=(x_te, y_te), sigma=0.5, radius=0.3)
    for step in range(steps):
        ...optimizer step...
        tracker(step, model)          # measures when the schedule says so, else returns at once
    tracker.to_csv("lc.csv"); tracker.plot()

At each measured step the model is converted to a :class:`~relulab.PLNet` (float64) and, for each
split ("train", "test", "random": points drawn uniformly from the data's bounding box), the tracker
records the smoothed local complexity with its standard error, the grokking proxy, optionally exact
local region counts (a square in a random 2-D slice), local rank, ``E|grad f|`` (total variation),
loss and accuracy
(when labels are given) and optionally accuracy under an l_inf PGD attack. The table is tidy: one
row per (step, split), one column per measure.

Schedule: ``every=k`` measures at multiples of k; the default is log-spaced steps (0, 1, 2, 5, 10,
20, 50, ...; four per decade after 100). ``budget`` (default 0.2) caps the measuring time at that
fraction of the time spent outside the tracker (training): a scheduled measurement is skipped unless
the time measured so far plus the cost of the last measurement fits in ``budget`` times the training
time (a skipped measurement is taken at the first later step the budget allows), so after the first
measurement (step 0, before any training) the overhead stays within ``budget`` whatever the cadence.
"""

from __future__ import annotations

import math
import time

import torch

from relulab.core.errors import InvalidInputError

__all__ = ["Tracker", "log_schedule"]

COLUMNS = ("step", "split", "n", "lc", "lc_stderr", "proxy", "local_regions", "rank", "effective_rank",
           "total_variation", "loss", "accuracy", "pgd_accuracy", "seconds")


def log_schedule(step: int) -> bool:
    """Log-spaced steps: 0-2, then 1, 2, 5 per decade up to 100, then 1, 2, 3, 5 per decade."""
    if step < 3:
        return True
    e = 10 ** int(math.floor(math.log10(step)))
    lead = step / e
    marks = (1, 2, 5) if step < 100 else (1, 2, 3, 5)
    return lead in marks


def _split_arg(value, name):
    if value is None:
        return None, None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        x, y = value
        return torch.as_tensor(x), (None if y is None else torch.as_tensor(y))
    return torch.as_tensor(value), None


class Tracker:
    """Records complexity measures of a model every few steps (see the module docstring).

    ``input_shape``: the model's per-sample input shape. ``train``/``test``: inputs or ``(inputs,
    labels)``; ``random``: inputs, or a number of uniform points in the box of the train inputs
    (default as many as ``n_points``). ``n_points`` caps the points used per split. ``sigma``: bias
    noise of the smoothed LC; ``radius``: of the proxy's frame (``n_vertices``) and of the local
    counts; ``local_counts``: also count exact regions in a square of a random 2-D slice (costly);
    ``rank``: local rank on the first ``rank_points`` points of each split (an SVD per point).
    ``loss_fn`` (default cross-entropy) for losses; ``pgd``: ``{"eps": .., "steps": .., "alpha": ..}``
    for robust accuracy on the test split. ``every``: int or None (log schedule); ``budget``: fraction.
    """

    def __init__(self, input_shape, *, train=None, test=None, random=None, n_points: int = 128,
                 sigma: float = 0.1, radius: float = 0.1, n_vertices: int = 20, local_counts: bool = False,
                 rank: bool = True, rank_points: int = 32, loss_fn=None, pgd: dict | None = None, every: int | None = None,
                 budget: float | None = 0.2, seed: int = 0):
        from relulab.complexity.lc import _sigma

        self.input_shape = tuple(int(s) for s in (input_shape if isinstance(input_shape, (tuple, list))
                                                  else (input_shape,)))
        self.sigma = _sigma(sigma)
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0 or not math.isfinite(radius):
            raise InvalidInputError(f"radius must be a positive finite number, got {radius!r}")
        self.radius = float(radius)
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise InvalidInputError(f"every must be a positive integer or None (log-spaced steps), got {every!r}")
        if budget is not None and not (isinstance(budget, (int, float)) and 0 < budget):
            raise InvalidInputError(f"budget must be a positive fraction or None, got {budget!r}")
        self.every, self.budget = every, budget
        self.n_vertices, self.local_counts, self.rank = int(n_vertices), bool(local_counts), bool(rank)
        self.rank_points = int(rank_points)
        self.loss_fn = loss_fn or torch.nn.functional.cross_entropy
        self.pgd = dict(pgd) if pgd else None
        gen = torch.Generator().manual_seed(seed)
        self.seed = seed
        self.splits = {}
        for name, val in (("train", train), ("test", test)):
            x, y = _split_arg(val, name)
            if x is not None:
                if not bool(torch.isfinite(x.double()).all()):
                    raise InvalidInputError(f"{name} inputs have non-finite entries")
                idx = torch.randperm(x.shape[0], generator=gen)[:n_points]
                self.splits[name] = (x[idx], None if y is None else y[idx])
        if isinstance(random, int) or (random is None and "train" in self.splits):
            base = self.splits["train"][0].double().flatten(1)
            k = n_points if random is None else int(random)
            lo, hi = base.min(0).values, base.max(0).values
            xr = lo + (hi - lo) * torch.rand(k, base.shape[1], generator=gen, dtype=torch.float64)
            self.splits["random"] = (xr.reshape(k, *self.input_shape).to(self.splits["train"][0].dtype), None)
        elif random is not None:
            self.splits["random"] = (torch.as_tensor(random), None)
        if not self.splits:
            raise InvalidInputError("give at least one of train=, test=, random= (points to measure at)")
        self.rows: list[dict] = []
        self._measure_s = 0.0
        self._train_s = 0.0
        self._last_cost = 0.0
        self._pending = False
        self._last = None

    # ------------------------------------------------------------------ schedule
    def due(self, step: int) -> bool:
        """Whether to measure at ``step``: scheduled (or a scheduled step was skipped for the budget
        since the last measurement) and within budget."""
        scheduled = (step % self.every == 0) if self.every else log_schedule(step)
        if not (scheduled or self._pending):
            return False
        # anticipate the next measurement's cost (that of the last one), so the total stays in budget
        if self.budget is None or self._measure_s + self._last_cost <= self.budget * self._train_s:
            return True
        self._pending = True  # measure as soon as the budget allows, not at the next scheduled step
        return False

    @property
    def overhead(self) -> float:
        """Measuring time over training time (time spent outside the tracker) so far."""
        return self._measure_s / self._train_s if self._train_s > 0 else 0.0

    def __call__(self, step: int, model, force: bool = False) -> bool:
        """Measure ``model`` at ``step`` if the schedule (or ``force``) says so; returns whether it did."""
        now = time.perf_counter()
        if self._last is not None:
            self._train_s += now - self._last
        if not (force or self.due(int(step))):
            self._last = time.perf_counter()
            return False
        self.measure(int(step), model)
        end = time.perf_counter()
        self._last_cost = end - now
        self._measure_s += end - now
        self._pending = False
        self._last = end
        return True

    step = __call__

    # ------------------------------------------------------------------ measuring
    def measure(self, step: int, model) -> list[dict]:
        from relulab import PLNet
        from relulab.complexity.counts import grokking_proxy, local_counts
        from relulab.complexity.lc import smoothed_from_units
        from relulab.complexity.rank import rank_from_features
        from relulab.complexity.units import unit_gradients

        was_training = model.training
        model.eval()
        try:
            param = next(model.parameters(), None)
            dev = None if param is None else param.device
            net = PLNet.from_torch(model, self.input_shape, device=dev)
            out = []
            for name, (x, y) in self.splits.items():
                t0 = time.perf_counter()
                xd = x.to(device=net.device, dtype=torch.float64)
                ug = unit_gradients(net, xd, features=self.rank, outputs=True)
                lc = smoothed_from_units(net, ug, self.sigma, f"{x.shape[0]} {name} points", t0)
                row = {"step": step, "split": name, "n": int(x.shape[0]), "lc": lc.value, "lc_stderr": lc.stderr,
                       "total_variation": float(ug.output_grad.flatten(1).norm(dim=1).mean())}
                nv = min(self.n_vertices, 2 * net.input_dim)
                nv -= nv % 2
                row["proxy"] = grokking_proxy(net, xd, self.radius, n_vertices=max(2, nv), seed=self.seed).value
                if self.local_counts and net.input_dim >= 2:
                    row["local_regions"] = local_counts(net, xd[:32], self.radius, seed=self.seed).mean
                if self.rank:
                    lr = rank_from_features(net, ug.features[:self.rank_points], None, t0)
                    row["rank"], row["effective_rank"] = lr.mean_rank, lr.mean_effective_rank
                xm = x if param is None else x.to(device=param.device, dtype=param.dtype)
                with torch.no_grad():
                    logits = model(xm)
                if y is not None:
                    y = y.to(logits.device)
                    row["loss"] = float(self.loss_fn(logits, y))
                    row["accuracy"] = float((logits.argmax(1) == y).double().mean())
                    if self.pgd and name == "test":
                        row["pgd_accuracy"] = _pgd_accuracy(model, xm, y, self.loss_fn, **self.pgd)
                row["seconds"] = time.perf_counter() - t0
                out.append(row)
            self.rows.extend(out)
            return out
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------ output
    def table(self) -> list[dict]:
        """The rows, every column present (None where not measured)."""
        return [{c: r.get(c) for c in COLUMNS} for r in self.rows]

    def to_csv(self, path) -> str:
        """Write the table as CSV (atomically); returns the path."""
        import csv

        from relulab.core.files import atomic_write, check_output_path

        p = check_output_path(path, "CSV file", ".csv")
        with atomic_write(p, "w") as f:
            w = csv.DictWriter(f, fieldnames=list(COLUMNS))
            w.writeheader()
            for r in self.table():
                w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        return str(p)

    def to_parquet(self, path) -> str:
        """Write the table as Parquet (needs pyarrow: ``pip install relulab[experiments]`` or pyarrow)."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InvalidInputError("Parquet output needs pyarrow (pip install pyarrow); to_csv works without it") \
                from None
        from relulab.core.files import atomic_save, check_output_path

        p = check_output_path(path, "Parquet file", ".parquet")
        rows = self.table()
        tab = pa.table({c: [r[c] for r in rows] for c in COLUMNS})
        atomic_save(p, lambda tmp: pq.write_table(tab, tmp))
        return str(p)

    def save(self, path) -> str:
        """Parquet when pyarrow is importable and the name ends in .parquet, else CSV."""
        if str(path).endswith(".parquet"):
            return self.to_parquet(path)
        return self.to_csv(path)

    def plot(self, ax=None, measure: str = "lc"):
        """``measure`` per split over steps (log axis; step 0 drawn at 1), accuracy on a twin axis."""
        import matplotlib.pyplot as plt

        if measure not in COLUMNS:
            raise InvalidInputError(f"measure must be one of {', '.join(COLUMNS)}, got {measure!r}")
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        colors = {"train": "tab:purple", "test": "tab:orange", "random": "tab:blue"}
        acc_ax = None
        for name in self.splits:
            rows = [r for r in self.rows if r["split"] == name and r.get(measure) is not None]
            if not rows:
                continue
            s = [max(r["step"], 1) for r in rows]
            ax.plot(s, [r[measure] for r in rows], color=colors.get(name), label=f"{measure} {name}")
            if measure == "lc":
                lo = [r["lc"] - r["lc_stderr"] for r in rows]
                hi = [r["lc"] + r["lc_stderr"] for r in rows]
                ax.fill_between(s, lo, hi, color=colors.get(name), alpha=0.2)
            if any(r.get("accuracy") is not None for r in rows):
                acc_ax = acc_ax or ax.twinx()
                acc_ax.plot(s, [r.get("accuracy") for r in rows], ls="--", color=colors.get(name),
                            label=f"accuracy {name}")
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(measure)
        ax.legend(loc="upper left", fontsize=8)
        if acc_ax is not None:
            acc_ax.set_ylabel("accuracy")
            acc_ax.legend(loc="lower right", fontsize=8)
        return ax


def _pgd_accuracy(model, x, y, loss_fn, eps: float = 0.1, steps: int = 10, alpha: float | None = None) -> float:
    """Accuracy under an l_inf PGD attack (Madry et al.) of radius ``eps``, ``steps`` signed-gradient steps."""
    alpha = eps / 4 if alpha is None else alpha
    xa = x.detach().clone()
    for _ in range(int(steps)):
        xa.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model(xa), y)
            (g,) = torch.autograd.grad(loss, xa)
        xa = (x + (xa.detach() + alpha * g.sign() - x).clamp(-eps, eps)).detach()
    with torch.no_grad():
        return float((model(xa).argmax(1) == y).double().mean())
