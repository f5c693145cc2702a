"""Registry entries on :mod:`relulab.combinatorics`: max-pool region counts and maxout expected complexity."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from relulab.experiments.registry import Summary, experiment


@dataclass(frozen=True)
class MaxPoolConfig:
    size: int = 6
    kernel: int = 2
    stride: int = 1
    check_engine: bool = True


ENGINE_MAX_SIZE = 8  # size 8, kernel 3: 182 regions in about 1 CPU s; size 10 took over 4 minutes


def _summarize_maxpool(rows: list[dict]) -> Summary:
    def draw(ax):
        for (k, s) in sorted({(r["kernel"], r["stride"]) for r in rows}):
            sub = sorted((r for r in rows if r["kernel"] == k and r["stride"] == s), key=lambda r: r["size"])
            ax.plot([r["size"] for r in sub], [r["regions"] for r in sub], "o-", label=f"kernel {k}, stride {s}")
        ax.set_yscale("log")
        ax.set_xlabel("input size n")
        ax.set_ylabel("linearity regions of the max-pool layer")
        ax.legend(fontsize=8)

    closed = [r for r in rows if r["closed_form"] is not None]
    checked = [r for r in rows if r["engine_regions"] >= 0]
    comparison = [("count = paper's closed form (where one exists)", "equal",
                   f"{sum(r['regions'] == r['closed_form'] for r in closed)} of {len(closed)}"),
                  ("facets = the paper's (s + 2)(m - 1) + k, or k m for k <= s + 1 (Theorem 4.19)", "equal",
                   f"{sum(r['facets'] == r.get('closed_form_facets') for r in rows)} of {len(rows)}"),
                  (f"count = regions found by relulab's full-space engine on the layer itself (sizes <= "
                   f"{ENGINE_MAX_SIZE})", "equal",
                   f"{sum(r['regions'] == r['engine_regions'] for r in checked)} of {len(checked)}")]
    ok = all(r["regions"] == r["closed_form"] for r in closed) and all(
        r["facets"] == r.get("closed_form_facets") for r in rows) and all(
        r["regions"] == r["engine_regions"] for r in checked)
    return Summary(figures=[("max-pool regions against input size", draw)], comparison=comparison,
                   verdict="agrees" if ok else "does not agree")


@experiment(
    "escobar-maxpool-counts",
    title="Linearity regions of max-pooling layers",
    paper="Escobar, Gallardo, Gonzalez-Anaya, Gonzalez, Montufar, Morales, Enumeration of max-pooling responses "
          "with generalized permutohedra (arXiv 2209.14978)",
    claim="The linearity regions of a max-pool layer are the vertices of a Minkowski sum of simplices; for 1-D "
          "pooling their number is 1^T A_{k,s}^(m-1) 1 for a k x k transfer matrix (Theorem 4.5; kernel 2, stride 1: "
          "2^(n-1)) and the facets number (s + 2)(m - 1) + k (Theorem 4.19).",
    full={"size": list(range(3, 13)), "kernel": [2, 3], "stride": [1, 2], "check_engine": [True]},
    quick={"size": [4, 5, 6], "kernel": [2, 3], "stride": [1]},
    summarize=_summarize_maxpool,
)
def escobar_maxpool_counts(cfg: MaxPoolConfig) -> list[dict]:
    """:func:`relulab.combinatorics.count_maxpool` of 1-D pooling, and (``check_engine``, for sizes up
    to ``ENGINE_MAX_SIZE``: beyond, one count in R^size takes minutes) the activation regions of
    ``MaxPool1d`` over all of R^size from the full-space engine, an independent count."""
    from relulab import regions
    from relulab.combinatorics import count_maxpool
    from relulab.core.plnet import PLNet

    r = count_maxpool(cfg.size, cfg.kernel, cfg.stride)
    engine = -1
    if cfg.check_engine and cfg.size <= ENGINE_MAX_SIZE:
        mod = torch.nn.Sequential(torch.nn.Unflatten(1, (1, cfg.size)), torch.nn.MaxPool1d(cfg.kernel, cfg.stride))
        net = PLNet.from_torch(mod, (cfg.size,))
        fn = regions.full_space
        engine = int(fn(net).count)
    return [{"regions": int(r.count), "closed_form": r.closed_form, "facets": r.facets,
             "closed_form_facets": r.closed_form_facets, "engine_regions": engine}]


@dataclass(frozen=True)
class MaxoutExpectedConfig:
    k: int = 2
    width: int = 4
    seeds: int = 8
    seed: int = 0
    box: bool = False


def _summarize_expected(rows: list[dict]) -> Summary:
    def draw(ax):
        for k in sorted({r["k"] for r in rows}):
            sub = sorted((r for r in rows if r["k"] == k), key=lambda r: r["width"])
            ax.errorbar([r["width"] for r in sub], [r["line_mean"] for r in sub],
                        yerr=[[r["line_mean"] - r["line_low"] for r in sub], [r["line_high"] - r["line_mean"] for r in sub]],
                        fmt="o", label=f"K={k} measured")
            ax.plot([r["width"] for r in sub], [r["line_expected"] for r in sub], "k--", lw=1)
        ax.set_xlabel("width (one maxout layer)")
        ax.set_ylabel("breakpoints on the segment")
        ax.legend(fontsize=8)

    # a configuration with and one without the box sample the same networks (same k, width and seeds):
    # one line measurement, counted once
    lines = list({(r["k"], r["width"], r["seeds"], r["seed"]): r for r in rows}.values())
    inside = sum(r["line_low"] <= r["line_expected"] <= r["line_high"] for r in lines)
    comparison = [("exact expectation inside the 95% interval of the measured mean",
                   "the formula is the expectation (about 1 in 20 outside by chance)",
                   f"{inside} of {len(lines)} distinct samples of networks")]
    boxed = [r for r in rows if r.get("regions_high") is not None]
    if boxed:
        below = sum(r["regions_high"] <= r["regions_bound"] and r["boundary_high"] <= r["boundary_bound"]
                    for r in boxed)
        comparison.append(("regions and decision-boundary pieces in the cube (95% upper end) <= the bounds",
                           "upper bounds", f"{below} of {len(boxed)} configurations"))
    return Summary(figures=[("breakpoints along a segment: measured vs exact expectation", draw)],
                   comparison=comparison, verdict=None)


@experiment(
    "tseran-montufar-maxout-expected",
    title="Maxout networks: expected breakpoints along a segment",
    paper="Tseran & Montufar, On the Expected Complexity of Maxout Networks (NeurIPS 2021)",
    claim="For random maxout layers the expected number of breakpoints along a segment has a closed form "
          "(one layer), and region counts in a cube stay far below the maximum, bounded by (C_grad C_bias T N)^d-type "
          "expressions.",
    full={"k": [2, 3, 5], "width": [2, 4, 8, 16], "seeds": [100], "seed": [0], "box": [False, True]},
    quick={"k": [2], "width": [3], "seeds": [8], "seed": [0]},
    summarize=_summarize_expected,
)
def tseran_montufar_maxout_expected(cfg: MaxoutExpectedConfig) -> list[dict]:
    """:func:`relulab.combinatorics.maxout_complexity` of one maxout layer (2 inputs): exact breakpoints per
    sampled network (``regions.on_line``) and their 95% t-interval beside the exact expectation; with
    ``box``, exact regions and decision-boundary pieces in the cube beside the Tseran-Montufar bounds."""
    from relulab.combinatorics import maxout_complexity

    m = maxout_complexity([cfg.width], cfg.k, seeds=cfg.seeds, box=cfg.box, seed0=cfg.seed)
    lo, hi = m.line_ci
    row = {"line_mean": float(m.line_mean), "line_low": float(lo), "line_high": float(hi),
           "line_expected": float(m.line_expected), "regions_mean": None, "regions_high": None,
           "regions_bound": None, "boundary_mean": None, "boundary_high": None, "boundary_bound": None}
    if m.box_ci is not None and m.boundary_ci is not None:
        row.update(regions_mean=float(m.box_mean), regions_high=float(m.box_ci[1]),
                   regions_bound=float(m.bounds["regions"]), boundary_mean=float(m.boundary_mean),
                   boundary_high=float(m.boundary_ci[1]), boundary_bound=float(m.bounds["decision_boundary"]))
    return [row]


@dataclass(frozen=True)
class ReLUClassificationsConfig:
    data: str = "line"
    n: int = 4
    width: int = 2
    seed: int = 0


def _summarize_classifications(rows: list[dict]) -> Summary:
    def draw(ax):
        for data in sorted({r["data"] for r in rows}):
            for n in sorted({r["n"] for r in rows if r["data"] == data}):
                sub = sorted((r for r in rows if r["data"] == data and r["n"] == n), key=lambda r: r["width"])
                ax.plot([r["width"] for r in sub], [r["count"] for r in sub], "o-", label=f"{data}, n={n}")
        ax.set_xlabel("hidden ReLU units m")
        ax.set_ylabel("realizable labellings")
        ax.set_yscale("log", base=2)
        ax.legend(fontsize=8)

    cover = [r for r in rows if r["width"] == 1 and r["cover"] is not None]
    line = [r for r in rows if r["line_count"] is not None]
    comparison = [("width 1: Cover's count 2 sum_{k<=d} C(n-1, k)", "equal",
                   f"{sum(r['count'] == r['cover'] for r in cover)} of {len(cover)}"),
                  ("points on a line, m <= 2: 2 sum_{j<=m} C(n-1, j) (at most m sign changes)", "equal",
                   f"{sum(r['count'] == r['line_count'] for r in line)} of {len(line)}")]
    ok = all(r["count"] == r["cover"] for r in cover) and all(r["count"] == r["line_count"] for r in line)
    return Summary(figures=[("labellings realizable by width-m shallow ReLU networks", draw)],
                   comparison=comparison, verdict="agrees" if ok else "does not agree")


@experiment(
    "brandenburg-loho-montufar-relu-classifications",
    title="Labellings of a data set realizable by shallow ReLU networks",
    paper="Brandenburg, Loho, Montufar, The real tropical geometry of neural networks (arXiv 2403.11871)",
    claim="A shallow ReLU network classifies by the sign of a tropical rational function; the labellings it "
          "realizes on a data set depend on the configuration; width 1 gives Cover's affine dichotomies.",
    full={"data": ["line", "plane"], "n": [4, 5, 6], "width": [1, 2, 3], "seed": [0]},
    quick={"data": ["line"], "n": [4], "width": [1, 2], "seed": [0]},
    summarize=_summarize_classifications,
)
def relu_classifications_entry(cfg: ReLUClassificationsConfig) -> list[dict]:
    """:func:`relulab.tropical.relu_classifications` on ``n`` points on a line (distinct, irregular gaps)
    or in the plane (standard normal, ``seed``): every labelling decided exactly, with witnesses."""
    import numpy as np

    from relulab.tropical import relu_classifications

    rng = np.random.default_rng(cfg.seed)
    if cfg.data == "line":
        X = np.cumsum(1.0 + rng.random(cfg.n))[:, None]
    elif cfg.data == "plane":
        X = rng.standard_normal((cfg.n, 2))
    else:
        raise ValueError(f"data must be 'line' or 'plane', got {cfg.data!r}")
    r = relu_classifications(X, cfg.width)
    return [{"count": int(r.count), "cover": r.cover, "line_count": r.line_count, "refuted": int(r.refuted),
             "lps": int(r.lps), "seconds": float(r.seconds)}]


@dataclass(frozen=True)
class TropicalSizesConfig:
    width: int = 2
    depth: int = 2
    seed: int = 0
    check_engine: bool = True


def _summarize_tropical(rows: list[dict]) -> Summary:
    def draw(ax):
        for w in sorted({r["width"] for r in rows}):
            sub = sorted((r for r in rows if r["width"] == w), key=lambda r: r["depth"])
            done = [r for r in sub if r["reduced_p"] is not None]
            ax.plot([r["depth"] for r in done], [r["reduced_p"] + r["reduced_q"] for r in done], "o-",
                    label=f"width {w}, reduced")
            raw = [r for r in sub if r["raw_p"] is not None]
            ax.plot([r["depth"] for r in raw], [r["raw_p"] + r["raw_q"] for r in raw], "x--", label=f"width {w}, raw")
        ax.set_yscale("log")
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("monomials of p plus q")
        ax.legend(fontsize=8)

    checked = [r for r in rows if r["engine_linear"] is not None and r["tropical_linear"] is not None]
    same = sum(r["engine_linear"] == r["tropical_linear"] for r in checked)
    return Summary(figures=[("tropical sizes against depth (2 inputs, one output)", draw)],
                   comparison=[("linear regions read off p - q = those of relulab's full-space engine", "equal",
                                f"{same} of {len(checked)}")],
                   verdict="agrees" if same == len(checked) else "does not agree")


@experiment(
    "zhang-naitzat-lim-tropical-sizes",
    title="ReLU networks as tropical rational functions: sizes against depth",
    paper="Zhang, Naitzat, Lim, Tropical geometry of deep neural networks (ICML 2018)",
    claim="A ReLU network is a tropical rational function p - q; its linear regions are read off the tropical "
          "data, and the number of monomials grows quickly with depth (reduction keeps the function).",
    full={"width": [2, 3], "depth": [1, 2, 3, 4], "seed": [0], "check_engine": [True]},
    quick={"width": [2], "depth": [1, 2], "seed": [0], "check_engine": [True]},
    summarize=_summarize_tropical,
)
def tropical_sizes(cfg: TropicalSizesConfig) -> list[dict]:
    """:func:`relulab.tropical.from_network` of a 2-w-...-w-1 ReLU MLP (torch default init, ``seed``), raw
    and reduced (exact rationals, certified), the linear regions of ``f = p - q`` from the tropical data
    (:func:`relulab.tropical.count_regions`) and, with ``check_engine``, ``regions.full_space``'s linear
    count of the same network."""
    from relulab import regions
    from relulab.tropical.sizes import relu_mlp
    from relulab.tropical.sizes import tropical_sizes as sizes_table

    r = sizes_table([cfg.width], [cfg.depth], seed=cfg.seed, max_monomials=200_000, time_limit=120.0).rows[0]
    row = {"raw_p": r["raw_p"], "raw_q": r["raw_q"], "reduced_p": r["reduced_p"], "reduced_q": r["reduced_q"],
           "certified": r["certified"] and r["regions_certified"] is not False, "tropical_linear": r["linear_regions"],
           "engine_linear": None, "reduce_seconds": float(r["reduce_seconds"])}
    net = relu_mlp(2, cfg.width, cfg.depth, cfg.seed)
    if cfg.check_engine:
        fs = regions.full_space(net)
        row["engine_linear"] = int(fs.linear_count) if fs.complete else None
    return [row]
