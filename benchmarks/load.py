"""``--load N`` of the benchmarks: N CPU-bound processes beside the measured code, for its whole
duration, stopped at the end. The engines are meant to be fast with a user's default settings on a
machine that also runs other work; this is how the benchmarks measure it."""

from __future__ import annotations

import contextlib
import multiprocessing as mp


def _hog() -> None:
    x = 0
    while True:  # pure Python arithmetic: one busy core, no memory traffic to speak of
        x = (x * 1103515245 + 12345) % 2147483648


@contextlib.contextmanager
def cpu_load(n: int):
    """Run ``n`` busy processes while the block runs (``n = 0``: nothing)."""
    if n < 0:
        raise SystemExit(f"--load must be >= 0, got {n}")
    procs = [mp.get_context("spawn").Process(target=_hog, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


def add_run_arguments(parser) -> None:
    """``--threads`` and ``--load``, the same in every benchmark."""
    parser.add_argument("--threads", type=int, default=None,
                        help="pin torch to this many threads (default: torch's default, as a user gets)")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="run N CPU-bound processes during the benchmark (default 0: idle)")


def apply_threads(args) -> str:
    """Pin torch's threads if ``--threads`` asks; the line describing the run's setting."""
    import os

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return (f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) "
            f"({'pinned' if args.threads else 'torch default'}), {args.load} load processes, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
