"""Toy data sets, the report writer and the demo."""

from __future__ import annotations

import base64
import json
import math
import re

import pytest
import torch

import relulab
from relulab import data as datasets
from relulab import report
from relulab.core.errors import InvalidInputError

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", list(datasets.DATASETS))
def test_data_sets_are_deterministic_balanced_and_finite(name):
    a = datasets.make(name, n=101, seed=4)
    b = datasets.make(name, n=101, seed=4)
    c = datasets.make(name, n=101, seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert a.x.shape == (101, 2) and a.x.dtype == torch.float64 and a.y.dtype == torch.long
    assert bool(torch.isfinite(a.x).all())
    counts = torch.bincount(a.y, minlength=a.n_classes)
    assert counts.min() >= 40  # balanced classes (xor: by quadrant, about half each)
    lo, hi = a.box(0.1)
    assert bool((a.x >= lo).all() and (a.x <= hi).all())
    json.dumps(a.summary())


def test_data_set_geometry():
    s = datasets.spirals(n=400, noise=0.0, turns=1.25)
    r = s.x.norm(dim=1)
    assert float(r.max()) <= 1 + 1e-12
    # class c lies on the arm (r cos(a), r sin(a)) with a = 2 pi turns r + c pi
    a = 2 * math.pi * 1.25 * r + math.pi * s.y.double()
    assert torch.allclose(s.x, r[:, None] * torch.stack([torch.cos(a), torch.sin(a)], 1), atol=1e-12)
    c = datasets.circles(n=200, noise=0.0, factor=0.3)
    assert torch.allclose(c.x[c.y == 1].norm(dim=1), torch.full((100,), 0.3, dtype=torch.float64))
    x = datasets.xor(n=300)
    assert torch.equal(x.y, ((x.x[:, 0] > 0) ^ (x.x[:, 1] > 0)).long())


def test_bad_data_arguments():
    with pytest.raises(InvalidInputError, match="unknown data set"):
        datasets.make("mnist")
    with pytest.raises(InvalidInputError):
        datasets.spirals(n=1)
    with pytest.raises(InvalidInputError):
        datasets.moons(noise=-1.0)
    with pytest.raises(InvalidInputError):
        datasets.circles(factor=2.0)


def _toy_net():
    m = relulab.build("mlp:2-8-2:relu", seed=0)
    return relulab.PLNet.from_torch(m, (2,))


def test_write_report_runs_every_section_and_embeds_figures(tmp_path):
    net = _toy_net()
    data = datasets.moons(n=60)
    seen = []

    def custom(net_, data_, out_):
        seen.append((net_, data_, out_))
        fig = report.new_figure((2, 2))
        fig.subplots().plot([0, 1], [1, 0])
        return report.Section("Custom <engine>", "<p>custom body</p>", [report.figure(fig, "custom", "a line")],
                              {"value": float("inf"), "t": torch.tensor([1.0, 2.0])})

    from relulab.progress import Recorder

    calls = Recorder()
    s = report.write_report(net, data, tmp_path, [report.model_section, custom], progress=calls)
    assert seen == [(net, data, tmp_path)]
    assert [x["title"] for x in s["sections"]] == ["Network", "Custom <engine>"]
    assert s["sections"][1]["summary"] == {"value": "inf", "t": [1.0, 2.0]}
    assert calls.calls[0] == (0, 2, {"stage": "model"}) and calls.calls[-1] == (2, 2, {"stage": "writing"})
    assert (tmp_path / "custom.png").read_bytes().startswith(PNG)
    html = (tmp_path / "report.html").read_text()
    assert "Custom &lt;engine&gt;" in html and "<p>custom body</p>" in html
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(imgs) == 1 and base64.b64decode(imgs[0]) == (tmp_path / "custom.png").read_bytes()
    assert json.loads((tmp_path / "summary.json").read_text())["sections"][0]["summary"]["max_units"] == 8


def test_default_sections_are_the_registry():
    assert report.SECTIONS[:2] == [report.decision_section, report.model_section]


def test_decision_section_accuracy_is_the_networks(tmp_path):
    net = _toy_net()
    data = datasets.xor(n=80)
    sec = report.decision_section(net, data, tmp_path, res=20)
    out = net(data.x)
    acc = float(((out[:, 1] > out[:, 0]).long() == data.y).double().mean())
    assert sec.summary["train_accuracy"] == pytest.approx(acc)
    assert sec.figures[0].png.startswith(PNG)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One quick demo (seed 1) shared by the tests that read its report."""
    out = tmp_path_factory.mktemp("demo") / "d"
    return report.run_demo(out, seed=1, quick=True), out


def test_demo_quick_writes_a_self_contained_report(demo):
    s, out = demo
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(s))
    assert s["demo"] == {"seed": 1, "quick": True, "arch": report.DEMO_ARCH, "model_file": "model.safetensors"}
    titles = [x["title"] for x in s["sections"]]
    assert titles[:3] == ["Data and decision function", "Training", "Network"]
    train = s["sections"][1]["summary"]
    assert train["steps"] == 200 and train["final_accuracy"] >= 0.9  # spirals are learnable in 200 steps
    assert 0.0 <= train["test_accuracy"] <= 1.0
    assert s["sections"][2]["summary"]["max_units"] == 64
    pngs = [f for x in s["sections"] for f in x["figures"]]
    assert {"decision.png", "training.png", "regions.png", "ntk_spectrum.png", "hessian_spectrum.png"} <= set(pngs)
    for f in pngs:
        assert (out / f).read_bytes().startswith(PNG)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    ntk = next(x["summary"] for x in s["sections"] if x["title"] == "Neural tangent kernel")
    assert set(ntk) == {"at initialization", "after training"}
    assert ntk["at initialization"]["lambda_max"] != ntk["after training"]["lambda_max"]
    hess = next(x["summary"] for x in s["sections"] if x["title"] == "Hessian spectrum")
    assert hess["n_parameters"] == 1218 and hess["eigenpairs"]["converged"]
    # each Ritz value lies within its residual of an eigenvalue (and these are the extreme ones)
    assert hess["dense_check"]["max_eigenvalue_error"] <= hess["dense_check"]["max_residual"] + 1e-12
    ine = hess["inertia"]
    assert ine["exact"] and ine["negative"] + ine["zero"] + ine["positive"] == 1218
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # no external assets
    # the saved model is the trained one
    net = relulab.load(out / "model.safetensors")
    data = datasets.spirals(n=200, seed=1)
    o = net(data.x)
    assert float(((o[:, 1] > o[:, 0]).long() == data.y).double().mean()) == pytest.approx(train["final_accuracy"],
                                                                                           abs=0.02)


def test_demo_report_is_fit_to_show(demo):
    """Print resolution, alt text that describes each figure, and no raw singular NTK numbers."""
    from PIL import Image

    s, out = demo
    assert report.is_complete(out)
    html = (out / "report.html").read_text()
    alts = re.findall(r"<img alt='([^']*)'", html)
    pngs = [f for x in s["sections"] for f in x["figures"]]
    assert len(alts) == len(pngs)
    for alt, name in zip(alts, pngs):
        assert len(alt) > 80 and alt != name.removesuffix(".png"), alt
    for name in pngs:
        dpi = Image.open(out / name).info.get("dpi", (0, 0))
        assert min(dpi) >= 149.5, (name, dpi)
    ntk = next(x["summary"] for x in s["sections"] if x["title"] == "Neural tangent kernel")
    for spec in ntk.values():
        singular = spec["lambda_min"] <= spec["tol"]
        assert ("numerically singular" in html) or not singular
    assert "condition</th>" in html and ">inf<" not in html


def _chromium():
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


_PROBE = """<script>
window.__errors = [];
addEventListener('error', e => __errors.push(String(e.message || (e.target && e.target.src) || e)), true);
const __error = console.error;
console.error = (...a) => { __errors.push(a.join(' ')); __error(...a); };
addEventListener('load', () => {
  // after 'load' every embedded image has been fetched and decoded or has failed: checked synchronously,
  // so the result is in the DOM before headless Chromium dumps it
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => i.alt);
  const out = document.createElement('pre');
  out.id = 'relulab-check';
  out.textContent = JSON.stringify({images: imgs.length, bad: bad, errors: __errors,
                                    widths: imgs.map(i => i.naturalWidth)});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_report_renders_in_chromium(demo, tmp_path):
    """The report in a real browser: no console errors, every embedded image decodes."""
    import html as htmllib
    import subprocess

    s, out = demo
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html><html lang='en'><head>")
    checked = tmp_path / "report.html"
    checked.write_text(page.replace("<head>", "<head>" + _PROBE, 1))
    for attempt in range(3):  # a loaded machine may dump the page before its load handler ran; try again
        r = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                            f"--user-data-dir={tmp_path / f'profile{attempt}'}", "--virtual-time-budget=60000",
                            checked.as_uri()], capture_output=True, text=True, timeout=300)
        m = re.search(r"<pre id=\"relulab-check\">(.*?)</pre>", r.stdout, re.S)
        if m:
            break
    assert m, (r.stdout[-300:], r.stderr[-2000:])
    result = json.loads(htmllib.unescape(m.group(1)))
    n_figures = sum(len(x["figures"]) for x in s["sections"])
    assert result["images"] == n_figures and result["bad"] == [] and result["errors"] == []
    assert min(result["widths"]) >= 600  # 150 dpi figures, not thumbnails


def test_demo_is_deterministic(tmp_path):
    a = report.run_demo(tmp_path / "a", seed=2, quick=True)
    b = report.run_demo(tmp_path / "b", seed=2, quick=True)
    assert a["sections"][1]["summary"]["curve"] == b["sections"][1]["summary"]["curve"]
    from safetensors.torch import load_file

    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("name", ["quickstart.py", "model_files.py"])
def test_examples_run(name, tmp_path, monkeypatch, capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / name
    monkeypatch.chdir(tmp_path)  # examples may write files
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip()
    if name == "quickstart.py":  # the polygons tile the square [-2, 2]^2
        assert re.search(r"activation regions in \[-2, 2\]\^2: \d+ \(total area 16\)", out), out
    if name == "model_files.py":
        diffs = [float(w) for w in re.findall(r"difference\| ([0-9.e+-]+)", out)]
        assert len(diffs) == 2 and max(diffs) <= 1e-12


def test_regions_section_counts_agree_with_sampling(tmp_path):
    net = _toy_net()
    data = datasets.moons(n=60)
    sec = report.regions_section(net, data, tmp_path)
    box, full = sec.summary["box"], sec.summary["all_of_R2"]
    assert box["complete"] and full["complete"]
    lo, hi = data.box(0.15)
    g = torch.rand(20000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    seen = torch.unique(net.pattern(lo + g * (hi - lo)), dim=0).shape[0]
    assert seen <= box["activation_regions"] <= full["activation_regions"]
    # a 2-8-2 ReLU net has one layer of 8 lines: at most 1 + 8 + 28 regions in the plane (Zaslavsky)
    assert full["activation_regions"] <= 37
    assert sec.figures[0].png.startswith(PNG)
