"""Where the benchmarks find the peers they compare with, and how they run them.

The peers live in their own virtual environment, ``.peers-venv`` at the repository root, built by
one command from the repository root::

    make peers

(pinned versions in ``benchmarks/peers-requirements.txt`` and the Makefile; relulab itself is
installed there without dependencies, so scripts run by that interpreter import it). Every benchmark
that needs a peer takes ``--peer-python PATH`` to use another interpreter; without it, the one in
``.peers-venv``. Nothing else (no environment variable, no machine-specific path) is read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
DEFAULT_PEERS_VENV = ROOT / ".peers-venv"


def default_peer_python() -> Path:
    return DEFAULT_PEERS_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def add_peer_argument(parser) -> None:
    parser.add_argument("--peer-python", default=None, metavar="PATH",
                        help="Python interpreter of the peers' environment (default: .peers-venv/bin/python "
                             "in the repository, built by `make peers`)")


def peer_python(path: str | None) -> Path:
    """The peers' interpreter, or exit with a message saying how to build it."""
    py = Path(path) if path else default_peer_python()
    if not py.exists():
        hint = "build it with `make peers` in the repository root" if not path else "check --peer-python"
        raise SystemExit(f"peers' interpreter {py} not found: {hint} (or skip the peer with --no-peer)")
    return py


def run_peer_code(python: Path, code: str, args=(), timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` under the peers' interpreter with ``benchmarks/`` importable, in its own process
    group, which is killed at the end: a peer's worker processes never outlive the run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCHMARKS), str(ROOT / "src")]))
    p = subprocess.Popen([str(python), "-c", code, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(p)
        out, err = p.communicate()
        raise RuntimeError(f"peer did not finish within {timeout} s") from None
    finally:
        _kill_group(p)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _kill_group(p) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        pass


if __name__ == "__main__":  # `python benchmarks/peers.py`: where the peers are
    print(default_peer_python(), "exists" if default_peer_python().exists() else "missing (run `make peers`)")
    sys.exit(0)
