"""The demo and the report writer.

A report is a list of sections. A section function takes the network (a :class:`~relulab.PLNet`), the
data set and the output folder and returns a :class:`Section`: a title, an HTML fragment, figures and a
JSON-ready summary. :func:`write_report` runs the sections and writes ``summary.json``, one PNG per
figure and a self-contained ``report.html`` (figures embedded as base64 data URIs).

To add what an engine measures to every report, write one section function
``(net, data, out_dir) -> Section`` and append it to :data:`SECTIONS`.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from relulab.core.plnet import PLNet
from relulab.data import Dataset
from relulab.results import to_plain

__all__ = ["Figure", "Section", "figure", "new_figure", "SectionFn", "SECTIONS", "decision_section", "model_section",
           "training_section", "regions_section", "ntk_section", "hessian_section",
           "write_report", "run_demo", "train_classifier", "DEMO_ARCH"]

DEMO_ARCH = "mlp:2-32-32-2:relu"


@dataclass
class Figure:
    """One PNG figure: ``name`` is its file stem inside the output folder."""

    name: str
    png: bytes
    caption: str = ""


@dataclass
class Section:
    title: str
    html: str
    figures: list[Figure] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


SectionFn = Callable[[PLNet, Dataset, Path], Section]
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def figure(fig, name: str, caption: str = "", dpi: int = 110) -> Figure:
    """Render a matplotlib figure to PNG bytes (and close it if pyplot made it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure: release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return Figure(name, buf.getvalue(), caption)


def new_figure(figsize=(6.4, 4.8)):
    """A matplotlib figure that needs no display and leaves pyplot's state alone."""
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(figsize=figsize)


def _grid(data: Dataset, res: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lo, hi = data.box(0.15)
    gx = torch.linspace(float(lo[0]), float(hi[0]), res, dtype=torch.float64)
    gy = torch.linspace(float(lo[1]), float(hi[1]), res, dtype=torch.float64)
    X, Y = torch.meshgrid(gx, gy, indexing="xy")
    return X, Y, torch.stack([X.reshape(-1), Y.reshape(-1)], 1)


def _score(net: PLNet, pts: torch.Tensor) -> torch.Tensor:
    """The decision function: ``f_1 - f_0`` for two logits, the output itself for one."""
    out = net(pts).reshape(pts.shape[0], -1)
    return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out[:, 0]


# ---------------------------------------------------------------------- built-in sections
def decision_section(net: PLNet, data: Dataset, out_dir: Path, res: int = 200) -> Section:
    """The data and the network's decision function, evaluated on a grid over the data's box."""
    X, Y, pts = _grid(data, res)
    Z = _score(net, pts).reshape(X.shape).cpu()
    zmax = float(Z.abs().max()) or 1.0
    fig = new_figure((5.6, 5))
    ax = fig.subplots()
    im = ax.contourf(X.numpy(), Y.numpy(), Z.numpy(), levels=41, cmap="RdBu_r", vmin=-zmax, vmax=zmax, alpha=0.8)
    ax.contour(X.numpy(), Y.numpy(), Z.numpy(), levels=[0.0], colors="k", linewidths=1.2)
    xs, ys = data.x.cpu().numpy(), data.y.cpu().numpy()
    for c, color in zip(range(data.n_classes), ("#2166ac", "#b2182b", "#1b7837", "#762a83")):
        sel = ys == c
        ax.scatter(xs[sel, 0], xs[sel, 1], s=9, c=color, edgecolors="white", linewidths=0.3, label=f"class {c}")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("decision function and boundary")
    fig.colorbar(im, ax=ax, shrink=0.8, label="f1 - f0" if net.output_dim == 2 else "f")
    pred = (_score(net, data.x) > 0).long().cpu()
    acc = float((pred == data.y.cpu()).double().mean()) if data.n_classes == 2 else None
    text = (f"<p>{data.n} points of the <b>{html.escape(data.name)}</b> data set and the decision function "
            f"of the trained network. The black curve is the level set f = 0, drawn from a "
            f"{res}&times;{res} grid of exact network values (a sampled picture of the boundary, not its "
            f"exact polygonal form).</p>")
    return Section("Data and decision function", text,
                   [figure(fig, "decision", "Decision function f1 - f0 on the data's box; black: f = 0.")],
                   {"grid": res, "box": [data.box(0.15)[0].tolist(), data.box(0.15)[1].tolist()],
                    "train_accuracy": acc})


def model_section(net: PLNet, data: Dataset, out_dir: Path) -> Section:
    """The network as relulab sees it: layers, max units, parameters, activations."""
    d = net.describe()
    rows = []
    for layer in d["layers"]:
        units = layer.get("units", "")
        pieces = layer.get("pieces", "")
        rows.append(f"<tr><td>{layer['index']}</td><td>{html.escape(str(layer['name']))}</td>"
                    f"<td>{html.escape(layer['kind'])}</td><td>{_shape(layer['in_shape'])}</td>"
                    f"<td>{_shape(layer['out_shape'])}</td><td>{units}</td><td>{pieces}</td></tr>")
    text = (f"<p>Input shape {_shape(d['input_shape'])}, output shape {_shape(d['output_shape'])}, "
            f"{d['parameters']} parameters, {d['max_units']} max units in {d['max_layers']} layers "
            f"(activations: {', '.join(d['activations']) or 'none'}).</p>"
            "<table><tr><th>#</th><th>name</th><th>kind</th><th>in</th><th>out</th><th>units</th>"
            "<th>pieces</th></tr>" + "".join(rows) + "</table>")
    return Section("Network", text, [], d)


def _shape(s) -> str:
    return "&times;".join(str(v) for v in s)


def training_section(history: dict) -> SectionFn:
    """A section showing a training run's loss and accuracy curves (``history`` from train_classifier)."""
    def section(net: PLNet, data: Dataset, out_dir: Path) -> Section:
        fig = new_figure((6.4, 3.4))
        ax = fig.subplots()
        steps = history["step"]
        ax.semilogy(steps, history["loss"], color="#b2182b", lw=1.4, label="training loss")
        ax.set_xlabel("step (full batch)")
        ax.set_ylabel("cross-entropy loss", color="#b2182b")
        ax2 = ax.twinx()
        ax2.plot(steps, history["accuracy"], color="#2166ac", lw=1.4, label="training accuracy")
        ax2.set_ylabel("training accuracy", color="#2166ac")
        ax2.set_ylim(0, 1.02)
        ax.set_title("training curve")
        fig.tight_layout()
        s = history["settings"]
        text = (f"<p>{s['steps']} full-batch Adam steps (learning rate {s['lr']}), cross-entropy loss, "
                f"{s['seconds']:.2f} s on {html.escape(s['device'])}. Final training loss "
                f"{history['loss'][-1]:.4g}, training accuracy {history['accuracy'][-1]:.3f}, accuracy on "
                f"{s['test_n']} fresh points from the same distribution {s['test_accuracy']:.3f}.</p>")
        every = max(1, len(steps) // 100)
        summary = {**s, "final_loss": history["loss"][-1], "final_accuracy": history["accuracy"][-1],
                   "curve": {k: history[k][::every] for k in ("step", "loss", "accuracy")}}
        return Section("Training", text, [figure(fig, "training", "Loss (left axis) and accuracy (right).")],
                       summary)

    section.__name__ = "training_section"
    return section


def regions_section(net: PLNet, data: Dataset, out_dir: Path, time_limit: float = 120.0) -> Section:
    """Exact activation regions of a 2-input network: the partition of the data's box (one polygon per
    region, the exact decision boundary in red) and the count over all of R^2."""
    from relulab.regions import full_space
    from relulab.regions import on_plane

    if net.input_dim != 2:
        return Section("Linear regions", "<p>Drawn for networks with two inputs only.</p>", [], {"skipped": True})
    lo, hi = data.box(0.15)
    ext = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    plane = on_plane(net, extent=ext, time_limit=time_limit)
    full = full_space(net, time_limit=time_limit)
    fig = new_figure((5.6, 5.4))
    ax = fig.subplots()
    plane.plot(ax=ax, linewidth=0.15, boundary_width=1.6)
    xs, ys = data.x.cpu().numpy(), data.y.cpu().numpy()
    ax.scatter(xs[:, 0], xs[:, 1], s=3, c=["k" if y == 0 else "w" for y in ys], linewidths=0)
    ax.set_title(f"{plane.count} activation regions in the box; decision boundary in red")

    def n(v):
        return "?" if v is None else f"{v:,}"

    text = (f"<p>The exact partition of the data's box into <b>activation regions</b> (one convex polygon per "
            f"activation pattern, computed by layer-by-layer polygon refinement, no sampling): "
            f"<b>{plane.count:,}</b> regions, {n(plane.linear_count)} linear regions (adjacent polygons on which "
            f"the network is the same affine map merged), and a decision boundary made of "
            f"{n(plane.boundary_pieces)} straight pieces (red). Over <b>all of R<sup>2</sup></b> (unbounded regions "
            f"included) the network has <b>{full.count:,}</b> activation regions "
            f"({n(full.unbounded_count)} unbounded), {n(full.linear_count)} linear regions and "
            f"{n(full.decision_boundary_pieces)} decision-boundary pieces"
            + ("" if plane.complete and full.complete else " <b>(incomplete: time limit reached)</b>") + ".</p>")
    summary = {"box": {"extent": list(ext), "activation_regions": plane.count, "linear_regions": plane.linear_count,
                       "decision_boundary_pieces": plane.boundary_pieces, "complete": plane.complete,
                       "seconds": plane.seconds},
               "all_of_R2": {"activation_regions": full.count, "unbounded": full.unbounded_count,
                             "linear_regions": full.linear_count,
                             "decision_boundary_pieces": full.decision_boundary_pieces, "complete": full.complete,
                             "seconds": full.seconds}}
    return Section("Linear regions", text,
                   [figure(fig, "regions", "Activation regions of the trained network over the data's box "
                                           "(random colours), data points, and the exact decision boundary (red).")],
                   summary)


def ntk_section(initial: PLNet | None) -> SectionFn:
    """A section comparing the empirical NTK spectrum of the network at ``initial`` (before training) with
    that of the trained network, on the data."""
    def section(net: PLNet, data: Dataset, out_dir: Path) -> Section:
        from relulab.kernels import empirical_ntk, ntk_spectrum

        nets = ([("at initialization", initial)] if initial is not None else []) + [("after training", net)]
        specs, rows = [], []
        for label, m in nets:
            res = empirical_ntk(m, data.x.to(m.dtype))
            sp = ntk_spectrum(res)
            specs.append((label, sp))
            rows.append(f"<tr><td>{label}</td><td>{sp.lambda_max:.4g}</td><td>{sp.lambda_min:.3g}</td>"
                        f"<td>{sp.condition_number:.3g}</td><td>{sp.effective_rank:.3g}</td><td>{sp.trace:.4g}</td>"
                        f"<td>{res.seconds:.2f}</td></tr>")
        fig = new_figure((6.0, 3.8))
        ax = fig.subplots()
        for label, sp in specs:
            sp.plot(ax=ax, label=label)
        ax.set_title("empirical NTK spectrum")
        ax.legend(fontsize=8)
        size = specs[0][1].size
        text = (f"<p>The empirical neural tangent kernel &Theta;(x, x') = J(x) J(x')<sup>T</sup> (J: the Jacobian of "
                f"the outputs with respect to all parameters) on the {data.n} data points, as a {size}&times;{size} "
                f"matrix over (point, output) pairs, computed exactly; its eigenvalues before and after training. "
                f"Training typically concentrates the kernel on a few directions aligned with the task.</p>"
                "<table><tr><th>network</th><th>&lambda;<sub>max</sub></th><th>&lambda;<sub>min</sub></th>"
                "<th>condition</th><th>effective rank</th><th>trace</th><th>seconds</th></tr>" + "".join(rows)
                + "</table>")
        summary = {label: sp.to_dict(summary=True) for label, sp in specs}
        return Section("Neural tangent kernel", text,
                       [figure(fig, "ntk_spectrum", "Eigenvalues of the empirical NTK, largest first (log scale).")],
                       summary)

    section.__name__ = "ntk_section"
    return section


def hessian_section(net: PLNet, data: Dataset, out_dir: Path, max_dense: int = 3000) -> Section:
    """The Hessian of the trained network's loss in its parameters (cross-entropy for class scores, squared
    error on the labels for one output): matrix-free Lanczos, trace and density, and for networks of at
    most ``max_dense`` parameters (the demo's) the exact dense spectrum beside them."""
    import numpy as np

    from relulab.landscape.hessian import hessian_spectrum

    module = net.to_torch()
    if net.output_dim >= 2:
        loss, y, loss_name = "cross_entropy", data.y, "mean cross-entropy"
    else:
        loss, y, loss_name = "mse", data.y.double().reshape(-1, 1), "mean squared error on the labels"
    res = hessian_spectrum(module, loss, data.x, y, top=5, bottom=5, tol=1e-9, trace_queries=60,
                           density_vectors=4, density_steps=60, max_dense=max_dense)
    e, i, k = res.eigenpairs, res.inertia, res.kinks
    exact = i.eigenvalues if i is not None and i.exact else None
    fig = new_figure((6.4, 3.8))
    ax = fig.subplots()
    res.plot(ax=ax)
    summary = res.to_dict(summary=True)
    if exact is not None:
        lo, hi = float(exact.min()), float(exact.max())
        bins = np.linspace(lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo), 80)
        hist, edges = np.histogram(exact, bins=bins, density=True)
        ax.stairs(np.maximum(hist, 1e-12), edges, color="0.5", lw=0.8, label="exact (dense eigenvalues)")
        ax.legend(fontsize=8)
        top_err = float(np.max(np.abs(e.largest - exact[::-1][:len(e.largest)])))
        bot_err = float(np.max(np.abs(e.smallest - exact[:len(e.smallest)]))) if len(e.smallest) else 0.0
        trace_true = float(exact.sum())
        check = (f" Because this network is small the dense Hessian is computed too: the Lanczos values agree with "
                 f"its eigenvalues to {max(top_err, bot_err):.1e}, the trace estimate {res.trace.estimate:.5g} "
                 f"&plusmn; {res.trace.stderr:.1g} with its exact value {trace_true:.5g}.")
        summary["dense_check"] = {"max_eigenvalue_error": max(top_err, bot_err), "trace": trace_true,
                                  "max_residual": float(np.max(np.r_[e.largest_residuals, e.smallest_residuals]))}
    else:
        check = f" The trace estimate is {res.trace.estimate:.5g} &plusmn; {res.trace.stderr:.1g}."
    kinks = ("no data point sits exactly on a kink, so autograd's Hessian is the true one here"
             if k is not None and k.on_kink == 0 else
             f"{k.on_kink} (sample, unit) pairs sit exactly on a kink: there autograd's Hessian is one-sided")
    inertia = "" if i is None else (
        f"<tr><td>inertia ({'exact' if i.exact else 'estimated from the density'}, tol {i.tol:.2g} = "
        f"max(P&epsilon;|H|, |&nabla;L|))</td><td>{i.negative} negative, {i.zero} zero, {i.positive} positive</td></tr>")
    text = (f"<p>The Hessian of the {loss_name} in all {res.n_parameters} parameters of the trained network "
            f"on the {res.n_samples} training points (loss {res.loss:.3g}, gradient norm {res.gradient_norm:.2g}), "
            f"by Hessian-vector products. Lanczos (full re-orthogonalization, {e.steps} steps) gives the extreme "
            f"eigenvalues, each with its measured residual; stochastic Lanczos quadrature the density.{check}</p>"
            "<table><tr><th></th><th>values</th></tr>"
            f"<tr><td>largest</td><td>{', '.join(f'{v:.4g}' for v in e.largest)}</td></tr>"
            f"<tr><td>smallest</td><td>{', '.join(f'{v:.3g}' for v in e.smallest)}</td></tr>"
            f"{inertia}</table>"
            f"<p>Kinks: {kinks}. A trained classifier's Hessian is typically a few outliers over a bulk "
            f"concentrated at zero (Sagun et al.; Papyan).</p>")
    caption = "Hessian spectral density (SLQ, log scale) with the Lanczos extreme eigenvalues (red)" + (
        " and the exact eigenvalue histogram." if exact is not None else ".")
    return Section("Hessian spectrum", text, [figure(fig, "hessian_spectrum", caption)], summary)


# The sections every report has, in order. Engines append theirs (one function each).
SECTIONS: list[SectionFn] = [decision_section, model_section, regions_section, ntk_section(None), hessian_section]


# ---------------------------------------------------------------------- writing
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:960px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}figure{margin:1em 0}figure img{max-width:100%}figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
.meta{color:#666;font-size:.9em}code{background:#f4f4f4;padding:0 .25em}
"""


def _html(title: str, meta: str, sections: list[Section]) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{meta}</p>"]
    for s in sections:
        parts.append(f"<section><h2>{html.escape(s.title)}</h2>{s.html}")
        for f in s.figures:
            data = base64.b64encode(f.png).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(f.name)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(net: PLNet, data: Dataset, out_dir, sections: list[SectionFn] | None = None,
                 title: str = "relulab report", extra: dict | None = None,
                 progress: Progress | None = None) -> dict:
    """Run ``sections`` (default :data:`SECTIONS`) and write summary.json, PNGs and report.html.

    Returns the summary (also written to ``out_dir/summary.json``).
    """
    from relulab import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fns = list(SECTIONS if sections is None else sections)
    done: list[Section] = []
    timings: dict[str, float] = {}
    for i, fn in enumerate(fns):
        if progress:
            progress(getattr(fn, "__name__", "section").removesuffix("_section"), i, len(fns))
        t0 = time.perf_counter()
        s = fn(net, data, out)
        timings[s.title] = time.perf_counter() - t0
        done.append(s)
    if progress:
        progress("writing", len(fns), len(fns))
    files = []
    for s in done:
        for f in s.figures:
            (out / f"{f.name}.png").write_bytes(f.png)
            files.append(f"{f.name}.png")
    summary = {"relulab_version": __version__, "torch_version": torch.__version__,
               "python": platform.python_version(), **(extra or {}),
               "data": data.summary(),
               "sections": [{"title": s.title, "figures": [f"{f.name}.png" for f in s.figures],
                             "summary": to_plain(s.summary)} for s in done],
               "timings": {**(extra or {}).get("timings", {}), "sections_s": timings}}
    files += ["summary.json", "report.html"]
    summary["files"] = sorted(set(summary.get("files", [])) | set(files))
    meta = (f"relulab {__version__}, torch {torch.__version__}; data: {html.escape(data.name)} "
            f"({data.n} points)")
    (out / "report.html").write_text(_html(title, meta, done), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(to_plain(summary), indent=2) + "\n", encoding="utf-8")
    return summary


# ---------------------------------------------------------------------- the demo
@contextlib.contextmanager
def _threads(n: int):
    # tiny full-batch steps run fastest on one thread; more only add scheduling overhead
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_classifier(module: torch.nn.Module, data: Dataset, steps: int, lr: float = 0.01,
                     progress: Progress | None = None) -> dict:
    """Full-batch Adam on the cross-entropy loss; returns the per-step loss and accuracy history."""
    x, y = data.x.to(torch.float32), data.y
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    hist: dict = {"step": [], "loss": [], "accuracy": []}
    t0 = time.perf_counter()
    module.train()
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        logits = module(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        hist["step"].append(step)
        hist["loss"].append(float(loss.detach()))
        hist["accuracy"].append(float((logits.detach().argmax(1) == y).double().mean()))
        if progress and (step % 25 == 0 or step == steps):
            progress("training", step, steps)
    module.eval()
    hist["seconds"] = time.perf_counter() - t0
    return hist


def run_demo(out_dir, seed: int = 0, quick: bool = False, progress: Progress | None = None) -> dict:
    """Train a small ReLU MLP on the two-spirals data and write a report to ``out_dir``.

    Deterministic given ``seed`` (data, initialisation and training). ``quick`` uses fewer points,
    steps and a coarser grid, for tests. Returns the summary written to ``out_dir/summary.json``.
    """
    from relulab import data as datasets
    from relulab.core.io import build, save

    t_start = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from relulab.core.errors import InvalidInputError

        raise InvalidInputError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    n, steps, res = (200, 200, 80) if quick else (400, 800, 200)
    lr = 0.01
    data = datasets.spirals(n=n, seed=seed)
    test = datasets.spirals(n=n, seed=seed + 1_000_003)
    with _threads(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build(DEMO_ARCH, seed=seed)
        initial = PLNet.from_torch(module, (2,))  # a float64 copy: training does not touch it
        hist = train_classifier(module, data, steps, lr=lr, progress=progress)
    with torch.no_grad():
        test_acc = float((module(test.x.float()).argmax(1) == test.y).double().mean())
    hist["settings"] = {"steps": steps, "lr": lr, "optimizer": "Adam", "loss": "cross-entropy",
                        "batch": "full", "seconds": hist["seconds"], "device": "cpu", "seed": seed,
                        "test_n": test.n, "test_accuracy": test_acc}
    net = PLNet.from_torch(module, (2,))
    save(module, out / "model.safetensors", arch=DEMO_ARCH)

    def decision(net_, data_, out_):
        return decision_section(net_, data_, out_, res=res)

    decision.__name__ = "decision_section"
    sections = [decision if fn is decision_section else fn for fn in SECTIONS]
    sections = [ntk_section(initial) if getattr(fn, "__name__", "") == "ntk_section" else fn for fn in sections]
    sections.insert(1, training_section(hist))
    extra = {"demo": {"seed": seed, "quick": quick, "arch": DEMO_ARCH, "model_file": "model.safetensors"},
             "timings": {"train_s": hist["seconds"]}, "files": ["model.safetensors"]}
    # the demo network is tiny: one thread is as fast, and on a busy machine several threads spinning on
    # tiny operations made the report 20 times slower
    with _threads(1):
        summary = write_report(net, data, out, sections, title="relulab demo: a ReLU MLP on two spirals",
                               extra=extra, progress=progress)
    summary["timings"]["total_s"] = time.perf_counter() - t_start
    (out / "summary.json").write_text(json.dumps(to_plain(summary), indent=2) + "\n", encoding="utf-8")
    return summary
