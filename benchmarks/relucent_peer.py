"""Peer side of the full-space region-count benchmark: relucent (https://pypi.org/project/relucent/).

Runs in the peers' environment, not relulab's (``make peers`` builds it at ``.peers-venv``)::

    make peers
    .peers-venv/bin/python benchmarks/relucent_peer.py [OUT_DIR] [TIME_LIMIT_SECONDS]

relucent solves its LPs with Gurobi (``gurobipy`` from PyPI, a dependency of relucent, whose
built-in size-limited license is enough for these nets).

relucent is run as its users run it: ``relucent.Complex(model).bfs()`` with its defaults
(breadth-first search from the origin's region across the facets of each region, a FIFO queue,
one LP per facet, worker processes on every core, and at the end its own completeness check
``certify_complex``, ``verify=True``); only its progress output is silenced (``verbose=0``).

Networks are ``relucent.set_seeds(seed); relucent.mlp(widths, add_last_relu=True)``: NumPy
float64 weights (``W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, then the bias, layer by layer,
from the global NumPy RNG), copied here into a float64 ``torch.nn.Sequential``
``fc0, relu0, fc1, relu1, ..., fc{L-1}, relu{L-1}``. With ``add_last_relu=True`` the
output layer is followed by a ReLU, so its units are hyperplanes of the arrangement too.
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

import relucent
import torch
from relucent.model.model import LinearLayer
from safetensors.torch import save_file


def build(widths, seed, add_last_relu=True):
    """The float64 torch model with the weights of ``relucent.mlp(widths)`` after ``set_seeds(seed)``."""
    relucent.set_seeds(seed)
    net = relucent.mlp(widths, add_last_relu=add_last_relu)
    model = relucent.torch_mlp(widths, add_last_relu=add_last_relu)  # same layer names; weights replaced
    with torch.no_grad():
        for name, layer in net.layers.items():
            if isinstance(layer, LinearLayer):
                getattr(model, name).weight.copy_(torch.from_numpy(layer.weight))
                getattr(model, name).bias.copy_(torch.from_numpy(layer.bias.reshape(-1)))
    return model


def count_regions(model, time_limit=None):
    """relucent's ``Complex(model).bfs()`` (BFS and completeness check); return
    ``(count, seconds, complete)``.

    ``time_limit`` (seconds): ``bfs`` cannot be interrupted, so it runs in a thread; when the limit
    passes first, the number of regions it has found by then is returned (a lower bound, every one of
    them a region) with ``complete=False``, and the caller must end the process (its worker processes
    keep running otherwise): :func:`finish` does.
    """
    cx = relucent.Complex(model)
    t0 = time.perf_counter()
    if time_limit is None:
        cx.bfs(verbose=0)
        return len(cx), time.perf_counter() - t0, True
    errors = []

    def search():
        try:
            cx.bfs(verbose=0)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)

    th = threading.Thread(target=search, daemon=True)
    th.start()
    th.join(time_limit)
    if errors:
        raise errors[0]
    return len(cx), time.perf_counter() - t0, not th.is_alive()


def finish(code: int = 0) -> None:
    """End the process now, also when a time-limited search is still running in its thread."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(out_dir="/tmp/relucent_models", time_limit=None):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for widths in ([4, 10, 10, 2], [4, 10, 10, 10, 2]):
        for seed in (0, 1, 2):
            model = build(widths, seed)
            stem = f"mlp_{'-'.join(map(str, widths))}_seed{seed}"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / f"{stem}.safetensors")
            meta = {
                "widths": widths,
                "seed": seed,
                "builder": "relucent.set_seeds(seed); relucent.mlp(widths, add_last_relu=True)",
                "relucent": relucent.__version__,
                "dtype": "float64",
                "add_last_relu": True,
                "layers": [[name, type(m).__name__] for name, m in model.named_children()],
                "weights": f"{stem}.safetensors",
                "weight_layout": "fcI.weight is (out, in): y = x @ W.T + b",
            }
            (out / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
            count, secs, complete = count_regions(model, time_limit)
            row = {
                "widths": widths,
                "seed": seed,
                "regions": count,
                "complete": complete,
                "seconds": round(secs, 3),
                "regions_per_second": round(count / secs, 1),
            }
            (out / f"{stem}.json").write_text(json.dumps({**meta, **row}, indent=2) + "\n")
            results.append(row)
            print(json.dumps(row), flush=True)
            if not complete:  # the unfinished search still runs in its thread: nothing more can be timed
                finish()
    return results


if __name__ == "__main__":
    # usage: relucent_peer.py [OUT_DIR] [TIME_LIMIT_SECONDS per network; partial counts]
    main(*sys.argv[1:2], *[float(a) for a in sys.argv[2:3]])
    finish()
