"""The training tracker: schedule, tidy table, files, plot, budget."""

import csv

import pytest
import torch
from torch import nn

from relulab import InvalidInputError
from relulab.complexity import Tracker, local_complexity, log_schedule


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(40, 4)
    y = torch.randint(0, 3, (40,))
    return model, x, y


def test_records_every_k_and_matches_library(tmp_path):
    model, x, y = _setup()
    tr = Tracker((4,), train=(x, y), test=(x[:10], y[:10]), n_points=40, sigma=0.2, every=5, budget=None,
                 pgd={"eps": 0.05, "steps": 3})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    done = []
    for step in range(12):
        done.append(tr(step, model))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert done == [s % 5 == 0 for s in range(12)]
    rows = tr.table()
    assert [(r["step"], r["split"]) for r in rows][:3] == [(0, "train"), (0, "test"), (0, "random")]
    assert len(rows) == 9
    # the last train LC equals a direct call on the same points
    from relulab import PLNet

    net = PLNet.from_torch(model, (4,))
    xs = tr.splits["train"][0].double()
    last = [r for r in rows if r["split"] == "train"][-1]
    assert last["lc"] != pytest.approx(rows[0]["lc"])  # training moved it
    tr(100, model, force=True)
    assert tr.table()[-3]["lc"] == pytest.approx(local_complexity(net, xs, 0.2).value, rel=1e-10)
    assert tr.table()[-2]["pgd_accuracy"] is not None
    p = tr.to_csv(tmp_path / "t.csv")
    with open(p) as f:
        got = list(csv.DictReader(f))
    assert len(got) == 12 and set(got[0]) >= {"step", "split", "lc", "proxy", "accuracy", "total_variation"}
    assert float(got[0]["total_variation"]) > 0
    ax = tr.plot()
    assert ax.get_xscale() == "log"


def test_budget_skips_measurements_when_over():
    model, x, y = _setup()
    tr = Tracker((4,), train=(x, y), every=1, budget=1e-9)
    assert tr(0, model)  # nothing measured yet: within budget
    assert not tr(1, model)  # the first measurement already exceeds a tiny budget
    tr.budget, tr.every = 1e9, 10
    assert tr(3, model)  # a step off the schedule, taken because step 2 was skipped for the budget
    assert not tr(4, model)


def test_log_schedule_and_arguments():
    assert [s for s in range(1200) if log_schedule(s)] == [0, 1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 1000]
    model, x, y = _setup()
    with pytest.raises(InvalidInputError, match="every"):
        Tracker((4,), train=x, every=0)
    with pytest.raises(InvalidInputError, match="give at least one"):
        Tracker((4,))
    with pytest.raises(InvalidInputError, match="sigma"):
        Tracker((4,), train=x, sigma=-1)
