"""The demo and the report writer.

A report is a list of sections. A section function takes the network (a :class:`~relulab.PLNet`), the
data set and the output folder and returns a :class:`Section`: a title, an HTML fragment, figures and a
JSON-ready summary. :func:`write_report` runs the sections and writes ``summary.json``, one PNG per
figure and a self-contained ``report.html`` (figures embedded as base64 data URIs).

Every file is written atomically (a temporary name, then a rename). A folder of results is marked
complete only at the end, by ``.complete``: a manifest of the files with their SHA-256 digests. The
marker is removed when a run starts, so a run killed mid-way leaves a folder without it, never new
files beside old ones that look finished.

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

from relulab.core.files import atomic_save, atomic_write
from relulab.core.plnet import PLNet
from relulab.data import Dataset
from relulab.progress import Progress, notify
from relulab.results import to_plain

__all__ = ["Figure", "Section", "figure", "new_figure", "SectionFn", "SECTIONS", "decision_section", "model_section",
           "training_section", "regions_section", "ntk_section", "hessian_section",
           "write_report", "run_demo", "train_classifier", "DEMO_ARCH", "COMPLETE", "is_complete"]

DEMO_ARCH = "mlp:2-32-32-2:relu"


@dataclass
class Figure:
    """One PNG figure: ``name`` is its file stem inside the output folder; ``alt`` describes what it shows
    for readers who cannot see it (the caption when empty)."""

    name: str
    png: bytes
    caption: str = ""
    alt: str = ""


@dataclass
class Section:
    title: str
    html: str
    figures: list[Figure] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


SectionFn = Callable[[PLNet, Dataset, Path], Section]


def figure(fig, name: str, caption: str = "", dpi: int = 150, alt: str = "") -> Figure:
    """Render a matplotlib figure to PNG bytes at print resolution (and close it if pyplot made it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure: release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return Figure(name, buf.getvalue(), caption, alt)


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


# the decision boundary's colour: no region colour, colormap or data marker below uses green
BOUNDARY = "#00a651"
BOUNDARY_NAME = "green"
_MARKERS = (dict(marker="o", c="black", edgecolors="white"), dict(marker="^", c="white", edgecolors="black"),
            dict(marker="s", c="0.5", edgecolors="black"), dict(marker="D", c="gold", edgecolors="black"))


def _region_cmap():
    """Light blues and purples for region shading (no green: the boundary's colour)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps["PuBu"](np.linspace(0.08, 0.6, 64)), name="relulab_regions")


def _scatter_classes(ax, data: Dataset, size: float = 14) -> None:
    """The data points, one marker per class (shape and fill, readable on any background), labelled."""
    xs, ys = data.x.cpu().numpy(), data.y.cpu().numpy()
    for c in range(data.n_classes):
        sel = ys == c
        ax.scatter(xs[sel, 0], xs[sel, 1], s=size, linewidths=0.5, label=f"class {c} ({int(sel.sum())} points)",
                   **_MARKERS[c % len(_MARKERS)])


def _input_axes(ax) -> None:
    ax.set_xlabel("input coordinate x1")
    ax.set_ylabel("input coordinate x2")
    ax.set_aspect("equal")


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
    ax.contour(X.numpy(), Y.numpy(), Z.numpy(), levels=[0.0], colors=BOUNDARY, linewidths=1.6)
    _scatter_classes(ax, data)
    ax.plot([], [], color=BOUNDARY, lw=1.6, label="decision boundary f = 0")
    _input_axes(ax)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    ax.set_title("decision function and boundary")
    fig.colorbar(im, ax=ax, shrink=0.8, label="f1 - f0" if net.output_dim == 2 else "f")
    pred = (_score(net, data.x) > 0).long().cpu()
    acc = float((pred == data.y.cpu()).double().mean()) if data.n_classes == 2 else None
    text = (f"<p>{data.n} points of the <b>{html.escape(data.name)}</b> data set and the decision function "
            f"of the trained network. The {BOUNDARY_NAME} curve is the level set f = 0, drawn from a "
            f"{res}&times;{res} grid of exact network values (a sampled picture of the boundary, not its "
            f"exact polygonal form).</p>")
    lo, hi = data.box(0.15)
    alt = (f"Heat map of the network's decision function over x1 from {float(lo[0]):.2g} to {float(hi[0]):.2g} and "
           f"x2 from {float(lo[1]):.2g} to {float(hi[1]):.2g}, blue where class 0 wins and red where class 1 wins, "
           f"the decision boundary f = 0 as a {BOUNDARY_NAME} curve, and the {data.n} data points drawn as "
           "black dots (class 0) and white triangles (class 1).")
    return Section("Data and decision function", text,
                   [figure(fig, "decision", f"Decision function f1 - f0 on the data's box; {BOUNDARY_NAME}: f = 0.",
                           alt=alt)],
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
        alt = (f"Training curve over {s['steps']} steps: the cross-entropy loss (red, logarithmic left axis) falls "
               f"from {history['loss'][0]:.3g} to {history['loss'][-1]:.3g} while the training accuracy (blue, right "
               f"axis) rises from {history['accuracy'][0]:.2f} to {history['accuracy'][-1]:.2f}.")
        return Section("Training", text, [figure(fig, "training", "Loss (left axis) and accuracy (right).", alt=alt)],
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
    # regions in light blues and purples, so that the boundary's green is a colour no region has
    plane.plot(ax=ax, linewidth=0.15, boundary_width=1.8, cmap=_region_cmap(), boundary_color=BOUNDARY)
    _scatter_classes(ax, data, size=7)
    ax.plot([], [], color=BOUNDARY, lw=1.8, label="decision boundary (exact)")
    _input_axes(ax)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"{plane.count} activation regions in the box")

    def n(v):
        return "?" if v is None else f"{v:,}"

    text = (f"<p>The exact partition of the data's box into <b>activation regions</b> (one convex polygon per "
            f"activation pattern, computed by layer-by-layer polygon refinement, no sampling): "
            f"<b>{plane.count:,}</b> regions, {n(plane.linear_count)} linear regions (adjacent polygons on which "
            f"the network is the same affine map merged), and a decision boundary made of "
            f"{n(plane.boundary_pieces)} straight pieces ({BOUNDARY_NAME}). Over <b>all of R<sup>2</sup></b> (unbounded regions "
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
                                           f"(one shade per region), data points, and the exact decision boundary "
                                           f"({BOUNDARY_NAME}).",
                           alt=f"The data's box, x1 from {ext[0]:.2g} to {ext[1]:.2g} and x2 from {ext[2]:.2g} to "
                               f"{ext[3]:.2g}, cut into {plane.count:,} convex polygons shaded in light blues and "
                               f"purples, one per activation region, with the exact decision boundary as a "
                               f"{BOUNDARY_NAME} polyline of {n(plane.boundary_pieces)} pieces and the data points "
                               "as black dots (class 0) and white triangles (class 1).")],
                   summary)


def spectrum_words(sp) -> tuple[str, str]:
    """(smallest eigenvalue, condition number) of a kernel spectrum in words: a kernel whose smallest
    eigenvalue is within rounding of zero is "numerically singular (rank r at tolerance t)", not a
    negative number with an infinite condition number."""
    import numpy as np

    if sp.lambda_min > sp.tol:
        return f"{sp.lambda_min:.3g}", f"{sp.condition_number:.3g}"
    rank = int(np.sum(np.asarray(sp.eigenvalues) > sp.tol))
    text = f"numerically singular (rank {rank} of {sp.size} at tolerance {sp.tol:.2g})"
    return text, "not defined (singular)"


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
            smallest, condition = spectrum_words(sp)
            rows.append(f"<tr><td>{label}</td><td>{sp.lambda_max:.4g}</td><td>{html.escape(smallest)}</td>"
                        f"<td>{html.escape(condition)}</td><td>{sp.effective_rank:.3g}</td><td>{sp.trace:.4g}</td>"
                        f"<td>{res.seconds:.2f}</td></tr>")
        fig = new_figure((6.0, 3.8))
        ax = fig.subplots()
        for label, sp in specs:
            sp.plot(ax=ax, label=label)
            ax.axhline(sp.tol, color=ax.lines[-1].get_color(), lw=0.8, ls=":", label=f"tolerance ({label})")
        ax.set_title("empirical NTK spectrum")
        ax.legend(fontsize=8)
        alt = ("Eigenvalues of the empirical NTK against their rank, largest first, on a logarithmic axis, "
               + "; ".join(f"{label}: from {sp.lambda_max:.3g} down to {spectrum_words(sp)[0]}" for label, sp in specs)
               + ". Dotted lines mark the tolerance below which an eigenvalue counts as zero.")
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
                       [figure(fig, "ntk_spectrum", "Eigenvalues of the empirical NTK, largest first (log scale); "
                                                    "dotted: the numerical-zero tolerance.", alt=alt)],
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
    fig = new_figure((6.4, 4.4))
    ax = fig.subplots()
    res.plot(ax=ax)
    ax.lines[0].set_label("SLQ density (smoothed)")
    marks = [ln for ln in ax.lines[1:]]
    if marks:
        marks[0].set_label("Lanczos extreme eigenvalues")
    summary = res.to_dict(summary=True)
    if exact is not None:
        lo, hi = float(exact.min()), float(exact.max())
        bins = np.linspace(lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo), 80)
        hist, edges = np.histogram(exact, bins=bins, density=True)
        ax.stairs(np.maximum(hist, 1e-12), edges, color="0.35", lw=0.9, label="exact eigenvalue histogram (dense)")
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
    # below the axes: a legend inside would cover the outlier peaks at the edges of the spectrum
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    alt = (f"Hessian eigenvalue density on a logarithmic axis, eigenvalues from {float(e.smallest.min()) if len(e.smallest) else 0:.3g} "
           f"to {float(e.largest.max()):.3g}: the smoothed stochastic Lanczos quadrature density"
           + (", the histogram of the exact dense eigenvalues" if exact is not None else "")
           + " and vertical lines at the Lanczos extreme eigenvalues.")
    caption = "Hessian spectral density (SLQ, log scale) with the Lanczos extreme eigenvalues (red)" + (
        " and the exact eigenvalue histogram." if exact is not None else ".")
    return Section("Hessian spectrum", text, [figure(fig, "hessian_spectrum", caption, alt=alt)], summary)


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
            parts.append(f"<figure><img alt='{html.escape(f.alt or f.caption or f.name, quote=True)}' "
                         f"src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(net: PLNet, data: Dataset, out_dir, sections: list[SectionFn] | None = None,
                 title: str = "relulab report", extra: dict | None = None,
                 progress: Progress | None = None, mark_complete: bool = True) -> dict:
    """Run ``sections`` (default :data:`SECTIONS`) and write summary.json, PNGs and report.html.

    ``progress(done, total, stage=...)`` is called before each section (see :mod:`relulab.progress`).
    With ``mark_complete`` the folder is marked finished at the end (``.complete``). Returns the
    summary (also written to ``out_dir/summary.json``).
    """
    from relulab import __version__

    out = Path(out_dir)
    _begin(out)
    fns = list(SECTIONS if sections is None else sections)
    done: list[Section] = []
    timings: dict[str, float] = {}
    for i, fn in enumerate(fns):
        notify(progress, i, len(fns), stage=getattr(fn, "__name__", "section").removesuffix("_section"))
        t0 = time.perf_counter()
        s = fn(net, data, out)
        timings[s.title] = time.perf_counter() - t0
        done.append(s)
    notify(progress, len(fns), len(fns), stage="writing")
    files = []
    for s in done:
        for f in s.figures:
            with atomic_write(out / f"{f.name}.png", "wb") as fh:
                fh.write(f.png)
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
    with atomic_write(out / "report.html", "w") as fh:
        fh.write(_html(title, meta, done))
    _write_summary(out, summary)
    if mark_complete:
        _mark_complete(out, summary["files"])
    return summary


COMPLETE = ".complete"


def _begin(out: Path) -> None:
    """Create the folder and unmark it: from here until :func:`_mark_complete` it is a run in progress."""
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)


def _write_summary(out: Path, summary: dict) -> None:
    with atomic_write(out / "summary.json", "w") as fh:
        fh.write(json.dumps(to_plain(summary), indent=2) + "\n")


def _mark_complete(out: Path, files: list[str]) -> None:
    import hashlib

    from relulab import __version__

    manifest = {"relulab_version": __version__, "complete": True,
                "files": {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in sorted(files)}}
    with atomic_write(out / COMPLETE, "w") as fh:
        fh.write(json.dumps(manifest, indent=2) + "\n")


def is_complete(out_dir) -> bool:
    """Whether ``out_dir`` holds a finished report: its ``.complete`` manifest exists and every file it
    lists is there with the recorded digest."""
    import hashlib

    out = Path(out_dir)
    try:
        manifest = json.loads((out / COMPLETE).read_text(encoding="utf-8"))
        return all(hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
                   for name, digest in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


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
        if step % 25 == 0 or step == steps:
            notify(progress, step, steps, stage="training")
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
    if str(out_dir).strip() == "":
        from relulab.core.errors import InvalidInputError

        raise InvalidInputError("the output folder must be a non-empty name")
    _begin(out)
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
    atomic_save(out / "model.safetensors", lambda tmp: save(module, tmp, arch=DEMO_ARCH))

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
                               extra=extra, progress=progress, mark_complete=False)
    summary["timings"]["total_s"] = time.perf_counter() - t_start
    _write_summary(out, summary)
    _mark_complete(out, summary["files"])
    return summary
