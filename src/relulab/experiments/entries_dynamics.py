"""Registry entries on :mod:`relulab.dynamics`: kernel against adaptive regime of univariate networks."""

from __future__ import annotations

from dataclasses import dataclass

from relulab.experiments.registry import Summary, experiment


@dataclass(frozen=True)
class UnivariateRegimeConfig:
    width: int = 200
    inner_scale: float = 1.0
    outer_scale: float = 1.0
    steps: int = 20000
    points: int = 6
    seed: int = 0


def _summarize(rows: list[dict]) -> Summary:
    def draw(ax):
        import math

        for w in sorted({r["width"] for r in rows}):
            sub = [r for r in rows if r["width"] == w]
            ax.scatter([r["movement"] for r in sub], [math.log10(r["l2_linear"] / r["l2_cubic"]) for r in sub],
                       label=f"width {w}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("relative parameter movement |theta - theta0| / |theta0|")
        ax.set_ylabel("log10(L2 to linear / L2 to cubic)")
        ax.legend(fontsize=8)

    lazy = [r for r in rows if r["movement"] < 0.1]
    rich = [r for r in rows if r["movement"] >= 1.0]
    frac = lambda sub, name: f"{sum(r['closest'] == name for r in sub)} of {len(sub)}"  # noqa: E731
    return Summary(figures=[("distance ratio against laziness", draw)],
                   comparison=[("lazy runs (movement < 0.1) closest to the cubic spline or the kernel limit",
                                "kernel regime: minimal-curvature (cubic-spline-like) interpolant",
                                f"cubic {frac(lazy, 'cubic spline')}, kernel {frac(lazy, 'kernel limit')}"),
                               ("adaptive runs (movement >= 1) closest to the linear interpolant",
                                "adaptive regime: linear splines with knots at the data",
                                frac(rich, "linear interpolant"))],
                   verdict=None)


@experiment(
    "williams-univariate-regimes",
    title="Kernel and adaptive regimes of shallow univariate ReLU networks",
    paper="Williams, Trager, Panozzo, Silva, Zorin & Bruna, Gradient Dynamics of Shallow Univariate ReLU "
          "Networks (NeurIPS 2019)",
    claim="The initialization scales of the two layers select the implicit bias of gradient descent: a kernel "
          "regime converging to minimal-curvature interpolants (cubic splines) and an adaptive regime giving "
          "linear splines with knots at the data.",
    full={"width": [100, 400], "inner_scale": [0.03, 0.3, 3.0, 30.0], "outer_scale": [0.03, 0.3, 3.0, 30.0]},
    quick={"width": [30], "inner_scale": [0.1, 10.0], "outer_scale": [0.1, 10.0], "steps": [500]},
    summarize=_summarize,
)
def williams_univariate_regimes(cfg: UnivariateRegimeConfig) -> list[dict]:
    """:func:`relulab.dynamics.regime_diagram` at one setting on ``points`` random data points in [-1, 1]."""
    import numpy as np

    from relulab.dynamics import regime_diagram

    rng = np.random.default_rng(cfg.seed)
    x = np.sort(rng.uniform(-1, 1, cfg.points))
    y = rng.normal(0, 0.5, cfg.points)
    r = regime_diagram(x, y, widths=(cfg.width,), inner_scales=(cfg.inner_scale,), outer_scales=(cfg.outer_scale,),
                       steps=cfg.steps, seed=cfg.seed)
    row = dict(r.rows[0])
    for k in ("width", "inner_scale", "outer_scale"):
        row.pop(k)
    row["steps_run"] = row.pop("steps")
    return [row]
