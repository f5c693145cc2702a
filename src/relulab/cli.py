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
import warnings
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
    """Per-run services for handlers: the error console and progress reporting."""

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
    def progress(self, description: str, unit: str = "") -> Iterator[Callable[..., None]]:
        """Yield a :class:`relulab.progress.Progress` callback ``(done, total, **info)``: a transient bar on
        an interactive stderr with counts and time remaining; nothing under ``--json``, ``--quiet`` or
        when stderr is not a terminal."""
        from relulab.progress import ProgressBar

        enabled = self.show_progress and not self.json and self.err.is_terminal
        with ProgressBar(description, unit, enabled=enabled, console=self.err) as bar:
            yield bar

    def engine_progress(self, fn: Callable, bar: Callable[..., None]) -> dict:
        """``{"progress": bar}`` when the engine function ``fn`` reports progress, else ``{}``."""
        from relulab.progress import accepts_progress

        return {"progress": bar} if accepts_progress(fn) else {}


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
    """--json and --quiet, which every sub-command has."""
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text (no progress bar)")
    p.add_argument("--quiet", action="store_true", help="draw no progress bar")


def read_array(path: str, arg: str):
    """A numeric ``.npy`` (never unpickled) or ``.csv`` file as a float64 numpy array, read by
    :func:`relulab.data.load_array` (sizes checked before anything is allocated); its errors name the
    argument ``arg`` that gave the file, e.g. ``DATA x.npy: ...``."""
    import warnings

    from relulab.core.errors import RelulabError
    from relulab.data import load_array

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's "empty input file": callers refuse empty arrays in words
            return load_array(path)
    except RelulabError as e:
        raise type(e)(f"{arg} {e}") from None


def parse_point(text: str, arg: str, shape, net=None):
    """One input from the command line: comma-separated numbers (one number fills every coordinate) or a
    ``.npy`` file (read without pickle). Returns a tensor of the per-sample ``shape``, in ``net``'s dtype."""
    import torch

    from relulab.core.errors import InvalidInputError

    numel = 1
    for s in shape:
        numel *= int(s)
    if text.endswith(".npy"):
        values = torch.as_tensor(read_array(text, arg)).reshape(-1)
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




# ---------------------------------------------------------------------- argument types
# argparse reports an ArgumentTypeError as one line "argument --flag: message"; these types bound every
# number before anything is allocated from it, and name the file an output flag really writes.
def int_arg(lo: int | None = 1, hi: int | None = 10**9) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi] (None: unbounded on that side)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_range_text(lo, hi)}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def float_arg(lo: float | None = None, hi: float | None = None, *, above: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number, >= ``lo`` (or > ``above``) and <= ``hi``."""

    def parse(text: str) -> float:
        import math

        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if ((lo is not None and value < lo) or (above is not None and value <= above)
                or (hi is not None and value > hi)):
            low = f"> {above:g}" if above is not None else (None if lo is None else f">= {lo:g}")
            both = " and ".join(x for x in (low, None if hi is None else f"<= {hi:g}") if x)
            raise argparse.ArgumentTypeError(f"must be a finite number {both}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def number_list(integer: bool = False, lo=None, hi=None, *, above=None, most: int = 1000,
                ranges: bool = False) -> Callable[[str], list]:
    """An argparse type: 1 to ``most`` comma-separated numbers, each checked like :func:`int_arg` (``integer``)
    or :func:`float_arg` (``lo``, ``hi``, ``above``); with ``ranges`` an integer range ``A-B`` (A to B) too,
    its length checked before it is made."""
    import re

    one = int_arg(lo, hi) if integer else float_arg(lo, hi, above=above)

    def parse(text: str) -> list:
        span = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text) if ranges and integer else None
        if span:
            a, b = (one(v) for v in span.groups())
            count = b - a + 1
            values = range(a, b + 1)
        else:
            parts = [v for v in text.split(",") if v.strip()]
            count = len(parts)
            values = parts
        if not 0 < count <= most:
            kind = "integers" if integer else "numbers"
            raise argparse.ArgumentTypeError(f"expected 1 to {most:,} comma-separated {kind}"
                                             + (" or a range A-B" if span is not None or ranges else "")
                                             + f" (at most {most:,} of them), got {text!r}")
        return [v if span else one(v.strip()) for v in values]

    parse.__name__ = "list"
    return parse


def _range_text(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"an integer from {lo:,} to {hi:,}"
    return f"an integer >= {lo:,}" if lo is not None else f"an integer <= {hi:,}"


SEED = int_arg(0, 2**63 - 1)
FIGURE_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def _file(text: str, what: str, suffix: str | None) -> str:
    from pathlib import Path

    from relulab.core.errors import InvalidInputError
    from relulab.core.files import check_output_path

    if text.strip() and Path(text).is_dir():  # checked before a suffix makes it a sibling file
        raise argparse.ArgumentTypeError(f"{what} {text!r} is a folder, not a file")
    try:
        return str(check_output_path(text, what, suffix))
    except InvalidInputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def figure_file(text: str) -> str:
    """An argparse type for ``--plot FILE``: the file that will exist afterwards (``.png`` appended to a
    name without a figure suffix, as matplotlib would), its folder existing."""
    from pathlib import Path

    return _file(text, "figure file", None if Path(text).suffix.lower() in FIGURE_FORMATS else ".png")


def output_file(suffix: str) -> Callable[[str], str]:
    """An argparse type for a file an option writes: ``suffix`` appended when missing, folder existing."""

    def parse(text: str) -> str:
        return _file(text, "output file", suffix)

    parse.__name__ = "file"
    return parse


def output_folder(text: str) -> str:
    """An argparse type for a results folder: a non-empty name that is not an existing file."""
    from pathlib import Path

    if text.strip() == "":
        raise argparse.ArgumentTypeError("must be a non-empty folder name")
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a folder")
    return text


def save_figure(draw: Callable, path: str, figsize=(6, 6), dpi: int = 150) -> str:
    """``draw(ax)`` on a new figure written atomically to ``path`` (from :func:`figure_file`; the format
    from its suffix); returns the path written."""
    from pathlib import Path

    from matplotlib.figure import Figure

    from relulab.core.errors import InvalidInputError
    from relulab.core.files import atomic_save

    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    draw(ax)
    fmt = Path(path).suffix.lower().lstrip(".") or "png"
    try:
        atomic_save(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"--plot {path}: cannot write the figure ({e})") from None
    return str(path)


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
    from relulab.core.errors import RelulabError
    from relulab.core.io import open_model

    try:
        return open_model(args.model, arch=args.arch, input_shape=args.input_shape)
    except RelulabError as e:
        if str(e).startswith(str(args.model)):  # the file's own problem: say which argument named it
            raise type(e)(f"MODEL {e}") from None
        raise


# ---------------------------------------------------------------------- the registry
# One line per sub-command, in the order `relulab --help` lists them: its name, the module of
# relulab/commands that defines it (exporting add_parser(subparsers), which uses add_model_arguments,
# load_model, json_flag and parse_point and imports its engine inside the handler) and its one-line
# help. Only the module of the command being run is imported, so `relulab --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "describe a model file: layers, units, parameters, activations, shapes"),
    "demo": ("demo", "train a small ReLU network on a toy data set and write a report"),
    "regions": ("regions", "exact activation regions on a segment, a 2-D slice, a box or all of input space"),
    "ntk": ("kernels", "empirical NTK Gram matrix of a model on data, its spectrum; --analytic: infinite width"),
    "init": ("init", "initialization constants (maxout networks)"),
    "landscape": ("landscape", "loss landscapes in parameter space"),
    "hessian": ("hessian", "Hessian spectrum of a model's loss on data: extreme eigenvalues, trace, density, inertia"),
    "complexity": ("complexity", "local complexity (density of region boundaries) near data: smoothed, exact 2-D, "
                                 "line walks, local counts, the grokking proxy"),
    "tropical": ("tropical", "a network as tropical rational functions p - q (max-plus polynomials)"),
    "count": ("count", "exact counts: max-pool regions, classifications of a data set, maxout complexity"),
    "reproduce": ("reproduce", "reproduce a paper's headline experiment (see --list)"),
    "sweep": ("sweep", "run a resumable sweep of a registered experiment (TOML spec)"),
    "report": ("report_dir", "one self-contained HTML page from a results folder"),
    "dynamics": ("dynamics", "training dynamics: kernel vs adaptive regimes of shallow univariate networks"),
    "dropout": ("dropout", "Dropout / DropConnect on shallow linear networks: closed-form minimum, flow rate vs bound"),
    "lpflow": ("lp_flow", "Fisher-Rao gradient flows of linear programs and state-action natural policy gradients"),
    "symmetry": ("symmetry", "ReLU parameter symmetries: distances modulo permutations and rescalings vs realizations"),
    "bures": ("bures", "Bures-Wasserstein deep linear generators: critical points, values, Morse indices, training"),
    "convex": ("convex", "globally optimal two-layer ReLU networks (convex program, +BN) and optimality certificates"),
}


class _Registry:
    """The sub-parsers action, seen by a command module's ``add_parser``: the help comes from
    :data:`COMMANDS`, so a module need not repeat it."""

    def __init__(self, sub):
        self._sub = sub

    def add_parser(self, name, **kwargs):
        if name in COMMANDS:
            kwargs.setdefault("help", COMMANDS[name][1])
        return self._sub.add_parser(name, **kwargs)


def _chosen(argv: list[str]) -> str | None:
    # the top-level parser has only --help and --version, so the first word is the command
    for a in argv:
        if a in ("-h", "--help", "--version"):
            return None
        if not a.startswith("-"):
            return a
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``relulab argv``: the full parser of the command ``argv`` names and one-line
    entries for the others (``argv=None``: every command in full)."""
    import importlib

    from relulab import __version__

    p = _Parser(prog="relulab",
                description="Exact geometry and loss landscapes of piecewise-linear networks.")
    p.add_argument("--version", action="version", version=f"relulab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = None if argv is None else _chosen(argv)
    for name, (module, help_text) in COMMANDS.items():
        if name in sub.choices:  # a module may define several commands
            continue
        if argv is None or name == chosen:
            importlib.import_module(f"relulab.commands.{module}").add_parser(_Registry(sub))
        else:
            sub.add_parser(name, help=help_text, add_help=False)
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
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors end here
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    ctx = Context(json=getattr(args, "json", False), show_progress=not getattr(args, "quiet", False))
    from relulab.core.errors import RelulabError

    # warnings (numpy's "empty file", scipy's quadrature notes) are held back: an error is then the only
    # line printed, and a successful run shows each once, in relulab's words
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = args.handler(args, ctx)
        except (RelulabError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError) as e:
            return _error(e)
        except KeyboardInterrupt:
            print("relulab: interrupted", file=sys.stderr)
            return 130
        except (MemoryError, OverflowError, RuntimeError) as e:
            if os.environ.get("RELULAB_DEBUG"):
                raise
            return _error(e, *_resource_words(e))
        except Exception as e:  # a bug: still one line, the traceback on request
            if os.environ.get("RELULAB_DEBUG"):
                raise
            return _error(e, f"internal error ({type(e).__name__}): ", suffix=" (set RELULAB_DEBUG=1 for a traceback)")
    seen = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in seen:
            seen.add(text)
            print(f"relulab: warning: {text}", file=sys.stderr)
    try:
        _print(out, ctx)
    except BrokenPipeError:  # `relulab ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return out.exit_code


def _resource_words(e: BaseException) -> tuple[str, str]:
    """(prefix, suffix) for an allocation failure or overflow a size check did not catch first."""
    import re

    text = str(e)
    m = re.search(r"tried to allocate (\d+) bytes", text)
    if isinstance(e, MemoryError) or m or "can't allocate memory" in text or "out of memory" in text.lower():
        need = f" ({int(m.group(1)) / 2**30:.3g} GiB requested)" if m else ""
        return f"out of memory{need}: ", " (use smaller sizes or a smaller memory budget)"
    if isinstance(e, OverflowError) or "Overflow" in text:
        return "a size or value is too large: ", ""
    return f"internal error ({type(e).__name__}): ", " (set RELULAB_DEBUG=1 for a traceback)"


def _error(e: BaseException, prefix: str = "", suffix: str = "") -> int:
    if os.environ.get("RELULAB_DEBUG"):
        import traceback

        traceback.print_exc()
    msg = str(e)
    if isinstance(e, OSError) and e.filename and e.strerror:
        msg = f"{e.filename}: {e.strerror}"
    # torch's C++ errors append their stack ("Exception raised from ...", "frame #0: ..."): keep the message
    msg = msg.split("Exception raised from")[0].split("\nframe #")[0]
    if prefix.startswith("out of memory"):
        msg = ""
    text = " ".join((prefix + msg).split()).rstrip(": ") + suffix
    text = text if len(text) <= 400 else text[:397] + "..."
    print(f"relulab: error: {text or type(e).__name__}", file=sys.stderr)
    return EXIT_ERROR


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
