"""Registry entries on :mod:`relulab.complexity`: local complexity against its closed form."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from relulab.experiments.registry import Summary, experiment


@dataclass(frozen=True)
class LocalComplexityConfig:
    d: int = 3
    width: int = 20
    sigma: float = 0.1
    n: int = 4000
    seed: int = 0


def _summarize_lc(rows: list[dict]) -> Summary:
    def draw(ax):
        for d in sorted({r["d"] for r in rows}):
            sub = sorted((r for r in rows if r["d"] == d), key=lambda r: r["width"])
            ax.errorbar([r["width"] for r in sub], [r["lc"] for r in sub], yerr=[2 * r["lc_se"] for r in sub], fmt="o",
                        label=f"d = {d}, estimate")
            ax.plot([r["width"] for r in sub], [r["closed_form"] for r in sub], "k--", lw=1)
        ax.set_xlabel("hidden units")
        ax.set_ylabel("LC_sigma (dashed: closed form)")
        ax.legend(fontsize=8)

    from statistics import NormalDist

    z = [abs(r["lc"] - r["closed_form"]) / max(r["lc_se"], 1e-300) for r in rows]
    # m estimates compared at once: a per-estimate 3 s.e. rule fails by chance with probability
    # 1 - 0.9973^m (20% at m = 81), so the verdict uses the two-sided Bonferroni bound for a 5%
    # family-wise error rate
    bound = NormalDist().inv_cdf(1 - 0.05 / (2 * len(rows)))
    inside = sum(v <= bound for v in z)
    return Summary(figures=[("local complexity: Monte Carlo against the closed form", draw)],
                   comparison=[(f"|estimate - closed form| within {bound:.2f} standard errors (5% family-wise "
                                f"over {len(rows)} estimates)", "the closed form is the expectation",
                                f"{inside} of {len(rows)} (largest {max(z):.2f} s.e.; {sum(v <= 3 for v in z)} "
                                "within 3 s.e.)")],
                   verdict="agrees" if inside == len(rows) else "does not agree")


def _lc_data(cfg: LocalComplexityConfig) -> torch.Tensor:
    """The ``n`` standard Gaussian inputs of one configuration, from a stream of its own (seeded by the
    hash of the whole configuration). One stream per seed made the 27 estimates of a seed rest on nested
    samples that fluctuate together, which a family-wise bound over independent estimates does not
    allow for."""
    from relulab.experiments.store import task_id

    key = int(task_id("patel-montufar-local-complexity", asdict(cfg)), 16) % 2**63
    return torch.randn(cfg.n, cfg.d, generator=torch.Generator().manual_seed(key), dtype=torch.float64)


@experiment(
    "patel-montufar-local-complexity",
    title="Local complexity of a random layer against its closed form",
    paper="Patel & Montufar, On the Local Complexity of Linear Regions in Deep ReLU Networks (2024)",
    claim="Local complexity LC_sigma, the density of neuron boundaries near the data (smoothed by bias noise "
          "sigma), is an expectation over the data; for one hidden layer and Gaussian inputs it equals "
          "sum_k |w_k| N(b_k; 0, sigma^2 + |w_k|^2).",
    full={"d": [2, 5, 10], "width": [10, 50, 200], "sigma": [0.05, 0.1, 0.5], "seed": [0, 1, 2], "n": [20000]},
    quick={"d": [2, 5], "width": [10, 40], "sigma": [0.1]},
    summarize=_summarize_lc,
)
def patel_montufar_local_complexity(cfg: LocalComplexityConfig) -> list[dict]:
    """:func:`relulab.complexity.local_complexity` of a random one-hidden-layer ReLU network (default torch
    initialization, seeded) on ``n`` Gaussian points, beside :func:`relulab.complexity.shallow_gaussian_lc`."""
    from relulab.complexity import local_complexity, shallow_gaussian_lc
    from relulab.core.plnet import PLNet

    torch.manual_seed(cfg.seed)
    lin = torch.nn.Linear(cfg.d, cfg.width).double()
    net = PLNet.from_torch(torch.nn.Sequential(lin, torch.nn.ReLU(), torch.nn.Linear(cfg.width, 1).double()),
                           (cfg.d,))
    X = _lc_data(cfg)
    r = local_complexity(net, X, sigma=cfg.sigma)
    ref = shallow_gaussian_lc(lin.weight.detach(), lin.bias.detach(), sigma=cfg.sigma)
    return [{"lc": float(r.value), "lc_se": float(r.stderr), "closed_form": float(ref)}]
