"""The ``relulab`` command.

Sub-commands are registered in :data:`COMMANDS`: each entry is a function ``add_<name>_parser(subparsers)``
that adds one sub-parser and sets its ``handler`` default to a function ``(args, ctx) -> Output``.
The handler returns the JSON document (printed as is with ``--json``) and what a person reads; it
reports long work through ``ctx.progress`` (a rich progress bar on a terminal, nothing otherwise).
Engines import lazily inside their handler so that ``relulab --version`` stays fast. Errors are
raised, never printed: :func:`main` turns every :class:`~relulab.RelulabError` (and a missing file or
a bad value) into one line ``relulab: error: ...`` on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

EXIT_ERROR = 1
EXIT_USAGE = 2


@dataclass
class Output:
    """What a sub-command produced: ``data`` for ``--json``, ``render`` (a rich renderable or text) for people."""

    data: dict
    render: object = None
    exit_code: int = 0


@dataclass
class Context:
    """Per-run services for handlers: the consoles and a progress reporter."""

    json: bool = False
    show_progress: bool = True
    _consoles: dict = field(default_factory=dict)

    @property
    def err(self):
        if "err" not in self._consoles:
            from rich.console import Console

            self._consoles["err"] = Console(stderr=True, highlight=False)
        return self._consoles["err"]

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Callable[[str, int, int], None]]:
        """Yield ``update(stage, done, total)``; draws a transient bar on an interactive stderr."""
        if not (self.show_progress and self.err.is_terminal):
            yield lambda stage, done, total: None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
                      TimeElapsedColumn(), console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=None, stage="")

            def update(stage: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, stage=stage)

            yield update


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # points like -2,0,1.5e-3 are values, not options
        import re

        self._negative_number_matcher = re.compile(r"^-(\d|\.\d)[\d.,eE+-]*$")

    def error(self, message: str):  # type: ignore[override]
        _fail(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


def _fail(message: str, code: int = EXIT_ERROR):
    text = " ".join(str(message).split()) or "unknown error"
    print(f"relulab: error: {text}", file=sys.stderr)
    sys.exit(code)


def json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def parse_point(text: str, arg: str, shape, net=None):
    """One input from the command line: comma-separated numbers (one number fills every coordinate) or a
    ``.npy`` file (read without pickle). Returns a tensor of the per-sample ``shape``, in ``net``'s dtype."""
    import numpy as np
    import torch

    from relulab.core.errors import InvalidInputError

    numel = 1
    for s in shape:
        numel *= int(s)
    if text.endswith(".npy"):
        try:
            arr = np.load(text, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"{arg}: {text} is not a readable .npy array ({e})") from None
        values = torch.as_tensor(np.asarray(arr, dtype=np.float64)).reshape(-1)
    else:
        try:
            values = torch.tensor([float(v) for v in text.split(",") if v.strip()], dtype=torch.float64)
        except ValueError:
            raise InvalidInputError(f"{arg}: expected comma-separated numbers or a .npy file, got {text!r}") from None
    if values.numel() == 1:
        values = values.expand(numel)
    if values.numel() != numel or not bool(torch.isfinite(values).all()):
        raise InvalidInputError(f"{arg}: expected {numel} finite numbers (input shape "
                                f"{'x'.join(map(str, shape))}), got {values.numel()}")
    kw = {} if net is None else {"dtype": net.dtype, "device": net.device}
    return values.reshape(tuple(shape)).to(**kw)


_common = json_flag


def save_figure(draw: Callable, path: str, figsize=(6, 6)) -> None:
    """``draw(ax)`` on a new figure saved to ``path`` (the format from its suffix); a bad path is one error line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from relulab.core.errors import InvalidInputError

    fig, ax = plt.subplots(figsize=figsize)
    try:
        draw(ax)
        fig.savefig(path, dpi=130, bbox_inches="tight")
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"--plot {path}: cannot write the figure ({e})") from None
    finally:
        plt.close(fig)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, --arch and --input-shape: how every sub-command that reads a model file names it."""
    p.add_argument("model", metavar="MODEL",
                   help="a torch.export program (.pt2), a safetensors file or a weights-only state dict")
    p.add_argument("--arch", metavar="SPEC", default=None,
                   help="architecture of a weights file, e.g. mlp:2-64-64-1:relu, mlp:2-16-1:leaky_relu:0.1, "
                        "mlp:4-8-2:maxout:3, cnn:1x8x8-c4k3-m2-10:relu (not needed if the file stores it)")
    p.add_argument("--input-shape", metavar="SHAPE", default=None,
                   help="per-sample input shape to check the model against, e.g. 2 or 1x28x28")


def load_model(args):
    """The :class:`relulab.core.io.ModelFile` named by :func:`add_model_arguments`'s options."""
    from relulab.core.io import open_model

    return open_model(args.model, arch=args.arch, input_shape=args.input_shape)


# ---------------------------------------------------------------------- relulab info
def add_info_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a model file: layers, units, parameters, activations, shapes",
                       description="Read a model file and describe the piecewise-linear network it holds.")
    add_model_arguments(p)
    _common(p)
    p.set_defaults(handler=run_info)


def run_info(args, ctx: Context) -> Output:
    mf = load_model(args)
    d = mf.describe()
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def shape(s) -> str:
        return "x".join(map(str, s))

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("file", d["file"])
    head.add_row("format", d["format"] + (f" ({d['arch']})" if d["arch"] else ""))
    head.add_row("input shape", shape(d["input_shape"]))
    head.add_row("output shape", shape(d["output_shape"]))
    head.add_row("parameters", f"{d['parameters']:,}")
    head.add_row("max units", f"{d['max_units']:,} in {d['max_layers']} layer(s)")
    head.add_row("activations", ", ".join(d["activations"]) or "none (affine)")
    head.add_row("residual", "yes" if d["residual"] else "no")
    layers = Table(title="layers", title_justify="left", show_edge=False)
    for col in ("#", "name", "kind", "in", "out", "units", "pieces", "inputs"):
        layers.add_column(col, justify="right" if col in ("#", "units", "pieces") else "left")
    for L in d["layers"]:
        layers.add_row(str(L["index"]), L["name"] or "-", L["kind"], shape(L["in_shape"]), shape(L["out_shape"]),
                       str(L.get("units", "")), str(L.get("pieces", "")), ",".join(map(str, L["inputs"])))
    return Output(d, Group(head, Text(""), layers))


# ---------------------------------------------------------------------- relulab demo
def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train a small ReLU network on a toy data set and write a report",
                       description="Train a 2-32-32-2 ReLU MLP on two spirals (a few seconds on a CPU) and write "
                                   "summary.json, PNG figures, model.safetensors and a self-contained report.html.")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="seed for data, initialisation and training (default 0)")
    p.add_argument("--quick", action="store_true", help="fewer points and steps, a coarser grid (for tests)")
    _common(p)
    p.set_defaults(handler=run_demo)


def run_demo(args, ctx: Context) -> Output:
    from relulab.report import run_demo as demo

    with ctx.progress("demo") as update:
        s = demo(args.out, seed=args.seed, quick=args.quick, progress=update)
    from rich.table import Table

    train = next((x["summary"] for x in s["sections"] if x["title"] == "Training"), {})
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("data", f"{s['data']['name']} ({s['data']['n']} points, seed {args.seed})")
    t.add_row("network", s["demo"]["arch"])
    if train:
        t.add_row("training", f"{train['steps']} Adam steps in {train['seconds']:.2f} s: loss "
                              f"{train['final_loss']:.3g}, accuracy {train['final_accuracy']:.3f} "
                              f"(fresh points {train['test_accuracy']:.3f})")
    t.add_row("report", os.path.join(args.out, "report.html"))
    t.add_row("files", ", ".join(s["files"]))
    t.add_row("time", f"{s['timings']['total_s']:.1f} s")
    return Output(s, t)


# ---------------------------------------------------------------------- the registry
# One function per sub-command, in the order `relulab --help` lists them. An engine's commands live in
# relulab/commands/<engine>.py (its add_parser uses add_model_arguments, load_model, json_flag and
# parse_point, and imports the engine inside its handler) and are registered here with _engine.
def _engine(module: str) -> Callable:
    def add(sub) -> None:
        import importlib

        importlib.import_module(f"relulab.commands.{module}").add_parser(sub)

    add.__name__ = f"add_{module}_parser"
    return add


COMMANDS: list[Callable] = [add_info_parser, add_demo_parser, _engine("regions"), _engine("kernels"), _engine("init"),
                             _engine("landscape"), _engine("hessian"), _engine("tropical"), _engine("count"),
                             _engine("complexity"), _engine("reproduce"), _engine("sweep"), _engine("report_dir")]


def build_parser() -> argparse.ArgumentParser:
    from relulab import __version__

    p = _Parser(prog="relulab",
                description="Exact geometry and loss landscapes of piecewise-linear networks.")
    p.add_argument("--version", action="version", version=f"relulab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return p


def _print(out: Output, ctx: Context) -> None:
    if ctx.json:
        from relulab.results import to_plain

        print(json.dumps(to_plain(out.data)))
        return
    if out.render is None:
        return
    if isinstance(out.render, str):
        print(out.render)
        return
    from rich.console import Console

    Console(highlight=False).print(out.render)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (and exits with it when run as a script)."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; never open a window
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors end here
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    ctx = Context(json=getattr(args, "json", False))
    from relulab.core.errors import RelulabError

    try:
        out = args.handler(args, ctx)
    except (RelulabError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError) as e:
        return _error(e)
    except KeyboardInterrupt:
        print("relulab: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, the traceback on request
        if os.environ.get("RELULAB_DEBUG"):
            raise
        return _error(e, f"internal error ({type(e).__name__}): ", suffix=" (set RELULAB_DEBUG=1 for a traceback)")
    try:
        _print(out, ctx)
    except BrokenPipeError:  # `relulab ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return out.exit_code


def _error(e: BaseException, prefix: str = "", suffix: str = "") -> int:
    if os.environ.get("RELULAB_DEBUG"):
        import traceback

        traceback.print_exc()
    msg = str(e)
    if isinstance(e, OSError) and e.filename and e.strerror:
        msg = f"{e.filename}: {e.strerror}"
    text = " ".join((prefix + msg + suffix).split()) or type(e).__name__
    print(f"relulab: error: {text}", file=sys.stderr)
    return EXIT_ERROR


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
