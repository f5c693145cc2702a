"""Progress: the callback protocol, the bar the command line draws, and when it draws nothing."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from clitools import run
from relulab import cli, progress
from relulab.core import io as rio


def test_notify_recorder_and_accepts_progress():
    rec = progress.Recorder()
    progress.notify(None, 1, 2, regions=5)  # no callback: nothing happens
    progress.notify(rec, 1, 2, regions=5)
    progress.notify(rec, 2, None, stage="merging")
    assert rec.calls == [(1, 2, {"regions": 5}), (2, None, {"stage": "merging"})]

    def engine(x, *, progress=None):
        return x

    def other(x, **kwargs):
        return x

    assert progress.accepts_progress(engine) and not progress.accepts_progress(other)
    assert not progress.accepts_progress(len)


def test_progress_bar_shows_counts_info_and_time():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with progress.ProgressBar("search", "starts", console=console, transient=False, refresh_per_second=1000) as bar:
        for i in range(5):
            bar(i + 1, 5, stage="polishing", families=i)
    text = buf.getvalue()
    assert "search: polishing" in text and "5/5" in text and "starts" in text and "families 4" in text
    # disabled or outside a with block it draws nothing and never fails
    quiet = progress.ProgressBar("x", enabled=False, console=console)
    with quiet:
        quiet(1, 2)
    progress.ProgressBar("y")(1, 2)


@pytest.fixture
def terminal(monkeypatch):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    monkeypatch.setattr(cli.Context, "err", property(lambda self: console))
    return buf


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = tmp_path_factory.mktemp("progress") / "mlp.safetensors"
    rio.save(rio.build("mlp:2-4-1:relu", seed=0), p)
    return p


@pytest.mark.parametrize("flags, drawn", [([], True), (["--quiet"], False), (["--json"], False),
                                          (["--json", "--quiet"], False)])
def test_cli_draws_a_bar_only_for_people(terminal, capsys, model, flags, drawn):
    code, out, err = run(["regions", str(model), "--line", "0,0", "1,1", *flags], capsys)
    assert code == 0, err
    assert ("regions" in terminal.getvalue()) is drawn
    if "--json" in flags:
        import json

        json.loads(out)  # stdout is one JSON document, nothing else


def test_every_sub_command_has_quiet_and_json():
    p = cli.build_parser()

    def leaves(parser):
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            yield parser
        for a in subs:
            for child in a.choices.values():
                yield from leaves(child)

    found = list(leaves(p))
    assert len(found) >= 8
    for sp in found:
        dests = {a.dest for a in sp._actions}
        assert {"json", "quiet"} <= dests, sp.prog


def test_engines_report_progress():
    """Long-running engines call the progress protocol: region searches and critical-point searches."""
    import torch

    from relulab import PLNet, regions
    from relulab.landscape.teacher_student import TeacherStudent, find_critical_points
    from relulab.progress import Recorder

    torch.manual_seed(0)
    net = PLNet.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1)), (2,))
    rec = Recorder()
    res = regions.full_space(net, progress=rec)
    assert rec.calls and rec.calls[-1][0] >= res.count
    rec = Recorder()
    find_critical_points(TeacherStudent(torch.eye(2, dtype=torch.float64), 2), 4, workers=1, chunk_size=2, progress=rec)
    assert [c[0] for c in rec.calls] == [2, 4] and all(c[1] == 4 for c in rec.calls)
