"""relulab report DIR: one self-contained page, checked in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from pathlib import Path

import pytest

from relulab.cli import main
from relulab.experiments.reproduction import reproduce

CHECK = """<script>
var errors = [];
window.addEventListener('error', function (e) { errors.push(String(e.message || (e.target && e.target.src) || e)); }, true);
var origError = console.error;
console.error = function () { errors.push(Array.prototype.join.call(arguments, ' ')); origError.apply(console, arguments); };
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0); });
  var pre = document.createElement('pre'); pre.id = 'relulab-check';
  pre.textContent = JSON.stringify({images: imgs.length, broken: bad.length, errors: errors});
  document.body.appendChild(pre);
});
</script>"""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browse(page, tmp_path) -> tuple[dict, str]:
    """Load the page (with a checking script put in front of it) in headless Chromium; returns what
    the script saw and Chromium's console log."""
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium on this machine (CI installs the 'chromium' system package)")
    text = page.read_text()
    assert "<script" not in text  # the report itself has no scripts
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("<head>", "<head>" + CHECK, 1))
    p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="relulab-check">(.*?)</pre>', p.stdout, re.S)
    assert m, f"the page did not finish loading: {p.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"')), p.stderr


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    reproduce("ntk-separation", quick=True, out=root / "ntk")
    reproduce("karhadkar-jacobian-rank", quick=True, out=root / "rank")
    pytest.importorskip("pyarrow")
    from relulab.experiments.sweep import run_sweep

    spec = root / "s.toml"
    spec.write_text('experiment = "calibration"\n[parameters]\nindex = [1, 2]\nfail = [false, true]\n')
    run_sweep(spec, root / "sweep", workers=1, progress=False)
    return root


def test_report_of_a_folder_of_results(results, capsys):
    assert main(["report", str(results), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    page = results / "report.html"
    assert doc["report"] == str(page)
    text = page.read_text()
    for piece in ("Karhadkar", "Bounds for the Smallest Eigenvalue", "this run", "2 failed task(s)",
                  "failed on purpose"):
        assert piece in text
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert text.count("<img") >= 2


def test_report_renders_in_chromium(results, tmp_path):
    main(["report", str(results)])
    seen, log = browse(results / "report.html", tmp_path)
    assert seen["images"] >= 2 and seen["broken"] == 0
    assert seen["errors"] == []
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", log)


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("relulab: error: report:") and "holds no results" in err and err.count("\n") == 1
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("RELULAB_REPORT_DIR"),
                    reason="set RELULAB_REPORT_DIR to a results folder to check its report in Chromium")
def test_report_of_a_given_folder_renders_in_chromium(tmp_path, capsys):
    """The report of a real results folder (e.g. every entry's full run, benchmarks/experiments_full.py):
    one section per result, every figure decoded by the browser, no console errors."""
    folder = Path(os.environ["RELULAB_REPORT_DIR"])
    page = tmp_path / "report.html"
    assert main(["report", str(folder), "--output", str(page)]) == 0
    capsys.readouterr()
    text = page.read_text()
    results = [p for p in folder.iterdir() if (p / "reproduction.json").is_file() or (p / "sweep.json").is_file()]
    assert text.count("<h2>") >= len(results) > 0
    seen, log = browse(page, tmp_path)
    assert seen["images"] == text.count("<img") > 0 and seen["broken"] == 0, seen
    assert seen["errors"] == []
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", log)
    print(f"{len(results)} results, {seen['images']} figures rendered")
