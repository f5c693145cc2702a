"""``relulab demo --out DIR``: train a small ReLU network on two spirals and write a report."""

from __future__ import annotations

import os

from relulab.cli import SEED, Context, Output, json_flag, output_folder


def add_parser(sub) -> None:
    p = sub.add_parser("demo", description="Train a 2-32-32-2 ReLU MLP on two spirals (a few seconds on a CPU) and write "
                                   "summary.json, PNG figures, model.safetensors and a self-contained report.html.")
    p.add_argument("--out", metavar="DIR", required=True, type=output_folder, help="output folder (created if missing)")
    p.add_argument("--seed", type=SEED, default=0, help="seed for data, initialisation and training (default 0)")
    p.add_argument("--quick", action="store_true", help="fewer points and steps, a coarser grid (for tests)")
    json_flag(p)
    p.set_defaults(handler=run)


def run(args, ctx: Context) -> Output:
    from relulab.report import run_demo as demo

    with ctx.progress("demo") as update:
        s = demo(args.out, seed=args.seed, quick=args.quick, progress=update)
    from rich.table import Table

    train = next((x["summary"] for x in s["sections"] if x["title"] == "Training"), {})
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("data", f"{s['data']['name']} ({s['data']['n']} points, seed {args.seed})")
    t.add_row("network", s["demo"]["arch"])
    if train:
        t.add_row("training", f"{train['steps']} Adam steps in {train['seconds']:.2f} s: loss "
                              f"{train['final_loss']:.3g}, accuracy {train['final_accuracy']:.3f} "
                              f"(fresh points {train['test_accuracy']:.3f})")
    t.add_row("report", os.path.join(args.out, "report.html"))
    t.add_row("files", ", ".join(s["files"]))
    t.add_row("time", f"{s['timings']['total_s']:.1f} s")
    return Output(s, t)
