"""A calibration experiment that measures the sweep machinery itself (no paper): it returns one row
after sleeping ``sleep`` seconds, and can fail (``fail``) or kill its own worker process once
(``crash_once``: a marker file; the first task to find it absent creates it and is killed with
SIGKILL), which is how the tests and benchmarks exercise failures and worker deaths for real."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from relulab.experiments.registry import Summary, experiment


@dataclass(frozen=True)
class CalibrationConfig:
    index: int = 0
    seed: int = 0
    sleep: float = 0.0
    fail: bool = False
    crash_once: str = ""


def _summary(rows):
    return Summary(comparison=[("rows", "one per task", str(len(rows)))])


@experiment("calibration", title="Sweep calibration (no paper)", paper="none: measures the sweep machinery",
            claim="Each task returns one row; used for overhead benchmarks and failure tests.",
            full={"index": list(range(100))}, quick={"index": list(range(4))}, summarize=_summary)
def calibration(cfg: CalibrationConfig) -> list[dict]:
    if cfg.crash_once:
        try:
            fd = os.open(cfg.crash_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    if cfg.sleep > 0:
        time.sleep(cfg.sleep)
    if cfg.fail:
        raise RuntimeError(f"calibration task {cfg.index} failed on purpose")
    return [{"value": cfg.index * cfg.index + cfg.seed}]
