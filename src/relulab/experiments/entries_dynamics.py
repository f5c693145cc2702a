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
    data: str = "alternating"
    seed: int = 0


def _summarize(rows: list[dict]) -> Summary:
    def draw(ax):
        import math

        for w in sorted({r["width"] for r in rows}):
            sub = [r for r in rows if r["width"] == w]
            ax.scatter([r["mass_near_data"] for r in sub], [math.log10(r["l2_linear"] / r["l2_kernel"]) for r in sub],
                       label=f"width {w}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("curvature mass within 2% of a data point")
        ax.set_ylabel("log10(L2 to linear / L2 to kernel limit)")
        ax.legend(fontsize=8)

    def med(vals):
        vals = sorted(vals)
        return vals[len(vals) // 2] if vals else float("nan")

    kern = [r for r in rows if r["closest"] == "kernel limit"]
    lin = [r for r in rows if r["closest"] == "linear interpolant"]
    adaptive = [r for r in lin if r["mass_near_data"] >= 0.9 and r["l2_linear"] < 0.5 * r["l2_kernel"]]
    spread = [r for r in kern if r["mass_near_data"] < 0.5]
    base = med([r["mass_near_baseline"] for r in rows])
    both = bool(adaptive) and bool(spread)
    return Summary(figures=[("distance ratio against knot clustering", draw)],
                   comparison=[("runs closest to their own kernel limit: median L2 to it / to the linear interpolant; "
                                "median curvature mass within 2% of a data point",
                                "kernel regime: the kernel (minimal weighted curvature) interpolant, knots stay spread",
                                f"{len(kern)} of {len(rows)} runs: {med([r['l2_kernel'] for r in kern]):.3g} / "
                                f"{med([r['l2_linear'] for r in kern]):.3g}; mass "
                                f"{med([r['mass_near_data'] for r in kern]):.3g} (uniform spread: {base:.2f})"),
                               ("runs closest to the linear interpolant: median L2 to it / to the kernel limit; median "
                                "curvature mass within 2% of a data point",
                                "adaptive regime: linear spline with knots clustering at the data",
                                f"{len(lin)} of {len(rows)} runs: {med([r['l2_linear'] for r in lin]):.3g} / "
                                f"{med([r['l2_kernel'] for r in lin]):.3g}; mass "
                                f"{med([r['mass_near_data'] for r in lin]):.3g} (uniform spread: {base:.2f})")],
                   verdict=("yes (agrees: both regimes appear, the adaptive runs with their curvature at the data)"
                            if both else "not judged (only one regime in this grid)"))


@experiment(
    "williams-univariate-regimes",
    title="Kernel and adaptive regimes of shallow univariate ReLU networks",
    paper="Williams, Trager, Panozzo, Silva, Zorin & Bruna, Gradient Dynamics of Shallow Univariate ReLU "
          "Networks (NeurIPS 2019)",
    claim="The initialization scales of the two layers select the implicit bias of gradient descent: a kernel "
          "regime converging to minimal-curvature interpolants (cubic splines) and an adaptive regime giving "
          "linear splines with knots at the data.",
    full={"width": [100, 400], "inner_scale": [0.1, 1.0, 10.0], "outer_scale": [0.1, 1.0, 10.0], "steps": [10000]},
    quick={"width": [100], "inner_scale": [0.1, 10.0], "outer_scale": [1.0, 10.0], "steps": [2000]},
    summarize=_summarize,
)
def williams_univariate_regimes(cfg: UnivariateRegimeConfig) -> list[dict]:
    """:func:`relulab.dynamics.regime_diagram` at one setting (symmetric initialization, f_0 = 0) on
    ``points`` data points: :func:`relulab.dynamics.alternating_data` or (``data="random"``) x ~ U(-1, 1),
    y ~ N(0, 1/4)."""
    from relulab.dynamics import regime_diagram, univariate_data

    x, y = univariate_data(cfg.data, cfg.points, cfg.seed)
    r = regime_diagram(x, y, widths=(cfg.width,), inner_scales=(cfg.inner_scale,), outer_scales=(cfg.outer_scale,),
                       steps=cfg.steps, seed=cfg.seed)
    row = dict(r.rows[0])
    for k in ("width", "inner_scale", "outer_scale"):
        row.pop(k)
    row["steps_run"] = row.pop("steps")
    return [row]


# ============================================================================ mirror flow
MIRROR_X = (-1.0, -0.5, 0.1, 0.5, 1.0)
MIRROR_Y = (0.4, -0.8, 1.0, -0.4, 0.8)


@dataclass(frozen=True)
class MirrorBiasConfig:
    width: int = 800
    potential: str = "|x|^3+x^2"
    scaled: bool = True
    activation: str = "abs"
    steps: int = 20000


def _summarize_mirror(rows: list[dict]) -> Summary:
    def draw(ax):
        for key in sorted({(r["potential"], r["scaled"], r["activation"]) for r in rows}):
            sub = sorted((r for r in rows if (r["potential"], r["scaled"], r["activation"]) == key),
                         key=lambda r: r["width"])
            lab = f"{key[0]}{' scaled' if key[1] else ''} ({key[2]})"
            line, = ax.plot([r["width"] for r in sub], [r["sup_limit"] for r in sub], "o-", label=lab)
            if key[1]:
                ax.plot([r["width"] for r in sub], [r["sup_kernel"] for r in sub], "x:", color=line.get_color(),
                        label=f"{lab}: to the kernel limit")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width n")
        ax.set_ylabel("sup distance on the data's hull")
        ax.legend(fontsize=7)

    wmax = max(r["width"] for r in rows)
    wmin = min(r["width"] for r in rows)
    big = [r for r in rows if r["width"] == wmax]
    small = {(r["potential"], r["scaled"], r["activation"]): r for r in rows if r["width"] == wmin}
    shrink = sum(r["sup_limit"] < small[(r["potential"], r["scaled"], r["activation"])]["sup_limit"] for r in big)
    # quadratic potentials are scale-free (their scaled version is the unscaled one, the kernel regime)
    scaled = [r for r in big if r["scaled"] and r["potential"] not in ("x^2", "quadratic")]
    apart = sum(r["sup_kernel"] > 2 * r["sup_limit"] for r in scaled)
    return Summary(
        figures=[("distance to the width limit against width", draw)],
        comparison=[("distance to the limit problem, widest vs narrowest", "decreases with width (Theorems)",
                     f"smaller at width {wmax} than at {wmin} in {shrink} of {len(big)} settings"),
                    ("scaled non-quadratic potentials at the largest width: laziness and distance to the kernel limit",
                     "lazy training but not the kernel regime",
                     f"movement <= {max((r['movement'] for r in scaled), default=float('nan')):.3g}; kernel limit "
                     f"more than twice as far as the own limit in {apart} of {len(scaled)}"),
                    ("runs that reached the loss tolerance", "-", f"{sum(r['converged'] for r in rows)} of {len(rows)}")],
        verdict=None if wmax == wmin else (
            "yes (agrees: closer to the limit at the largest width in every setting"
            + (", scaled potentials lazy and away from the kernel limit)" if scaled and apart == len(scaled) else ")")
            if shrink == len(big) and (not scaled or apart == len(scaled)) else
            f"partly (closer to the limit at the largest width in {shrink} of {len(big)} settings; scaled potentials "
            f"away from the kernel limit in {apart} of {len(scaled)})"))


@experiment(
    "liang-montufar-mirror-bias",
    title="Implicit bias of mirror flow: distance to the function-space limit against width",
    paper="Liang & Montufar, Implicit Bias of Mirror Flow for Shallow Neural Networks in Univariate Regression "
          "(ICLR 2025)",
    claim="Mirror flow with unscaled potentials has the implicit bias of gradient flow as the width grows; "
          "scaled potentials are lazy but not in the kernel regime (for absolute-value networks the bias is "
          "min integral phi(f'' / 2p) p, not an RKHS norm).",
    full={"width": [50, 200, 800, 3200], "potential": ["x^2", "|x|^3+x^2", "x^4+x^2"], "scaled": [False, True],
          "activation": ["relu", "abs"]},
    quick={"width": [100, 1600], "potential": ["|x|^3+x^2"], "scaled": [True], "activation": ["abs"]},
    summarize=_summarize_mirror,
)
def liang_montufar_mirror_bias(cfg: MirrorBiasConfig) -> list[dict]:
    """:func:`relulab.dynamics.mirror_bias` at one setting on five fixed data points in [-1, 1]."""
    from relulab.dynamics import mirror_bias

    r = mirror_bias(MIRROR_X, MIRROR_Y, widths=(cfg.width,), potentials=(cfg.potential,), scaled=(cfg.scaled,),
                    activation=cfg.activation, steps=cfg.steps)
    row = dict(r.rows[0])
    for k in ("width", "potential", "scaled"):
        row.pop(k)
    row["steps_run"] = row.pop("steps")
    return [row]


# ============================================================================ benign overfitting
@dataclass(frozen=True)
class BenignConfig:
    d: int = 800
    gamma: float = 0.01
    n: int = 40
    flipped: int = 4
    width: int = 64
    seed: int = 0


def _summarize_benign(rows: list[dict]) -> Summary:
    import math

    def draw(ax):
        from relulab.dynamics import BenignDiagram

        BenignDiagram(rows=rows, seconds=0.0).plot(ax=ax)

    def crossing(sub, key):
        # the gamma where the error falls through 1/4 (log-linear interpolation), None if it does not
        sub = sorted(sub, key=lambda r: r["gamma"])
        for lo, hi in zip(sub, sub[1:]):
            if lo[key] >= 0.25 > hi[key]:
                t = (lo[key] - 0.25) / (lo[key] - hi[key])
                return math.exp(math.log(lo["gamma"]) + t * (math.log(hi["gamma"]) - math.log(lo["gamma"])))
        return None

    comp = []
    for d in sorted({r["d"] for r in rows}):
        sub = [r for r in rows if r["d"] == d]
        c = crossing(sub, "network_error")
        thr = 1 / math.sqrt(sub[0]["n"] * d)
        comp.append((f"d = {d}: gamma where the network's test error crosses 1/4",
                     f"transition at gamma ~ 1/sqrt(n d) = {thr:.3g} (derived here, see relulab.dynamics.benign)",
                     "not crossed in the grid" if c is None else f"{c:.3g} (ratio {c / thr:.2f})"))
    comp.append(("runs that interpolated the noisy labels", "all (zero hinge loss)",
                 f"{sum(r['interpolated'] for r in rows)} of {len(rows)}"))
    high = [r for r in rows if r["flipped"] and r["gamma"] >= 1 / r["flipped"]]
    low = [r for r in rows if r["gamma"] <= 1 / r["d"]]
    comp.append(("largest test error at gamma >= 1/k", "benign, <= exp(-C alpha^2 d / k) (Corollary 3.2.1)",
                 "no such run" if not high else f"{max(r['network_error'] for r in high):.3g} over {len(high)} runs"))
    comp.append(("smallest test error at gamma <= 1/d", "harmful, >= 1/8 for gamma <= C alpha^3 / d (Theorem 3.4, "
                 "C unknown)", "no such run" if not low else f"{min(r['network_error'] for r in low):.3g} over "
                 f"{len(low)} runs"))
    comp.append(("|W|_F alpha sqrt(m) / |w*| (approximate margin maximization)", "bounded by a constant (Theorem 3.1)",
                 f"{min(r['margin_factor'] for r in rows):.3g} to {max(r['margin_factor'] for r in rows):.3g}"))
    interpolated = all(r["interpolated"] for r in rows)
    if high and low and interpolated:
        benign = max(r["network_error"] for r in high) < 0.05
        harmful = min(r["network_error"] for r in low) >= 1 / 8
        verdict = ("yes (agrees: every run interpolates; benign at gamma >= 1/k, test error >= 1/8 at gamma <= 1/d)"
                   if benign and harmful else
                   f"partly (benign at gamma >= 1/k: {'yes' if benign else 'no'}; harmful at gamma <= 1/d: "
                   f"{'yes' if harmful else 'no'})")
    else:
        verdict = None
    return Summary(figures=[("test error against signal strength", draw)], comparison=comp, verdict=verdict)


@experiment(
    "karhadkar-benign-overfitting",
    title="Benign vs harmful overfitting of leaky ReLU networks on signal-plus-orthogonal-noise data",
    paper="Karhadkar, George, Murray, Montufar & Needell, Benign overfitting in leaky ReLU networks with moderate "
          "input dimension (NeurIPS 2024)",
    claim="Two-layer leaky ReLU networks trained by GD on the hinge loss to zero loss overfit benignly when the "
          "signal-to-noise ratio is high and harmfully when it is low, through approximate margin maximization.",
    full={"d": [200, 800, 3200], "gamma": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1], "seed": [0, 1, 2]},
    quick={"d": [400], "gamma": [1e-3, 1e-2, 1e-1]},
    summarize=_summarize_benign,
)
def karhadkar_benign_overfitting(cfg: BenignConfig) -> list[dict]:
    """:func:`relulab.dynamics.benign_diagram` at one (d, gamma, seed)."""
    from relulab.dynamics import benign_diagram

    r = benign_diagram(n=cfg.n, flipped=cfg.flipped, ds=(cfg.d,), gammas=(cfg.gamma,), seeds=(cfg.seed,),
                       width=cfg.width)
    row = dict(r.rows[0])
    for k in ("n", "flipped", "d", "gamma", "seed"):
        row.pop(k)
    return [row]


# ============================================================================ GD vs kernels
@dataclass(frozen=True)
class GDKernelsConfig:
    d: int = 12
    seed: int = 0
    samples_factor: float = 16.0
    steps: int = 40000
    train_target: float = 3e-5
    test_samples: int = 20000


def _summarize_gd_kernels(rows: list[dict]) -> Summary:
    def draw(ax):
        from relulab.dynamics import GDvsKernels

        GDvsKernels(rows=rows, seconds=0.0, settings={"samples_factor": rows[0]["samples_factor"]}).plot(ax=ax)

    comp = []
    for d in sorted({r["d"] for r in rows}):
        sub = [r for r in rows if r["d"] == d]
        m = {k: sum(r[f"{k}_loss"] for r in sub) / len(sub) * d for k in ("gd", "ntk", "rf")}
        comp.append((f"d = {d}: d x population loss (GD / NTK / RF)",
                     "GD o(1/d): d x loss -> 0; kernels Omega(1/d): d x loss -> 1 - 3/pi = 0.045 for n << d^4",
                     f"{m['gd']:.3g} / {m['ntk']:.3g} / {m['rf']:.3g}"))
    below = sum(sum(r["gd_loss"] for r in rows if r["d"] == d) < 0.2 * sum(r["ntk_loss"] for r in rows if r["d"] == d)
                for d in {r["d"] for r in rows})
    comp.append(("dimensions where GD's loss is below a fifth of the NTK's", "all (the separation)",
                 f"{below} of {len({r['d'] for r in rows})}"))
    if all(r.get("gd_reached_target") is not None for r in rows):
        comp.append(("GD runs stopped by the training-loss target d x L_train <= E (not by the step cap); steps",
                     "polynomial time",
                     f"{sum(r['gd_reached_target'] for r in rows)} of {len(rows)}; steps "
                     f"{min(r['gd_steps'] for r in rows)} to {max(r['gd_steps'] for r in rows)}"))
    return Summary(figures=[("d x loss against d", draw)], comparison=comp,
                   verdict="finite-size evidence only: small d, our training recipe (small-initialization full-batch "
                           "GD), not the paper's algorithm")


@experiment(
    "li-ma-zhang-gd-vs-kernels",
    title="Gradient descent against kernel methods on the teacher a^T |W* x|",
    paper="Li, Ma & Zhang, Learning over-parametrized two-layer ReLU neural networks beyond NTK (COLT 2020)",
    claim="GD on an over-parameterized two-layer ReLU network reaches population loss o(1/d) on a^T |W* x| "
          "(a >= 0) with Gaussian inputs, while kernel methods with polynomially many samples stay at Omega(1/d).",
    full={"d": [6, 8, 12, 16], "seed": [0], "steps": [20000], "train_target": [1e-4]},
    quick={"d": [6, 8], "steps": [1500], "train_target": [1e-3], "test_samples": [4000]},
    summarize=_summarize_gd_kernels,
)
def li_ma_zhang_gd_vs_kernels(cfg: GDKernelsConfig) -> list[dict]:
    """:func:`relulab.dynamics.gd_vs_kernels` at one (d, seed)."""
    from relulab.dynamics import gd_vs_kernels

    r = gd_vs_kernels(ds=(cfg.d,), seeds=(cfg.seed,), samples_factor=cfg.samples_factor, steps=cfg.steps,
                      train_target=cfg.train_target, test_samples=cfg.test_samples)
    row = dict(r.rows[0])
    for k in ("d", "seed"):
        row.pop(k)
    return [row]
